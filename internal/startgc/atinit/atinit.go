package atinit

import (
	"os"

	"github.com/kubesim/kubesim/internal/startgc"
)

func init() {
	if Up(os.Args[1:]) {
		startgc.Hold(startgc.DefaultLimit)
	}
}

// Up reports whether a kubesim command line runs `kubesim up`: its first
// word that is not a flag (nor the value of the root's -v) is "up".
func Up(args []string) bool {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-v" || a == "--v":
			i++ // its value
		case len(a) > 0 && a[0] == '-':
		default:
			return a == "up"
		}
	}
	return false
}
