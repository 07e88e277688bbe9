package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

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
