package storagetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	api "k8s.io/kubernetes/pkg/apis/core"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/encoding"
)

// NewFunc returns an empty backend for one test. Reads of a future revision
// must give up quickly (well under a second).
type NewFunc func(t *testing.T) storage.Interface

// RunContractTests runs the whole contract suite against backends from newStore.
func RunContractTests(t *testing.T, newStore NewFunc) {
	t.Run("Create", func(t *testing.T) { testCreate(t, newStore(t)) })
	t.Run("Get", func(t *testing.T) { testGet(t, newStore(t)) })
	t.Run("Update", func(t *testing.T) { testUpdate(t, newStore(t)) })
	t.Run("ManagedFields", func(t *testing.T) { testManagedFields(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newStore(t)) })
	t.Run("ListPagination", func(t *testing.T) { testListPagination(t, newStore(t)) })
	t.Run("ListAtRevision", func(t *testing.T) { testListAtRevision(t, newStore(t)) })
	t.Run("WatchFromRevision", func(t *testing.T) { testWatchFromRevision(t, newStore(t)) })
	t.Run("WatchPredicate", func(t *testing.T) { testWatchPredicate(t, newStore(t)) })
	t.Run("WatchCompacted", func(t *testing.T) { testWatchCompacted(t, newStore(t)) })
	t.Run("WatchTransform", func(t *testing.T) { testWatchTransform(t, newStore(t)) })
	t.Run("ConcurrentWritesAndWatch", func(t *testing.T) { testConcurrent(t, newStore(t)) })
}

func cm(name string, labels map[string]string) *api.ConfigMap {
	return &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: labels}, Data: map[string]string{"k": name}}
}

func key(name string) string { return "/registry/core/configmaps/ns/" + name }

const prefix = "/registry/core/configmaps/"

func rv(t *testing.T, obj runtime.Object) int64 {
	t.Helper()
	s := obj.(*api.ConfigMap).ResourceVersion
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q is not an int64: %v", s, err)
	}
	return n
}

func mustCreate(t *testing.T, s storage.Interface, obj *api.ConfigMap) *api.ConfigMap {
	t.Helper()
	out, err := s.Create(context.Background(), key(obj.Name), obj)
	if err != nil {
		t.Fatalf("Create(%s): %v", obj.Name, err)
	}
	return out.(*api.ConfigMap)
}

func expectCode(t *testing.T, err error, want *storage.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want code %v", err, want)
	}
}

func names(items []runtime.Object) []string {
	var out []string
	for _, o := range items {
		out = append(out, o.(*api.ConfigMap).Name)
	}
	return out
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func testCreate(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	start, _ := s.CurrentRevision(ctx)
	in := cm("a", nil)
	a := mustCreate(t, s, in)
	if in.ResourceVersion != "" {
		t.Errorf("Create modified its argument")
	}
	if got := rv(t, a); got <= start {
		t.Errorf("revision %d not after start %d", got, start)
	}
	b := mustCreate(t, s, cm("b", nil))
	if rv(t, b) <= rv(t, a) {
		t.Errorf("revisions do not grow: %d then %d", rv(t, a), rv(t, b))
	}
	_, err := s.Create(ctx, key("a"), cm("a", nil))
	expectCode(t, err, storage.ErrKeyExists)
	if cur, _ := s.CurrentRevision(ctx); cur != rv(t, b) {
		t.Errorf("failed create moved revision to %d", cur)
	}
	// A returned object is the caller's: changing it changes nothing stored.
	a.Data["k"] = "changed"
	got, _ := s.Get(ctx, key("a"), storage.GetOptions{})
	if got.(*api.ConfigMap).Data["k"] != "a" {
		t.Errorf("stored object shares memory with the returned one")
	}
}

func testGet(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	_, err := s.Get(ctx, key("missing"), storage.GetOptions{})
	expectCode(t, err, storage.ErrNotFound)
	a := mustCreate(t, s, cm("a", nil))
	got, err := s.Get(ctx, key("a"), storage.GetOptions{MinRevision: rv(t, a)})
	if err != nil || rv(t, got) != rv(t, a) {
		t.Fatalf("Get = %v, %v; want revision %d", got, err, rv(t, a))
	}
	_, err = s.Get(ctx, key("a"), storage.GetOptions{MinRevision: rv(t, a) + 100})
	expectCode(t, err, storage.ErrTooLargeRevision)
}

func testUpdate(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	_, err := s.Update(ctx, key("missing"), cm("missing", nil), storage.UpdateOptions{})
	expectCode(t, err, storage.ErrNotFound)
	a := mustCreate(t, s, cm("a", nil))
	a.Data["k"] = "v2"
	b, err := s.Update(ctx, key("a"), a, storage.UpdateOptions{ExpectedRevision: rv(t, a)})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if rv(t, b) <= rv(t, a) {
		t.Errorf("update did not bump revision")
	}
	a.Data["k"] = "v3"
	_, err = s.Update(ctx, key("a"), a, storage.UpdateOptions{ExpectedRevision: rv(t, a)})
	expectCode(t, err, storage.ErrConflict)
	got, _ := s.Get(ctx, key("a"), storage.GetOptions{})
	if got.(*api.ConfigMap).Data["k"] != "v2" {
		t.Errorf("a conflicting update changed stored data: %v", got)
	}
	if _, err := s.Update(ctx, key("a"), a, storage.UpdateOptions{}); err != nil {
		t.Errorf("unconditional update: %v", err)
	}
}

// testManagedFields: objects with the same managed fields (a backend may
// share their bytes) keep them through writes, and what a caller does to
// its copy or its argument changes nothing stored.
func testManagedFields(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	fields := `{"f:data":{".":{},"f:k":{}}}`
	withFields := func(name string) *api.ConfigMap {
		c := cm(name, nil)
		c.ManagedFields = []metav1.ManagedFieldsEntry{{
			Manager: "test", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)},
		}}
		return c
	}
	in := withFields("a")
	a := mustCreate(t, s, in)
	mustCreate(t, s, withFields("b"))
	in.ManagedFields[0].FieldsV1.Raw[2] = 'X'
	a.ManagedFields[0].FieldsV1.Raw[3] = 'Y'
	a.ManagedFields[0].FieldsV1.Raw = append(a.ManagedFields[0].FieldsV1.Raw, '!')
	b, err := s.Update(ctx, key("b"), withFields("b"), storage.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.(*api.ConfigMap).ManagedFields[0].FieldsV1.Raw[4] = 'Z'
	list, err := s.List(ctx, "/registry/core/configmaps/ns/", storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(list.Items); !equal(got, []string{"a", "b"}) {
		t.Fatalf("List: %v", got)
	}
	for _, obj := range list.Items {
		c := obj.(*api.ConfigMap)
		if len(c.ManagedFields) != 1 || c.ManagedFields[0].FieldsV1 == nil || string(c.ManagedFields[0].FieldsV1.Raw) != fields {
			t.Errorf("%s: stored managed fields %+v, want the field set %s", c.Name, c.ManagedFields, fields)
		}
	}
}

func testDelete(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	_, err := s.Delete(ctx, key("missing"), storage.DeleteOptions{})
	expectCode(t, err, storage.ErrNotFound)
	a := mustCreate(t, s, cm("a", nil))
	_, err = s.Delete(ctx, key("a"), storage.DeleteOptions{ExpectedRevision: rv(t, a) + 1})
	expectCode(t, err, storage.ErrConflict)
	last, err := s.Delete(ctx, key("a"), storage.DeleteOptions{ExpectedRevision: rv(t, a)})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	cur, _ := s.CurrentRevision(ctx)
	if rv(t, last) != cur || last.(*api.ConfigMap).Data["k"] != "a" {
		t.Errorf("Delete returned %v, want the last state at revision %d", last, cur)
	}
	_, err = s.Get(ctx, key("a"), storage.GetOptions{})
	expectCode(t, err, storage.ErrNotFound)
	// The key can be created again.
	mustCreate(t, s, cm("a", nil))
}

func testList(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	for _, n := range []string{"c", "a", "b"} {
		mustCreate(t, s, cm(n, map[string]string{"odd": strconv.FormatBool(n != "b")}))
	}
	if _, err := s.Create(ctx, "/registry/core/configmapsx/ns/z", cm("z", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/registry/core/configmaps/other/y", cm("y", nil)); err != nil {
		t.Fatal(err)
	}
	cur, _ := s.CurrentRevision(ctx)
	res, err := s.List(ctx, "/registry/core/configmaps/ns/", storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !equal(names(res.Items), []string{"a", "b", "c"}) || res.Revision != cur || res.NextKey != "" {
		t.Errorf("List = %v at %d next %q; want [a b c] at %d", names(res.Items), res.Revision, res.NextKey, cur)
	}
	res, _ = s.List(ctx, prefix, storage.ListOptions{})
	if !equal(names(res.Items), []string{"a", "b", "c", "y"}) {
		t.Errorf("List(all namespaces) = %v", names(res.Items))
	}
	res, _ = s.List(ctx, prefix, storage.ListOptions{Predicate: func(o runtime.Object) (bool, error) {
		return o.(*api.ConfigMap).Labels["odd"] == "true", nil
	}})
	if !equal(names(res.Items), []string{"a", "c"}) {
		t.Errorf("List(predicate) = %v", names(res.Items))
	}
	_, err = s.List(ctx, prefix, storage.ListOptions{Match: storage.MatchNotOlderThan, Revision: cur + 100})
	expectCode(t, err, storage.ErrTooLargeRevision)
	_, err = s.List(ctx, prefix, storage.ListOptions{Match: storage.MatchExact, Revision: cur + 100})
	expectCode(t, err, storage.ErrTooLargeRevision)
	_, err = s.List(ctx, prefix, storage.ListOptions{StartKey: "/elsewhere"})
	expectCode(t, err, storage.ErrInvalidArgument)
}

func testListPagination(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	const n = 25
	for i := 0; i < n; i++ {
		mustCreate(t, s, cm(fmt.Sprintf("cm-%02d", i), nil))
	}
	first, err := s.List(ctx, prefix, storage.ListOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Items) != 10 || first.NextKey == "" || first.RemainingItemCount == nil || *first.RemainingItemCount != 15 {
		t.Fatalf("first page: %d items, next %q, remaining %v", len(first.Items), first.NextKey, first.RemainingItemCount)
	}
	// Writes after the first page must not show in the later pages.
	mustCreate(t, s, cm("cm-99", nil))
	if _, err := s.Delete(ctx, key("cm-20"), storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	seen := names(first.Items)
	next := first.NextKey
	for next != "" {
		page, err := s.List(ctx, prefix, storage.ListOptions{Limit: 10, StartKey: next, Match: storage.MatchExact, Revision: first.Revision})
		if err != nil {
			t.Fatal(err)
		}
		if page.Revision != first.Revision {
			t.Errorf("page read at %d, want snapshot %d", page.Revision, first.Revision)
		}
		seen = append(seen, names(page.Items)...)
		next = page.NextKey
	}
	if len(seen) != n || seen[n-1] != "cm-24" || seen[20] != "cm-20" {
		t.Errorf("paginated snapshot = %v", seen)
	}
	// A predicate page is cut at Limit matches and carries no count.
	res, _ := s.List(ctx, prefix, storage.ListOptions{Limit: 2, Predicate: func(runtime.Object) (bool, error) { return true, nil }})
	if len(res.Items) != 2 || res.NextKey == "" || res.RemainingItemCount != nil {
		t.Errorf("predicate page: %v next %q remaining %v", names(res.Items), res.NextKey, res.RemainingItemCount)
	}
}

func testListAtRevision(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	a := mustCreate(t, s, cm("a", nil))
	a.Data["k"] = "v2"
	if _, err := s.Update(ctx, key("a"), a, storage.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := mustCreate(t, s, cm("b", nil))
	if _, err := s.Delete(ctx, key("a"), storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	old, err := s.List(ctx, prefix, storage.ListOptions{Match: storage.MatchExact, Revision: rv(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	if !equal(names(old.Items), []string{"a"}) || old.Items[0].(*api.ConfigMap).Data["k"] != "a" {
		t.Errorf("List at %d = %v", rv(t, a), old.Items)
	}
	mid, _ := s.List(ctx, prefix, storage.ListOptions{Match: storage.MatchExact, Revision: rv(t, b)})
	if !equal(names(mid.Items), []string{"a", "b"}) || mid.Items[0].(*api.ConfigMap).Data["k"] != "v2" {
		t.Errorf("List at %d = %v", rv(t, b), mid.Items)
	}
	if err := s.Compact(ctx, rv(t, b)); err != nil {
		t.Fatal(err)
	}
	_, err = s.List(ctx, prefix, storage.ListOptions{Match: storage.MatchExact, Revision: rv(t, a)})
	expectCode(t, err, storage.ErrExpired)
	at, err := s.List(ctx, prefix, storage.ListOptions{Match: storage.MatchExact, Revision: rv(t, b)})
	if err != nil || !equal(names(at.Items), []string{"a", "b"}) {
		t.Errorf("List at the compacted revision = %v, %v", at, err)
	}
	latest, _ := s.List(ctx, prefix, storage.ListOptions{})
	if !equal(names(latest.Items), []string{"b"}) {
		t.Errorf("List after compaction = %v", names(latest.Items))
	}
}

func recv(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case e, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return watch.Event{}
}

func expectEvent(t *testing.T, w watch.Interface, typ watch.EventType, name string, rev int64) {
	t.Helper()
	e := recv(t, w)
	c, ok := e.Object.(*api.ConfigMap)
	if e.Type != typ || !ok || c.Name != name || (rev != 0 && rv(t, c) != rev) {
		t.Fatalf("got event %s %#v, want %s %s at %d", e.Type, e.Object, typ, name, rev)
	}
}

func testWatchFromRevision(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	a := mustCreate(t, s, cm("a", nil))
	b := mustCreate(t, s, cm("b", nil))
	w, err := s.Watch(ctx, prefix, storage.WatchOptions{Revision: rv(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	expectEvent(t, w, watch.Added, "b", rv(t, b))
	b.Data["k"] = "v2"
	b2, _ := s.Update(ctx, key("b"), b, storage.UpdateOptions{})
	expectEvent(t, w, watch.Modified, "b", rv(t, b2))
	last, _ := s.Delete(ctx, key("a"), storage.DeleteOptions{})
	expectEvent(t, w, watch.Deleted, "a", rv(t, last))

	// Revision 0 starts from now.
	now, err := s.Watch(ctx, prefix, storage.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := mustCreate(t, s, cm("c", nil))
	expectEvent(t, now, watch.Added, "c", rv(t, c))
	now.Stop()
	for range now.ResultChan() {
	}
	// Other prefixes are not seen.
	other, _ := s.Watch(ctx, "/registry/core/configmaps/other/", storage.WatchOptions{Revision: 1})
	defer other.Stop()
	if _, err := s.Create(ctx, "/registry/core/configmaps/other/x", cm("x", nil)); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, other, watch.Added, "x", 0)
}

func testWatchPredicate(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	pred := func(o runtime.Object) (bool, error) { return o.(*api.ConfigMap).Labels["x"] == "y", nil }
	w, err := s.Watch(ctx, prefix, storage.WatchOptions{Predicate: pred})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	a := mustCreate(t, s, cm("a", nil)) // not matching: no event
	update := func() {
		t.Helper()
		out, err := s.Update(ctx, key("a"), a, storage.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a = out.(*api.ConfigMap)
	}
	a.Labels = map[string]string{"x": "y"}
	update()
	expectEvent(t, w, watch.Added, "a", rv(t, a))
	a.Data["k"] = "v2"
	update()
	expectEvent(t, w, watch.Modified, "a", rv(t, a))
	a.Labels = nil
	update()
	expectEvent(t, w, watch.Deleted, "a", rv(t, a))
}

func testWatchCompacted(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	a := mustCreate(t, s, cm("a", nil))
	b := mustCreate(t, s, cm("b", nil))
	if err := s.Compact(ctx, rv(t, b)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Watch(ctx, prefix, storage.WatchOptions{Revision: rv(t, a)})
	expectCode(t, err, storage.ErrExpired)
	w, err := s.Watch(ctx, prefix, storage.WatchOptions{Revision: rv(t, b)})
	if err != nil {
		t.Fatalf("watch from the compacted revision itself: %v", err)
	}
	defer w.Stop()
	c := mustCreate(t, s, cm("c", nil))
	expectEvent(t, w, watch.Added, "c", rv(t, c))
}

// testWatchTransform: a watch sends what WatchOptions.Transform makes of
// each event, in order, leaves out what it drops, and ends after an error
// it makes.
func testWatchTransform(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	transform := func(e watch.Event) (watch.Event, bool) {
		c, ok := e.Object.(*api.ConfigMap)
		switch {
		case !ok:
			return e, true
		case c.Name == "dropped":
			return e, false
		case c.Name == "fails":
			return watch.Event{Type: watch.Error, Object: &metav1.Status{Status: metav1.StatusFailure, Code: 500}}, true
		}
		// Stored objects are shared: the transform returns a copy.
		c = c.DeepCopy()
		c.Annotations = map[string]string{"transformed": string(e.Type)}
		return watch.Event{Type: e.Type, Object: c}, true
	}
	w, err := s.Watch(ctx, prefix, storage.WatchOptions{Revision: rv(t, mustCreate(t, s, cm("before", nil))), Transform: transform})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	mustCreate(t, s, cm("dropped", nil))
	a := mustCreate(t, s, cm("a", nil))
	e := recv(t, w)
	if c, ok := e.Object.(*api.ConfigMap); e.Type != watch.Added || !ok || c.Name != "a" || c.Annotations["transformed"] != "ADDED" || rv(t, c) != rv(t, a) {
		t.Fatalf("got event %s %#v, want the transformed ADDED of a", e.Type, e.Object)
	}
	if got, err := s.Get(ctx, key("a"), storage.GetOptions{}); err != nil || got.(*api.ConfigMap).Annotations != nil {
		t.Fatalf("the stored object changed with its event: %#v, %v", got, err)
	}
	mustCreate(t, s, cm("fails", nil))
	mustCreate(t, s, cm("after", nil))
	if e := recv(t, w); e.Type != watch.Error {
		t.Fatalf("got event %s %#v, want the transform's error", e.Type, e.Object)
	}
	select {
	case e, open := <-w.ResultChan():
		if open {
			t.Fatalf("got event %s %#v after an error, want the watch ended", e.Type, e.Object)
		}
	case <-time.After(time.Minute):
		t.Fatal("the watch did not end after its error")
	}
}

func testConcurrent(t *testing.T, s storage.Interface) {
	ctx := context.Background()
	w, err := s.Watch(ctx, prefix, storage.WatchOptions{Revision: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.Create(ctx, key(fmt.Sprintf("w%d-%d", g, i)), cm(fmt.Sprintf("w%d-%d", g, i), nil)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var last int64
	seen := map[string]bool{}
	for len(seen) < writers*each {
		e := recv(t, w)
		c := e.Object.(*api.ConfigMap)
		if r := rv(t, c); r <= last {
			t.Fatalf("event at revision %d after %d", r, last)
		} else {
			last = r
		}
		if seen[c.Name] {
			t.Fatalf("event for %s repeated", c.Name)
		}
		seen[c.Name] = true
	}
	res, _ := s.List(ctx, prefix, storage.ListOptions{})
	if len(res.Items) != writers*each {
		t.Errorf("list has %d items, want %d", len(res.Items), writers*each)
	}
}

var (
	codecOnce sync.Once
	codec     *encoding.Codec
	codecErr  error
)

// Codec returns one encoding.Codec for the tests of a process: building
// kube-apiserver's storage factory takes a while.
func Codec(t testing.TB) *encoding.Codec {
	t.Helper()
	codecOnce.Do(func() { codec, codecErr = encoding.NewCodec() })
	if codecErr != nil {
		t.Fatal(codecErr)
	}
	return codec
}
