package startgc

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// DefaultLimit is the memory Pause lets the process reach before the
// collector resumes: a start of the API server alone or with the control
// plane stays well under it; a larger one (thousands of nodes, a data
// directory to load) collects from there on as it would have.
const DefaultLimit = 256 << 20

// Pause turns the garbage collector off until the process's Go memory
// reaches limit or resume is called, whichever comes first; the
// collector's settings (GOGC, GOMEMLIMIT) are then what they were. It does
// nothing if the collector is already off (GOGC=off). Call resume once the
// start is done.
func Pause(limit int64) (resume func()) {
	percent := debug.SetGCPercent(-1)
	if percent < 0 {
		return func() {}
	}
	memoryLimit := debug.SetMemoryLimit(-1)
	debug.SetMemoryLimit(min(memoryLimit, limit))
	var once sync.Once
	resume = func() {
		once.Do(func() {
			debug.SetMemoryLimit(memoryLimit)
			debug.SetGCPercent(percent)
		})
	}
	// The collector runs with GOGC off only when the limit is reached: the
	// first collection frees the sentinel, and its cleanup resumes.
	sentinel := new(sentinel)
	runtime.AddCleanup(sentinel, func(struct{}) { resume() }, struct{}{})
	return resume
}

// sentinel is large enough not to share a tiny allocator block, which
// would keep it live with its neighbours.
type sentinel struct {
	_ *sentinel
	_ [24]byte
}

// held is the process's pause, which Hold starts and Release ends.
var held struct {
	sync.Mutex
	resume func()
}

// Hold pauses the collector as Pause does, for the process as a whole:
// Release resumes it, from wherever the start goes. It does nothing while
// the process's collector is already held. Package atinit holds it from
// package initialisation on, which allocates a heap of its own (13 MB in
// kubesim): three collections before main.
func Hold(limit int64) {
	held.Lock()
	defer held.Unlock()
	if held.resume == nil {
		held.resume = Pause(limit)
	}
}

// Release resumes the collector Hold paused; it does nothing otherwise.
func Release() {
	held.Lock()
	resume := held.resume
	held.resume = nil
	held.Unlock()
	if resume != nil {
		resume()
	}
}
