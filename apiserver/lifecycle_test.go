package apiserver

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/memory"
)

// heldStorage holds the creates of ConfigMaps named held-* in storage until
// released.
type heldStorage struct {
	storage.Interface
	entered chan struct{}
	release chan struct{}
}

func (h *heldStorage) Create(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
	if strings.Contains(key, "/configmaps/") && strings.Contains(key, "/held-") {
		h.entered <- struct{}{}
		<-h.release
	}
	return h.Interface.Create(ctx, key, obj)
}

// A shutdown lets the writes in flight finish, and answers them, before the
// server stops: each acknowledged write is stored; a request sent once the
// shutdown has begun is not served.
func TestShutdownFinishesWritesInFlight(t *testing.T) {
	mem, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	held := &heldStorage{Interface: mem, entered: make(chan struct{}, 3), release: make(chan struct{})}
	s, stop := startServerWith(t, Config{AnyPort: true, Storage: held})
	cs := kubernetes.NewForConfigOrDie(s.RESTConfig())
	ctx := context.Background()

	type result struct {
		name string
		err  error
	}
	results := make(chan result, 3)
	for i := range 3 {
		name := "held-" + string(rune('a'+i))
		go func() {
			_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			results <- result{name, err}
		}()
	}
	for range 3 {
		<-held.entered
	}
	stopped := make(chan struct{})
	go func() { defer close(stopped); stop() }()
	// The shutdown has begun once the long-running requests are told to
	// end, which is its first step.
	select {
	case <-s.longRunning.Done():
	case <-time.After(time.Minute):
		t.Fatal("the shutdown did not begin")
	}
	select {
	case <-stopped:
		t.Fatal("the server stopped with writes in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(held.release)
	for range 3 {
		r := <-results
		if r.err != nil {
			t.Errorf("create %s, in flight at the shutdown: %v", r.name, r.err)
		}
	}
	<-stopped
	for i := range 3 {
		key := "/registry/core/configmaps/default/held-" + string(rune('a'+i))
		if _, err := mem.Get(ctx, key, storage.GetOptions{}); err != nil {
			t.Errorf("%s, acknowledged, is not stored: %v", key, err)
		}
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "held-a", metav1.GetOptions{}); err == nil {
		t.Error("a request after the shutdown was served")
	}
}

// TestStartCancelledReturns checks that a Start whose context has ended
// returns its error, stopping the bootstrap New started, whichever of its
// first waits (the admission chain, the bootstrap) sees the end.
func TestStartCancelledReturns(t *testing.T) {
	for range 5 {
		s, err := New(Config{AnyPort: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Start(ctx); err == nil {
			t.Fatal("Start with an ended context returned nil")
		}
	}
}
