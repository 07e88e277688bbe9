package main

import (
	"os"

	"github.com/kubesim/kubesim/cmd/kubesim/app"
	"github.com/kubesim/kubesim/realnode/nodeexec"
)

func main() {
	// A real node's processes: kubesim re-executed in the node's
	// namespaces (see package realnode).
	nodeexec.Main()
	os.Exit(app.Run(os.Args[1:]))
}
