package memory

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	api "k8s.io/kubernetes/pkg/apis/core"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/storagetest"
)

// key is the ConfigMap the history tests change.
const key = "/registry/core/configmaps/ns/a"

// newEncodingStore keeps every version but the latest encoded, and the
// objects of every event but the last in the versions alone.
func newEncodingStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(Config{CompactionInterval: -1, FutureRevisionWait: time.Millisecond, Codec: storagetest.Codec(t), FreezeAfter: 1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEncodedHistory: with a Codec, the versions history holds for older
// reads are kept encoded once FreezeAfter revisions follow the change
// that superseded them, and the events hold no objects: reads at older
// revisions and watches that resume from them get what they got before.
func TestEncodedHistory(t *testing.T) {
	s := newEncodingStore(t)
	ctx := context.Background()
	cm := func(v string) *api.ConfigMap {
		return &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}, Data: map[string]string{"k": v}}
	}
	start, _ := s.CurrentRevision(ctx)
	var revs []int64
	obj, err := s.Create(ctx, key, cm("v0"))
	if err != nil {
		t.Fatal(err)
	}
	revs = append(revs, rev(t, obj))
	for i := 1; i < 6; i++ {
		if obj, err = s.Update(ctx, key, cm(fmt.Sprintf("v%d", i)), storage.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev(t, obj))
	}
	if _, err := s.Delete(ctx, key, storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if obj, err = s.Create(ctx, key, cm("again")); err != nil {
		t.Fatal(err)
	}

	// Every version a change superseded (v0-v5) is encoded, without its
	// object; every event but the last holds no objects.
	s.mu.RLock()
	var encoded []string
	for _, v := range s.byKey[key].versions {
		if v.data != nil {
			if v.obj != nil {
				t.Errorf("version %d is encoded and still holds its object", v.rev)
			}
			encoded = append(encoded, fmt.Sprint(v.rev))
		}
	}
	frozen := 0
	for _, e := range s.events {
		if e.frozen {
			frozen++
			if e.obj != nil || e.prev != nil {
				t.Errorf("event %d is frozen and still holds objects", e.rev)
			}
		}
	}
	s.mu.RUnlock()
	var want []string
	for _, r := range revs {
		want = append(want, fmt.Sprint(r))
	}
	if fmt.Sprint(encoded) != fmt.Sprint(want) {
		t.Errorf("encoded versions %v, want %v", encoded, want)
	}
	if frozen != 7 {
		t.Errorf("%d events frozen, want 7 (8 written, the last kept)", frozen)
	}

	// Reads at each older revision.
	for i, r := range revs {
		res, err := s.List(ctx, "/registry/core/configmaps/", storage.ListOptions{Revision: r, Match: storage.MatchExact})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Items) != 1 {
			t.Fatalf("list at %d: %d items, want 1", r, len(res.Items))
		}
		got := res.Items[0].(*api.ConfigMap)
		if got.Data["k"] != fmt.Sprintf("v%d", i) || rev(t, got) != r {
			t.Errorf("list at %d: %s at %s, want v%d at %d", r, got.Data["k"], got.ResourceVersion, i, r)
		}
	}

	// A watch from the start replays every change with its objects.
	w, err := s.Watch(ctx, "/registry/core/configmaps/", storage.WatchOptions{Revision: start})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var got []string
	for range 8 {
		select {
		case e := <-w.ResultChan():
			c := e.Object.(*api.ConfigMap)
			got = append(got, fmt.Sprintf("%s %s@%s", e.Type, c.Data["k"], c.ResourceVersion))
		case <-time.After(time.Minute):
			t.Fatalf("got %v, then nothing", got)
		}
	}
	want = nil
	for i, r := range revs {
		typ := watch.Modified
		if i == 0 {
			typ = watch.Added
		}
		want = append(want, fmt.Sprintf("%s v%d@%d", typ, i, r))
	}
	want = append(want, fmt.Sprintf("DELETED v5@%d", revs[5]+1), fmt.Sprintf("ADDED again@%d", rev(t, obj)))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replayed\n%v\nwant\n%v", got, want)
	}

	// A watch with a predicate sees a change stop matching at a frozen
	// event: that needs the previous state too.
	pw, err := s.Watch(ctx, "/registry/core/configmaps/", storage.WatchOptions{Revision: revs[1], Predicate: func(o runtime.Object) (bool, error) {
		return o.(*api.ConfigMap).Data["k"] == "v2", nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Stop()
	for _, want := range []string{"ADDED v2", "DELETED v3"} {
		select {
		case e := <-pw.ResultChan():
			if g := fmt.Sprintf("%s %s", e.Type, e.Object.(*api.ConfigMap).Data["k"]); g != want {
				t.Errorf("filtered watch: got %s, want %s", g, want)
			}
		case <-time.After(time.Minute):
			t.Fatalf("filtered watch: no %s", want)
		}
	}
}

// TestWatcherBehindHoldsFreezingBack: a watcher that has not read the
// events yet keeps them decoded (it would otherwise decode each, and fall
// further behind), and reads them all.
func TestWatcherBehindHoldsFreezingBack(t *testing.T) {
	s := newEncodingStore(t)
	ctx := context.Background()
	start, _ := s.CurrentRevision(ctx)
	w, err := s.Watch(ctx, "/registry/core/configmaps/", storage.WatchOptions{Revision: start})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	const writes = 1200 // more than a watcher reads at once and buffers
	if _, err := s.Create(ctx, key, &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}, Data: map[string]string{"k": "0"}}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < writes; i++ {
		if _, err := s.Update(ctx, key, &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}, Data: map[string]string{"k": fmt.Sprint(i)}}, storage.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.RLock()
	frozen, visible := s.frozen, s.visible
	s.mu.RUnlock()
	if frozen > start+1000 || frozen >= visible-1 {
		t.Errorf("events frozen up to %d of %d with the watcher at most at %d", frozen, visible, start+1000)
	}
	for i := range writes {
		select {
		case e := <-w.ResultChan():
			if got := e.Object.(*api.ConfigMap).Data["k"]; got != fmt.Sprint(i) {
				t.Fatalf("event %d: k=%s", i, got)
			}
		case <-time.After(time.Minute):
			t.Fatalf("no event %d", i)
		}
	}
}

func rev(t *testing.T, obj runtime.Object) int64 {
	t.Helper()
	var r int64
	if _, err := fmt.Sscan(obj.(*api.ConfigMap).ResourceVersion, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEncodedLatest: the latest versions of keys under EncodedPrefixes are
// kept encoded too once FreezeAfter revisions follow their change, other
// keys' stay decoded; reads, updates, deletions and watches of them get
// what they would get of decoded ones.
func TestEncodedLatest(t *testing.T) {
	const (
		events = "/registry/core/events/"
		ev     = events + "ns/e"
	)
	s, err := New(Config{CompactionInterval: -1, FutureRevisionWait: time.Millisecond, Codec: storagetest.Codec(t), FreezeAfter: 1, EncodedPrefixes: []string{events}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	event := func(name string, n int32) *api.Event {
		return &api.Event{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Reason: "Started", Count: n,
			InvolvedObject: api.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p"}}
	}
	start, _ := s.CurrentRevision(ctx)
	created, err := s.Create(ctx, ev, event("e", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, key, &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}}); err != nil {
		t.Fatal(err)
	}
	// One more write freezes the ConfigMap's creation too.
	if _, err := s.Create(ctx, events+"ns/other", event("other", 1)); err != nil {
		t.Fatal(err)
	}
	latest := func(k string) version {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return *s.byKey[k].latest()
	}
	if v := latest(ev); v.obj != nil || v.data == nil {
		t.Fatalf("the event's latest version: object %v, %d bytes encoded; want it encoded alone", v.obj != nil, len(v.data))
	}
	if v := latest(key); v.obj == nil || v.data != nil {
		t.Fatalf("the ConfigMap's latest version: object %v, %d bytes encoded; want it decoded", v.obj != nil, len(v.data))
	}

	got, err := s.Get(ctx, ev, storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e := got.(*api.Event); e.Count != 1 || e.ResourceVersion != created.(*api.Event).ResourceVersion || e.InvolvedObject.Name != "p" {
		t.Fatalf("get: count %d at %s, want 1 at %s", e.Count, e.ResourceVersion, created.(*api.Event).ResourceVersion)
	}
	res, err := s.List(ctx, events, storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 2 || res.Items[0].(*api.Event).Name != "e" || res.Items[0].(*api.Event).Count != 1 {
		t.Fatalf("list: %d items, want 2 with e's count 1", len(res.Items))
	}

	// An update of an encoded version; the new version is encoded in its
	// turn.
	updated, err := s.Update(ctx, ev, event("e", 2), storage.UpdateOptions{ExpectedRevision: rev64(t, created)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, key, &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}, Data: map[string]string{"k": "v"}}, storage.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := latest(ev); v.obj != nil || v.data == nil || v.rev != rev64(t, updated) {
		t.Fatalf("the updated event's latest version: object %v, %d bytes encoded, revision %d", v.obj != nil, len(v.data), v.rev)
	}
	deleted, err := s.Delete(ctx, ev, storage.DeleteOptions{ExpectedRevision: rev64(t, updated)})
	if err != nil {
		t.Fatal(err)
	}
	if e := deleted.(*api.Event); e.Count != 2 || rev64(t, e) <= rev64(t, updated) {
		t.Fatalf("delete returned count %d at %s, want the last state (count 2) at the deletion's revision", e.Count, e.ResourceVersion)
	}
	if _, err := s.Get(ctx, ev, storage.GetOptions{}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get after delete: %v, want not found", err)
	}
	// A watch from the start reads the frozen events back from the
	// versions, the previous states too (a predicate on them).
	w, err := s.Watch(ctx, events, storage.WatchOptions{Revision: start, Predicate: func(o runtime.Object) (bool, error) {
		return o.(*api.Event).Count == 1, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var seen []string
	for range 3 { // e created, other created, e stops matching (count 2)
		select {
		case e := <-w.ResultChan():
			o := e.Object.(*api.Event)
			seen = append(seen, fmt.Sprintf("%s %s/%d", e.Type, o.Name, o.Count))
		case <-time.After(time.Minute):
			t.Fatalf("watch: got %v, then nothing", seen)
		}
	}
	if want := "[ADDED e/1 ADDED other/1 DELETED e/2]"; fmt.Sprint(seen) != want {
		t.Errorf("watch with a predicate: %v, want %s", seen, want)
	}
}

func rev64(t *testing.T, obj runtime.Object) int64 {
	t.Helper()
	a, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	var r int64
	if _, err := fmt.Sscan(a.GetResourceVersion(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}
