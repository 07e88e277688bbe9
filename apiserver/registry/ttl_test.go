package registry

import (
	"context"
	goruntime "runtime"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/registry/rest"
	api "k8s.io/kubernetes/pkg/apis/core"
)

func testEvent(name string) *api.Event {
	return &api.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: "ns"},
		InvolvedObject: api.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p"},
		Reason:         "Started", Message: "Container started", Type: "Normal", Count: 1,
		Source: api.EventSource{Component: "kubelet", Host: "node-0"},
	}
}

// TestEventsExpire: an Event is deleted an hour (kube-apiserver's default
// --event-ttl) after its last write, and watchers see it go; other
// resources are kept.
func TestEventsExpire(t *testing.T) {
	r, clock := newTestRegistry(t)
	events := r.Stores[coreEvents]
	ctx := requestCtx("events", "ns")
	for _, name := range []string{"old", "refreshed"} {
		if _, err := events.Create(ctx, testEvent(name), nil, &metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cms := r.Stores[schema.GroupResource{Resource: "configmaps"}]
	if _, err := cms.Create(requestCtx("configmaps", "ns"), configMap("kept"), nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := events.Watch(ctx, &metainternalversion.ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for range 2 {
		<-w.ResultChan() // the initial ADDED events
	}

	exists := func(name string) bool {
		_, err := events.Get(ctx, name, &metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	steps := []struct {
		name      string
		step      time.Duration
		do        func(t *testing.T)
		expired   int
		remaining []string
		gone      []string
	}{
		{name: "within the hour nothing expires", step: 59 * time.Minute, do: func(t *testing.T) {
			e := testEvent("refreshed")
			e.Count = 2
			if _, _, err := events.Update(ctx, "refreshed", rest.DefaultUpdatedObjectInfo(e), nil, nil, false, &metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, remaining: []string{"old", "refreshed"}},
		{name: "an hour after its last write an event goes", step: 2 * time.Minute, expired: 1, remaining: []string{"refreshed"}, gone: []string{"old"}},
		{name: "an update renews the hour", step: 57 * time.Minute, remaining: []string{"refreshed"}},
		{name: "then it goes too", step: 2 * time.Minute, expired: 1, gone: []string{"refreshed"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			clock.Step(st.step)
			if st.do != nil {
				st.do(t)
			}
			if n := events.expire(ctx); n != st.expired {
				t.Errorf("expired %d, want %d", n, st.expired)
			}
			for _, name := range st.remaining {
				if !exists(name) {
					t.Errorf("%s expired early", name)
				}
			}
			for _, name := range st.gone {
				if exists(name) {
					t.Errorf("%s did not expire", name)
				}
			}
		})
	}
	var deleted []string
	for len(deleted) < 2 {
		select {
		case e := <-w.ResultChan():
			if e.Type == watch.Deleted {
				// Watch events share their encodings among watches.
				deleted = append(deleted, e.Object.(runtime.CacheableObject).GetObject().(*api.Event).Name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch saw %v deleted, want old and refreshed", deleted)
		}
	}
	if deleted[0] != "old" || deleted[1] != "refreshed" {
		t.Errorf("watch saw %v deleted, want [old refreshed]", deleted)
	}
	if _, err := cms.Get(requestCtx("configmaps", "ns"), "kept", &metav1.GetOptions{}); err != nil {
		t.Errorf("a ConfigMap expired: %v", err)
	}
}

// TestRunExpiryFollowsTheInjectedClock: the server's expiry loop deletes
// expired events on the injected clock's ticks.
func TestRunExpiryFollowsTheInjectedClock(t *testing.T) {
	r, clock := newTestRegistry(t)
	events := r.Stores[coreEvents]
	ctx := requestCtx("events", "ns")
	created, err := events.Create(ctx, testEvent("e"), nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.RunExpiry(runCtx)
	for !clock.HasWaiters() {
		goruntime.Gosched()
	}
	w, err := events.Watch(ctx, &metainternalversion.ListOptions{ResourceVersion: created.(*api.Event).ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	clock.Step(time.Hour + time.Minute)
	select {
	case e := <-w.ResultChan():
		if e.Type != watch.Deleted {
			t.Fatalf("got %s, want the event deleted", e.Type)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event did not expire")
	}
}
