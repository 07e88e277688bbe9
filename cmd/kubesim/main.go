package main

import (
	"os"

	"github.com/kubesim/kubesim/cmd/kubesim/app"
	"github.com/kubesim/kubesim/realnode"
)

func main() {
	// A real node's processes: kubesim re-executed in the node's
	// namespaces (see package realnode).
	if len(os.Args) > 1 && os.Args[1] == realnode.ExecCommand {
		os.Exit(realnode.Exec(os.Args[2:]))
	}
	os.Exit(app.Run(os.Args[1:]))
}
