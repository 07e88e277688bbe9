package crdserver

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/memory"
)

// TestVersionedWatch: a custom resource's watch converts each stored
// object to the served version before the caller's Transform sees it; a
// failed conversion ends the watch with an internal error, as the storage
// codec's error ends a kube-apiserver watch; and the watch's goroutine
// ends with Stop even when nobody reads (the API watch stops reading once
// its client is gone).
func TestVersionedWatch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m, err := memory.New(memory.Config{CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	s := &versionedStorage{
		Interface:      m,
		version:        schema.GroupVersion{Group: "example.com", Version: "v2"},
		storageVersion: schema.GroupVersion{Group: "example.com", Version: "v1"},
		toStorage:      func(u *unstructured.Unstructured) (*unstructured.Unstructured, error) { return u, nil },
		fromStorage: func(u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
			if u.GetName() == "unconvertible" {
				return nil, errors.New("conversion failed")
			}
			u = u.DeepCopy()
			u.SetAPIVersion("example.com/v2")
			return u, nil
		},
	}
	obj := func(name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("example.com/v1")
		u.SetKind("Widget")
		u.SetNamespace("ns")
		u.SetName(name)
		return u
	}
	const prefix = "/registry/example.com/widgets/ns/"
	ctx := context.Background()
	var seen []string
	w, err := s.Watch(ctx, prefix, storage.WatchOptions{Transform: func(e watch.Event) (watch.Event, bool) {
		if u, ok := e.Object.(*unstructured.Unstructured); ok {
			seen = append(seen, u.GetAPIVersion()) // the watch's goroutine only
		}
		return e, true
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "unconvertible", "b"} {
		if _, err := s.Interface.Create(ctx, prefix+name, obj(name)); err != nil {
			t.Fatal(err)
		}
	}
	var events []watch.Event
	for e := range w.ResultChan() {
		events = append(events, e)
	}
	if len(events) != 2 {
		t.Fatalf("got %d events, want the ADDED of a and the conversion's error, then the end: %v", len(events), events)
	}
	if u, ok := events[0].Object.(*unstructured.Unstructured); events[0].Type != watch.Added || !ok || u.GetName() != "a" || u.GetAPIVersion() != "example.com/v2" {
		t.Errorf("first event %s %#v, want a ADDED at example.com/v2", events[0].Type, events[0].Object)
	}
	if st, ok := events[1].Object.(*metav1.Status); events[1].Type != watch.Error || !ok || st.Reason != metav1.StatusReasonInternalError {
		t.Errorf("second event %s %#v, want an internal error", events[1].Type, events[1].Object)
	}
	if len(seen) != 1 || seen[0] != "example.com/v2" {
		t.Errorf("the caller's Transform saw %v, want the converted a alone", seen)
	}
	w.Stop()

	// Stopped with events queued and nobody reading.
	w, err = s.Watch(ctx, prefix, storage.WatchOptions{Revision: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	for range w.ResultChan() {
	}
}
