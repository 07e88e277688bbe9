package main

import (
	"os"

	"github.com/kubesim/kubesim/cmd/kubesim/app"
)

func main() {
	os.Exit(app.Run(os.Args[1:]))
}
