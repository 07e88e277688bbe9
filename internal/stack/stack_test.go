package stack

import (
	"runtime"
	"testing"
)

// depth recurses n frames deep, as the field manager's walk of an object
// does, with a frame of some hundred bytes each.
//
//go:noinline
func depth(n int) int {
	var pad [256]byte
	pad[n%len(pad)] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return depth(n-1) + int(pad[n%len(pad)])
}

// TestGrow: after Grow, a goroutine recursing 48 KB deep does not grow its
// stack again, which the runtime's stack-in-use figure shows as no new
// stack memory taken while it runs.
func TestGrow(t *testing.T) {
	grown := func(pre bool) bool {
		done := make(chan bool)
		go func() {
			if pre {
				Grow()
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			depth(150) // about 48 KB of frames
			runtime.ReadMemStats(&after)
			done <- after.StackInuse > before.StackInuse
		}()
		return <-done
	}
	// Without Grow the recursion grows the stack: the check can fail.
	if !grown(false) {
		t.Skip("the runtime started the goroutine with a stack large enough already")
	}
	for range 5 {
		if grown(true) {
			t.Fatal("the stack grew after Grow")
		}
	}
}
