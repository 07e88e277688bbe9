package atinit

import (
	"os"

	"github.com/kubesim/kubesim/internal/hugepages/early"
	"github.com/kubesim/kubesim/internal/startgc"
)

func init() {
	if early.Up(os.Args[1:]) {
		startgc.Hold(startgc.DefaultLimit)
	}
}
