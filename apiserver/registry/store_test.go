package registry

import (
	"context"
	goruntime "runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	api "k8s.io/kubernetes/pkg/apis/core"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/memory"
)

func newTestRegistry(t *testing.T) (*Registry, *clocktesting.FakeClock) {
	t.Helper()
	clock := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m, err := memory.New(memory.Config{Clock: clock, CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Storage: m, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return r, clock
}

// requestCtx is what the REST handlers give a store.
func requestCtx(resource, namespace string) context.Context {
	ctx := genericapirequest.WithNamespace(context.Background(), namespace)
	return genericapirequest.WithRequestInfo(ctx, &genericapirequest.RequestInfo{
		IsResourceRequest: true, APIPrefix: "api", APIVersion: "v1", Resource: resource, Namespace: namespace, Verb: "create",
	})
}

func configMap(name string, finalizers ...string) *api.ConfigMap {
	return &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Finalizers: finalizers}, Data: map[string]string{"k": "v"}}
}

func TestUpdateThatChangesNothingWritesNothing(t *testing.T) {
	r, _ := newTestRegistry(t)
	s := r.Stores[schema.GroupResource{Resource: "configmaps"}]
	ctx := requestCtx("configmaps", "ns")
	created, err := s.Create(ctx, configMap("same"), nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again := created.DeepCopyObject()
	out, _, err := s.Update(ctx, "same", rest.DefaultUpdatedObjectInfo(again), nil, nil, false, &metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.(*api.ConfigMap).ResourceVersion, created.(*api.ConfigMap).ResourceVersion; got != want {
		t.Errorf("a no-op update moved resourceVersion from %s to %s", want, got)
	}
}

// TestUpdateOfTheServedObjectWritesNothing: a client sends back the object
// it was served, whose times have the second precision of their serialized
// form (kubectl patch with the same data): nothing changes, as with
// kube-apiserver, whose storage round trip truncates the times it sets.
func TestUpdateOfTheServedObjectWritesNothing(t *testing.T) {
	r, _ := newTestRegistry(t)
	s := r.Stores[schema.GroupResource{Resource: "configmaps"}]
	ctx := requestCtx("configmaps", "ns")
	cm := configMap("served")
	now := metav1.NewTime(time.Now().Truncate(time.Second).Add(123456789 * time.Nanosecond))
	cm.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl-create", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now,
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{".":{},"f:k":{}}}`)}}}
	created, err := s.Create(ctx, cm, nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	codec := legacyscheme.Codecs.LegacyCodec(corev1.SchemeGroupVersion)
	b, err := runtime.Encode(codec, created)
	if err != nil {
		t.Fatal(err)
	}
	served, err := runtime.Decode(legacyscheme.Codecs.UniversalDecoder(), b)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := s.Update(ctx, "served", rest.DefaultUpdatedObjectInfo(served), nil, nil, false, &metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.(*api.ConfigMap).ResourceVersion, created.(*api.ConfigMap).ResourceVersion; got != want {
		t.Errorf("sending back the served object moved resourceVersion from %s to %s", want, got)
	}
}

// TestUpdateRemovingTheLastFinalizer: an update that removes the last
// finalizer of an object being deleted deletes it and, as kube-apiserver
// does, answers with the object written, not a Status (the garbage
// collector's metadata client depends on it).
func TestUpdateRemovingTheLastFinalizer(t *testing.T) {
	r, _ := newTestRegistry(t)
	s := r.Stores[schema.GroupResource{Resource: "configmaps"}]
	ctx := requestCtx("configmaps", "ns")
	if _, err := s.Create(ctx, configMap("held", "example.com/hold"), nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx, "held", nil, &metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "held", &metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm := got.(*api.ConfigMap)
	cm.Finalizers = nil
	out, _, err := s.Update(ctx, "held", rest.DefaultUpdatedObjectInfo(cm), nil, nil, false, &metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out.(*api.ConfigMap); !ok {
		t.Fatalf("the update answered with %T, want the ConfigMap", out)
	}
	if _, err := s.Get(ctx, "held", &metav1.GetOptions{}); err == nil {
		t.Fatal("the object is still stored")
	}
}

func TestDelete(t *testing.T) {
	zero, thirty := int64(0), int64(30)
	orphan, foreground := metav1.DeletePropagationOrphan, metav1.DeletePropagationForeground
	cases := []struct {
		name       string
		obj        runtime.Object
		resource   string
		opts       metav1.DeleteOptions
		wantGone   bool
		finalizers []string
		grace      *int64
	}{
		{name: "plain", obj: configMap("plain"), resource: "configmaps", wantGone: true},
		{name: "with a finalizer", obj: configMap("fin", "example.com/hold"), resource: "configmaps", finalizers: []string{"example.com/hold"}, grace: &zero},
		{name: "orphan", obj: configMap("orphan"), resource: "configmaps", opts: metav1.DeleteOptions{PropagationPolicy: &orphan}, finalizers: []string{metav1.FinalizerOrphanDependents}, grace: &zero},
		{name: "foreground", obj: configMap("fg"), resource: "configmaps", opts: metav1.DeleteOptions{PropagationPolicy: &foreground}, finalizers: []string{metav1.FinalizerDeleteDependents}, grace: &zero},
		{name: "unscheduled pod", resource: "pods", wantGone: true, obj: &api.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unscheduled", Namespace: "ns"},
			Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: "i", ImagePullPolicy: api.PullAlways, TerminationMessagePolicy: api.TerminationMessageReadFile}},
				RestartPolicy: api.RestartPolicyAlways, DNSPolicy: api.DNSClusterFirst, TerminationGracePeriodSeconds: &thirty, SecurityContext: &api.PodSecurityContext{}, SchedulerName: "default-scheduler"}}},
		{name: "bound pod", resource: "pods", grace: &thirty, obj: &api.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bound", Namespace: "ns"},
			Spec: api.PodSpec{NodeName: "n1", Containers: []api.Container{{Name: "c", Image: "i", ImagePullPolicy: api.PullAlways, TerminationMessagePolicy: api.TerminationMessageReadFile}},
				RestartPolicy: api.RestartPolicyAlways, DNSPolicy: api.DNSClusterFirst, TerminationGracePeriodSeconds: &thirty, SecurityContext: &api.PodSecurityContext{}, SchedulerName: "default-scheduler"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, clock := newTestRegistry(t)
			s := r.Stores[schema.GroupResource{Resource: tc.resource}]
			ctx := requestCtx(tc.resource, "ns")
			created, err := s.Create(ctx, tc.obj, nil, &metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			name := created.(metav1.Object).GetName()
			opts := tc.opts
			if _, _, err := s.Delete(ctx, name, nil, &opts); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, name, &metav1.GetOptions{})
			if tc.wantGone {
				if err == nil {
					t.Fatalf("still there: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("gone, want it kept: %v", err)
			}
			m := got.(metav1.Object)
			if m.GetDeletionTimestamp() == nil {
				t.Fatal("no deletionTimestamp")
			}
			if tc.grace != nil && *tc.grace == 0 && !m.GetDeletionTimestamp().Time.Equal(clock.Now()) {
				t.Errorf("deletionTimestamp %v, want the injected clock's %v", m.GetDeletionTimestamp(), clock.Now())
			}
			if g := m.GetDeletionGracePeriodSeconds(); tc.grace != nil && (g == nil || *g != *tc.grace) {
				t.Errorf("deletionGracePeriodSeconds %v, want %d", g, *tc.grace)
			}
			if tc.finalizers != nil && !equalStrings(m.GetFinalizers(), tc.finalizers) {
				t.Errorf("finalizers %v, want %v", m.GetFinalizers(), tc.finalizers)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWatchBookmarksFollowTheInjectedClock(t *testing.T) {
	r, clock := newTestRegistry(t)
	s := r.Stores[schema.GroupResource{Resource: "configmaps"}]
	ctx := requestCtx("configmaps", "ns")
	created, err := s.Create(ctx, configMap("a"), nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv := created.(*api.ConfigMap).ResourceVersion
	w, err := s.Watch(ctx, &metainternalversion.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for !clock.HasWaiters() {
		goruntime.Gosched()
	}
	clock.Step(time.Minute)
	select {
	case e := <-w.ResultChan():
		if e.Type != watch.Bookmark || e.Object.(*api.ConfigMap).ResourceVersion != rv {
			t.Fatalf("got %s %#v, want a bookmark at %s", e.Type, e.Object, rv)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no bookmark after a minute of the injected clock")
	}
}

// racingStorage makes the first Update race with another writer: it
// changes the object first, so the Update's expected revision is stale.
type racingStorage struct {
	storage.Interface
	raced bool
}

func (r *racingStorage) Update(ctx context.Context, key string, obj runtime.Object, opts storage.UpdateOptions) (runtime.Object, error) {
	if !r.raced {
		r.raced = true
		current, err := r.Interface.Get(ctx, key, storage.GetOptions{})
		if err != nil {
			return nil, err
		}
		other := current.DeepCopyObject().(*api.ConfigMap)
		other.Data["other"] = "writer"
		if _, err := r.Interface.Update(ctx, key, other, storage.UpdateOptions{}); err != nil {
			return nil, err
		}
	}
	return r.Interface.Update(ctx, key, obj, opts)
}

// TestPatchRetriesOnAConflict: a patch (an update computed from the current
// object, with no resourceVersion of the client's) that races another
// writer is applied again to the new state, as kube-apiserver's
// GuaranteedUpdate does, rather than answering 409; an update that names
// the old resourceVersion gets the 409.
func TestPatchRetriesOnAConflict(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m, err := memory.New(memory.Config{Clock: clock, CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	racing := &racingStorage{Interface: m}
	r, err := New(Config{Storage: racing, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	s := r.Stores[schema.GroupResource{Resource: "configmaps"}]
	ctx := requestCtx("configmaps", "ns")
	created, err := s.Create(ctx, configMap("patched"), nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	patch := rest.DefaultUpdatedObjectInfo(nil, func(_ context.Context, _, current runtime.Object) (runtime.Object, error) {
		cm := current.DeepCopyObject().(*api.ConfigMap)
		cm.Data["patched"] = "yes"
		return cm, nil
	})
	out, _, err := s.Update(ctx, "patched", patch, nil, nil, false, &metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("the patch failed: %v", err)
	}
	if got := out.(*api.ConfigMap).Data; got["patched"] != "yes" || got["other"] != "writer" {
		t.Errorf("data after the patch = %v, want both writers' keys", got)
	}

	racing.raced = false
	stale := created.DeepCopyObject().(*api.ConfigMap) // names the first resourceVersion
	stale.Data["stale"] = "yes"
	if _, _, err := s.Update(ctx, "patched", rest.DefaultUpdatedObjectInfo(stale), nil, nil, false, &metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("an update of a stale resourceVersion: err = %v, want a conflict", err)
	}
}

// TestTerminatingNamespaceOutlivesStatusWrites: the namespace controller
// writes a terminating namespace's status conditions while it deletes its
// content; the namespace goes only once /finalize empties spec.finalizers.
func TestTerminatingNamespaceOutlivesStatusWrites(t *testing.T) {
	r, _ := newTestRegistry(t)
	gr := schema.GroupResource{Resource: "namespaces"}
	ns := r.Stores[gr]
	ctx := requestCtx("namespaces", "")
	if _, err := ns.Create(ctx, &api.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ns.restStorage().(rest.GracefulDeleter).Delete(ctx, "doomed", nil, &metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		sub    string
		mutate func(*api.Namespace)
		gone   bool
	}{
		{"status", func(n *api.Namespace) {
			n.Status.Conditions = append(n.Status.Conditions, api.NamespaceCondition{Type: api.NamespaceConditionType("NamespaceContentRemaining"), Status: api.ConditionTrue, Reason: "SomeResourcesRemain"})
		}, false},
		{"finalize", func(n *api.Namespace) { n.Spec.Finalizers = nil }, true},
	} {
		t.Run(step.sub, func(t *testing.T) {
			obj, err := ns.Get(ctx, "doomed", &metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n := obj.(*api.Namespace)
			step.mutate(n)
			sub := NewStrategySubresource(ns, specs[gr].updates[step.sub])
			if _, _, err := sub.Update(ctx, "doomed", rest.DefaultUpdatedObjectInfo(n), nil, nil, false, &metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			_, err = ns.Get(ctx, "doomed", &metav1.GetOptions{})
			if gone := apierrors.IsNotFound(err); gone != step.gone {
				t.Fatalf("after the %s write: gone %v, want %v (err %v)", step.sub, gone, step.gone, err)
			}
		})
	}
}

// namesFrom is a strategy whose generated names come from a list, in turn
// (the last one again once the list is used up).
type namesFrom struct {
	Strategy
	names []string
	calls int
}

func (n *namesFrom) GenerateName(base string) string {
	name := n.names[min(n.calls, len(n.names)-1)]
	n.calls++
	return name
}

// TestCreateWithGenerateNameRetriesATakenName: as kube-apiserver does, a
// create with generateName whose generated name is taken tries a new one,
// up to eight times, and only then answers AlreadyExists. (At 1,000
// replicas of a ReplicaSet, one name in 14,000 collides: without the retry,
// the 150,000-pod bench saw the ReplicaSet controller's creates fail.)
func TestCreateWithGenerateNameRetriesATakenName(t *testing.T) {
	for _, tc := range []struct {
		name      string
		generated []string
		obj       *api.ConfigMap
		wantName  string // "" : AlreadyExists
		wantCalls int    // names generated for the second create
	}{
		{name: "taken once", generated: []string{"gen-a", "gen-b"}, obj: &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-", Namespace: "ns"}}, wantName: "gen-b", wantCalls: 2},
		{name: "taken eight times", generated: []string{"gen-a"}, obj: &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-", Namespace: "ns"}}, wantCalls: 8},
		{name: "a name of the client's is not generated again", generated: []string{"gen-a"}, obj: configMap("gen-a"), wantCalls: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTestRegistry(t)
			s := r.Stores[schema.GroupResource{Resource: "configmaps"}]
			gen := &namesFrom{Strategy: s.cfg.Strategy, names: tc.generated}
			s.cfg.Strategy = gen
			ctx := requestCtx("configmaps", "ns")
			if _, err := s.Create(ctx, configMap("gen-a"), nil, &metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			gen.calls = 0
			out, err := s.Create(ctx, tc.obj, nil, &metav1.CreateOptions{})
			if gen.calls != tc.wantCalls {
				t.Errorf("%d names generated, want %d", gen.calls, tc.wantCalls)
			}
			if tc.wantName == "" {
				if !apierrors.IsAlreadyExists(err) {
					t.Fatalf("got %v, want AlreadyExists", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := out.(*api.ConfigMap).Name; got != tc.wantName {
				t.Errorf("created %q, want %q", got, tc.wantName)
			}
			if tc.obj.Name != "" {
				t.Errorf("the request's object was changed: name %q", tc.obj.Name)
			}
		})
	}
}

// TestUnchangedAsSemanticDeepEqual: the managed fields' shortcut never
// says an update changed nothing when DeepEqual says it changed something,
// and never calls a no-op update a change.
func TestUnchangedAsSemanticDeepEqual(t *testing.T) {
	at := func(sec int64, nsec int64) *metav1.Time { t := metav1.Unix(sec, nsec); return &t }
	entry := func(manager string, tm *metav1.Time, raw string) metav1.ManagedFieldsEntry {
		e := metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: tm, FieldsType: "FieldsV1"}
		if raw != "" {
			e.FieldsV1 = &metav1.FieldsV1{Raw: []byte(raw)}
		}
		return e
	}
	cm := func(data string, fields ...metav1.ManagedFieldsEntry) *api.ConfigMap {
		return &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n", ManagedFields: fields}, Data: map[string]string{"k": data}}
	}
	local := metav1.NewTime(time.Unix(100, 0).In(time.FixedZone("x", 3600)))
	for _, tc := range []struct {
		name      string
		obj, prev *api.ConfigMap
	}{
		{"same", cm("a", entry("m", at(100, 0), `{"f:data":{}}`)), cm("a", entry("m", at(100, 0), `{"f:data":{}}`))},
		{"data changed, fields alike", cm("b", entry("m", at(100, 0), `{"f:data":{}}`)), cm("a", entry("m", at(100, 0), `{"f:data":{}}`))},
		{"time changed", cm("b", entry("m", at(101, 0), `{"f:data":{}}`)), cm("a", entry("m", at(100, 0), `{"f:data":{}}`))},
		{"same instant, other zone", cm("a", entry("m", &local, `{}`)), cm("a", entry("m", at(100, 0), `{}`))},
		{"nanoseconds", cm("a", entry("m", at(100, 1), `{}`)), cm("a", entry("m", at(100, 0), `{}`))},
		{"fields changed", cm("a", entry("m", at(100, 0), `{"f:data":{}}`)), cm("a", entry("m", at(100, 0), `{}`))},
		{"no fields and empty fields", cm("a", entry("m", at(100, 0), "")), cm("a", entry("m", at(100, 0), `{}`))},
		{"no time", cm("a", entry("m", nil, `{}`)), cm("a", entry("m", at(100, 0), `{}`))},
		{"manager", cm("a", entry("n", at(100, 0), `{}`)), cm("a", entry("m", at(100, 0), `{}`))},
		{"another entry", cm("a", entry("m", at(100, 0), `{}`), entry("n", at(100, 0), `{}`)), cm("a", entry("m", at(100, 0), `{}`))},
		{"nil and empty lists", cm("a"), &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n", ManagedFields: []metav1.ManagedFieldsEntry{}}, Data: map[string]string{"k": "a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := apiequality.Semantic.DeepEqual(tc.obj, tc.prev)
			if got := unchanged(tc.obj, tc.prev); got != want {
				t.Errorf("unchanged = %v, Semantic.DeepEqual = %v", got, want)
			}
		})
	}
}
