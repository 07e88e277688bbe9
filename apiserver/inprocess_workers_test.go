package apiserver

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
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

// TestOnWorkers: requests over the network are served on the workers'
// goroutines, one after another on the same one; a handler that aborts its
// response (http.ErrAbortHandler) aborts that request alone, as net/http
// does, and the server goes on serving.
func TestOnWorkers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	done := make(chan struct{})
	workers := &handlerWorkers{work: make(chan func()), done: done}
	srv := httptest.NewUnstartedServer(onWorkers(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/abort" {
			w.Write([]byte("partial"))
			panic(http.ErrAbortHandler)
		}
		fmt.Fprintf(w, "served %s", req.URL.Path)
	}), workers))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	client := srv.Client()
	get := func(path string) (string, error) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("served over %s, want HTTP/2", resp.Proto)
		}
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	for _, tc := range []struct {
		path    string
		want    string
		wantErr bool
	}{
		{path: "/a", want: "served /a"},
		{path: "/abort", wantErr: true},
		{path: "/b", want: "served /b"},
		{path: "/abort", wantErr: true},
		{path: "/c", want: "served /c"},
	} {
		got, err := get(tc.path)
		if tc.wantErr {
			if err == nil {
				t.Errorf("GET %s: %q and no error, want the response aborted", tc.path, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("GET %s: %q, %v, want %q", tc.path, got, err, tc.want)
		}
		// One after another, one goroutine serves every request.
		waitIdle(t, workers, 1)
	}
	client.CloseIdleConnections()
	srv.Close()
	close(done)
}
