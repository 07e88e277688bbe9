package apiserver

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
)

// TestBootstrapManagedFields checks the managedFields of every bootstrap
// object of servers started one after another in a process, with other
// Service ranges and ports (the later ones take them from the process's
// cache, see bootstrapFields): each is what the create handler's field
// manager gives that server's object, a single Update by kube-apiserver
// (by APF's configuration producer for FlowSchemas and priority levels).
// That they are kube-apiserver's own is checked against it by the
// conformance suite (testdata/golden/bootstrap-managedfields.jsonl).
func TestBootstrapManagedFields(t *testing.T) {
	ctx := context.Background()
	for _, cidr := range []string{"10.96.0.0/16", "10.200.0.0/24", "172.20.0.0/16"} {
		cfg := Config{AnyPort: true}
		cfg.Services.ClusterIPRange = cidr
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
		for _, b := range s.bootstrapObjects() {
			gvks, _, err := legacyscheme.Scheme.ObjectKinds(b.obj)
			if err != nil {
				t.Fatal(err)
			}
			kind := gvks[0]
			legacyscheme.Scheme.Default(b.obj)
			internal, err := legacyscheme.Scheme.ConvertToVersion(b.obj, schema.GroupVersion{Group: kind.Group, Version: runtime.APIVersionInternal})
			if err != nil {
				t.Fatal(err)
			}
			name := meta.NewAccessor()
			objName, _ := name.Name(internal)
			stored, err := s.registry.Stores[b.resource].Get(requestContext(ctx, "get", kind.Group, kind.Version, b.resource.Resource, b.namespace), objName, &metav1.GetOptions{})
			if err != nil {
				t.Fatalf("%s %s/%s: %v", b.resource, b.namespace, objName, err)
			}
			manager := b.manager
			if manager == "" {
				manager = loopbackManager
			}
			live, err := legacyscheme.Scheme.New(kind)
			if err != nil {
				t.Fatal(err)
			}
			want := s.api.fieldManager(kind.GroupVersion().WithResource(b.resource.Resource), "").UpdateNoErrors(live, internal, manager)
			got := managedFieldsOf(t, stored)
			wantFields := managedFieldsOf(t, want)
			if b.statusManager != "" {
				// The status's entry follows (its own apply).
				if len(got) != 2 || got[0].Manager != b.statusManager || got[0].Operation != metav1.ManagedFieldsOperationApply || got[0].Subresource != "status" {
					t.Errorf("%s %s: managedFields %+v, want %s's apply of the status first", b.resource, objName, got, b.statusManager)
					continue
				}
				got = got[1:]
			}
			if len(wantFields) != 1 || wantFields[0].Manager != manager || wantFields[0].Operation != metav1.ManagedFieldsOperationUpdate {
				t.Fatalf("%s %s: the field manager gives %+v", b.resource, objName, wantFields)
			}
			if !equality.Semantic.DeepEqual(got, wantFields) {
				t.Errorf("%s %s/%s (ServiceCIDR %s): managedFields\n%+v\nwant\n%+v", b.resource, b.namespace, objName, cidr, got, wantFields)
			}
		}
	}
}

// managedFieldsOf is obj's managedFields without their times.
func managedFieldsOf(t *testing.T, obj runtime.Object) []metav1.ManagedFieldsEntry {
	t.Helper()
	a, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	var out []metav1.ManagedFieldsEntry
	for _, f := range a.GetManagedFields() {
		if f.Time == nil {
			t.Errorf("%s: a managedFields entry without a time: %+v", a.GetName(), f)
		}
		f.Time = nil
		out = append(out, f)
	}
	return out
}
