package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// TestIdleWatchSkipsOtherKeys checks that a watch waiting on its prefix is
// not woken by other keys' writes, and that it outlives the compaction of
// those writes: an informer of a quiet resource keeps its watch while
// others churn (a lease renewal per node every 10 s), as an etcd watch does.
func TestIdleWatchSkipsOtherKeys(t *testing.T) {
	s, err := New(Config{CompactionInterval: -1, FutureRevisionWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.waited = make(chan string, 100)
	ctx := context.Background()
	const configmaps = "/registry/configmaps/"
	w, err := s.Watch(ctx, configmaps, storage.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if got := <-s.waited; got != configmaps {
		t.Fatalf("waiting on %q, want %q", got, configmaps)
	}

	for i := range 50 {
		name := fmt.Sprintf("s%d", i)
		if _, err := s.Create(ctx, "/registry/secrets/ns/"+name, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}); err != nil {
			t.Fatal(err)
		}
	}
	rev, _ := s.CurrentRevision(ctx)
	if err := s.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if n := len(s.waited); n != 0 {
		t.Errorf("the configmaps watch woke %d times for secrets' writes", n)
	}

	created, err := s.Create(ctx, configmaps+"ns/c", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-w.ResultChan():
		cm, ok := e.Object.(*corev1.ConfigMap)
		if e.Type != watch.Added || !ok || cm.Name != "c" || cm.ResourceVersion != created.(*corev1.ConfigMap).ResourceVersion {
			t.Fatalf("got %s %#v, want ADDED c", e.Type, e.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the configmap within 10s")
	}
}

// TestStoppedWaitersAreRemoved checks that a watch stopped while it waits
// leaves nothing behind for its prefix.
func TestStoppedWaitersAreRemoved(t *testing.T) {
	s, err := New(Config{CompactionInterval: -1, FutureRevisionWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.waited = make(chan string, 100)
	ctx := context.Background()
	var ws []watch.Interface
	for i := range 3 {
		w, err := s.Watch(ctx, fmt.Sprintf("/registry/configmaps/ns/c%d", i%2), storage.WatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
		<-s.waited
	}
	for _, w := range ws {
		w.Stop()
		for range w.ResultChan() {
		}
	}
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	if len(s.waiters) != 0 {
		t.Fatalf("%d prefixes still have waiters after every watch stopped", len(s.waiters))
	}
}
