package apiserver

import (
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// TestHandlerWorkers: in-process requests run at once, each in a goroutine
// of its own; a goroutine that is done serves the next request instead of
// a new one; at most maxIdleWorkers wait; they end when serving ends.
func TestHandlerWorkers(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *handlerWorkers)
	}{
		{"one after another: one goroutine", func(t *testing.T, h *handlerWorkers) {
			ran := make(chan int)
			h.run(func() { ran <- 0 })
			<-ran
			waitIdle(t, h, 1)
			before := runtime.NumGoroutine()
			for i := range 100 {
				h.run(func() { ran <- i })
				if got := <-ran; got != i {
					t.Fatalf("ran %d, want %d", got, i)
				}
				waitIdle(t, h, 1)
			}
			if after := runtime.NumGoroutine(); after > before {
				t.Errorf("goroutines: %d after 100 requests one after another, %d before", after, before)
			}
		}},
		{"at once: all run, never wait", func(t *testing.T, h *handlerWorkers) {
			const n = maxIdleWorkers + 50
			var started sync.WaitGroup
			started.Add(n)
			release := make(chan struct{})
			for range n {
				// run returns at once even though every goroutine blocks.
				h.run(func() { started.Done(); <-release })
			}
			started.Wait()
			close(release)
			waitIdle(t, h, maxIdleWorkers)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			done := make(chan struct{})
			h := &handlerWorkers{work: make(chan func()), done: done}
			tc.run(t, h)
			close(done) // the idle goroutines end (goleak checks)
		})
	}
}

// waitIdle waits until n goroutines are idle, waiting for work.
func waitIdle(t *testing.T, h *handlerWorkers, n int32) {
	t.Helper()
	for i := 0; h.idle.Load() != n; i++ {
		if i > 1_000_000 {
			t.Fatalf("idle goroutines: %d, want %d", h.idle.Load(), n)
		}
		runtime.Gosched()
	}
}
