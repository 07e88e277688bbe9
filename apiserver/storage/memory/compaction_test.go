package memory

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// TestPeriodicCompaction checks the retention window: each tick compacts to
// the revision of the tick before, so one interval of history survives.
func TestPeriodicCompaction(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(0, 0))
	s, err := New(Config{Clock: clock, CompactionInterval: time.Minute, FutureRevisionWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.ticked = make(chan int64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Start(ctx)

	create := func(name string) int64 {
		t.Helper()
		if _, err := s.Create(ctx, "/registry/configmaps/ns/"+name, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
		rev, _ := s.CurrentRevision(ctx)
		return rev
	}
	listAt := func(rev int64) error {
		_, err := s.List(ctx, "/registry/configmaps/", storage.ListOptions{Match: storage.MatchExact, Revision: rev})
		return err
	}
	// tick fires the ticker once the loop waits on it, and returns the
	// revision the loop recorded, once it has compacted.
	tick := func() int64 {
		t.Helper()
		for !clock.HasWaiters() {
			runtime.Gosched()
		}
		clock.Step(time.Minute)
		select {
		case rev := <-s.ticked:
			return rev
		case <-time.After(10 * time.Second):
			t.Fatal("compaction loop did not tick")
		}
		return 0
	}

	first := create("a")
	if rev := tick(); rev != first { // records the revision; nothing to compact yet
		t.Fatalf("first tick recorded %d, want %d", rev, first)
	}
	second := create("b")
	if err := listAt(first); err != nil {
		t.Fatalf("history within the window: %v", err)
	}
	tick() // compacts to the revision of the first tick
	if err := listAt(first); err != nil {
		t.Fatalf("the compacted revision itself stays readable: %v", err)
	}
	if err := listAt(first - 1); !errors.Is(err, storage.ErrExpired) {
		t.Fatalf("List before the window = %v, want ErrExpired", err)
	}
	tick() // compacts to the second tick's revision
	if err := listAt(second); err != nil {
		t.Fatalf("List at %d: %v", second, err)
	}
	if err := listAt(first); !errors.Is(err, storage.ErrExpired) {
		t.Fatalf("List at %d after the next tick = %v, want ErrExpired", first, err)
	}
}
