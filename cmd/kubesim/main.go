package main

import (
	"os"

	"github.com/kubesim/kubesim/cmd/kubesim/app"
	// The collector waits from initialisation until kubesim up is ready.
	_ "github.com/kubesim/kubesim/internal/startgc/atinit"
	"github.com/kubesim/kubesim/realnode/nodeexec"
)

func main() {
	// A real node's processes: kubesim re-executed in the node's
	// namespaces (see package realnode).
	nodeexec.Main()
	os.Exit(app.Run(os.Args[1:]))
}
