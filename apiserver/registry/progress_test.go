package registry

import (
	"testing"
	"time"

	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/storage/etcd3/testserver"
	api "k8s.io/kubernetes/pkg/apis/core"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubesim/kubesim/apiserver/storage/etcd"
)

// TestEtcdProgressIsABookmarkOnlyWhenAsked: etcd's progress notifications
// (every 10 minutes by default, to every idle watch) reach a client as a
// bookmark at etcd's revision when it asked for bookmarks, as
// kube-apiserver's etcd watch makes them, and not at all otherwise: an
// idle watch of a cluster on etcd goes on as it would on kube-apiserver,
// instead of failing to encode the notification and ending.
func TestEtcdProgressIsABookmarkOnlyWhenAsked(t *testing.T) {
	cfg := testserver.NewTestConfig(t)
	const interval = 50 * time.Millisecond
	cfg.WatchProgressNotifyInterval = interval
	client := testserver.RunEtcd(t, cfg).Client
	st, err := etcd.New(etcd.Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	// A clock that never moves: the only bookmarks are etcd's.
	clock := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r, err := New(Config{Storage: st, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	s := r.Stores[schema.GroupResource{Resource: "configmaps"}]
	ctx := requestCtx("configmaps", "ns")
	created, err := s.Create(ctx, configMap("a"), nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv := created.(*api.ConfigMap).ResourceVersion
	open := func(opts metainternalversion.ListOptions) watch.Interface {
		t.Helper()
		w, err := s.Watch(ctx, &opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
		return w
	}
	next := func(w watch.Interface) watch.Event {
		t.Helper()
		select {
		case e, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch ended")
			}
			if c, ok := e.Object.(runtime.CacheableObject); ok {
				e.Object = c.GetObject() // the object behind its shared encodings
			}
			return e
		case <-time.After(time.Minute):
			t.Fatal("no event within a minute")
		}
		return watch.Event{}
	}
	fromRV := open(metainternalversion.ListOptions{ResourceVersion: rv})
	initial := open(metainternalversion.ListOptions{})
	if e := next(initial); e.Type != watch.Added || e.Object.(*api.ConfigMap).Name != "a" {
		t.Fatalf("got %s %#v, want the initial ADDED of a", e.Type, e.Object)
	}
	bookmarks := open(metainternalversion.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
	// A write elsewhere: etcd notifies the progress of a watch once its
	// revision has reached the watch's start.
	other, err := s.Create(requestCtx("configmaps", "other"), &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "other"}}, nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := next(bookmarks)
	if e.Type != watch.Bookmark {
		t.Fatalf("got %s %#v, want a bookmark", e.Type, e.Object)
	}
	if cm, ok := e.Object.(*api.ConfigMap); !ok || cm.ResourceVersion != other.(*api.ConfigMap).ResourceVersion {
		t.Fatalf("got the bookmark %#v, want a ConfigMap at etcd's revision %s", e.Object, other.(*api.ConfigMap).ResourceVersion)
	}
	// The watches without bookmarks have had their notifications too.
	time.Sleep(5 * interval)
	b, err := s.Create(ctx, configMap("b"), nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]watch.Interface{"from a revision": fromRV, "with the initial events": initial} {
		if e := next(w); e.Type != watch.Added || e.Object.(*api.ConfigMap).ResourceVersion != b.(*api.ConfigMap).ResourceVersion {
			t.Errorf("watch %s: got %s %#v, want the ADDED of b", name, e.Type, e.Object)
		}
	}
}
