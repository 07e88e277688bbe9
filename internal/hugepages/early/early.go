package early

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubesim/kubesim/internal/hugepages/anon"
)

// madvHugePage is MADV_HUGEPAGE, which the syscall package does not name.
const madvHugePage = 14

const (
	// interval is how often new mappings are looked for: the Go runtime
	// maps its heap in steps of a few MiB while a start allocates.
	interval = 2 * time.Millisecond
	// deadline ends the marking where nobody calls Stop (a start that
	// fails).
	deadline = time.Minute
	// modeFile holds the system's transparent huge page setting.
	modeFile = "/sys/kernel/mm/transparent_hugepage/enabled"
)

var (
	stop     = make(chan struct{})
	stopOnce sync.Once
)

func init() {
	if !Wanted(os.Args[1:]) {
		return
	}
	if b, err := os.ReadFile(modeFile); err != nil || !bytes.Contains(b, []byte("[madvise]")) {
		return
	}
	m := &marker{mapsFile: anon.MapsFile, advise: madvise, advised: map[anon.Range]bool{}}
	m.mark()
	go m.run(stop, time.NewTicker(interval).C, time.After(deadline))
}

// Stop ends the marking; further calls do nothing.
func Stop() { stopOnce.Do(func() { close(stop) }) }

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

// Wanted reports whether a kubesim command line runs `kubesim up` with
// huge pages (--huge-pages, true by default, set false only as
// --huge-pages=false: a bare boolean flag takes no separate value).
func Wanted(args []string) bool {
	if !Up(args) {
		return false
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if ok && name == "huge-pages" && strings.HasPrefix(a, "-") {
			if on, err := strconv.ParseBool(value); err == nil && !on {
				return false
			}
		}
	}
	return true
}

// marker marks the anonymous mappings it has not marked before.
type marker struct {
	mapsFile string
	advise   func(anon.Range) error
	advised  map[anon.Range]bool
}

// run marks on every tick until stop is closed or done fires.
func (m *marker) run(stop <-chan struct{}, tick, done <-chan time.Time) {
	for {
		select {
		case <-stop:
			return
		case <-done:
			return
		case <-tick:
			m.mark()
		}
	}
}

// mark marks the mappings not marked before. Errors are ignored: a mapping
// gone since the read (ENOMEM) is seen again as what replaced it, and the
// marking is only ever a hint.
func (m *marker) mark() {
	ranges, err := anon.Ranges(m.mapsFile)
	if err != nil {
		return
	}
	for _, r := range ranges {
		if !m.advised[r] {
			m.advised[r] = true
			_ = m.advise(r)
		}
	}
}

func madvise(r anon.Range) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r.Start, r.End-r.Start, madvHugePage); errno != 0 {
		return errno
	}
	return nil
}
