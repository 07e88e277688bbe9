package encoding

import (
	"bytes"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/kube-aggregator/pkg/apis/apiregistration"
	"k8s.io/kubernetes/pkg/apis/apps"
	api "k8s.io/kubernetes/pkg/apis/core"
)

func TestRoundTrip(t *testing.T) {
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	meta := metav1.ObjectMeta{Name: "a", Namespace: "ns", Labels: map[string]string{"x": "y"}, ResourceVersion: "7"}
	cr := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Foo", "metadata": map[string]any{"name": "a", "namespace": "ns"}, "spec": map[string]any{"n": int64(3)}}}
	for _, tc := range []struct {
		key      string
		obj      runtime.Object
		etcdKey  string
		protobuf bool
	}{
		{"/registry/core/configmaps/ns/a", &api.ConfigMap{ObjectMeta: meta, Data: map[string]string{"k": "v"}}, "/configmaps/ns/a", true},
		{"/registry/core/pods/ns/a", &api.Pod{ObjectMeta: meta, Spec: api.PodSpec{NodeName: "n1"}}, "/pods/ns/a", true},
		{"/registry/core/nodes/a", &api.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, "/minions/a", true},
		{"/registry/core/services/ns/a", &api.Service{ObjectMeta: meta}, "/services/specs/ns/a", true},
		{"/registry/core/endpoints/ns/a", &api.Endpoints{ObjectMeta: meta}, "/services/endpoints/ns/a", true},
		{"/registry/apps/deployments/ns/a", &apps.Deployment{ObjectMeta: meta}, "/deployments/ns/a", true},
		{"/registry/apiextensions.k8s.io/customresourcedefinitions/foos.example.com", &apiextensions.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "foos.example.com"}}, "/apiextensions.k8s.io/customresourcedefinitions/foos.example.com", true},
		{"/registry/apiregistration.k8s.io/apiservices/v1.apps", &apiregistration.APIService{ObjectMeta: metav1.ObjectMeta{Name: "v1.apps"}}, "/apiregistration.k8s.io/apiservices/v1.apps", true},
		{"/registry/example.com/foos/ns/a", cr, "/example.com/foos/ns/a", false},
	} {
		t.Run(tc.key, func(t *testing.T) {
			data, err := c.Encode(tc.key, tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.HasPrefix(data, []byte("k8s\x00")); got != tc.protobuf {
				t.Errorf("protobuf envelope: %v, want %v (%q)", got, tc.protobuf, data[:min(len(data), 20)])
			}
			back, err := c.Decode(tc.key, data)
			if err != nil {
				t.Fatal(err)
			}
			// Reading defaults, as reading from etcd does: the
			// defaulted object round-trips exactly.
			again, err := c.Encode(tc.key, back)
			if err != nil {
				t.Fatal(err)
			}
			twice, err := c.Decode(tc.key, again)
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(back, twice) {
				t.Errorf("round trip:\n got %#v\nwant %#v", twice, back)
			}
			if a, b := mustAccessor(t, back), mustAccessor(t, tc.obj); a.GetName() != b.GetName() || a.GetResourceVersion() != b.GetResourceVersion() || len(a.GetLabels()) != len(b.GetLabels()) {
				t.Errorf("metadata lost: %v/%v/%v", a.GetName(), a.GetResourceVersion(), a.GetLabels())
			}
			k, err := c.EtcdKey(tc.key)
			if err != nil || k != tc.etcdKey {
				t.Errorf("EtcdKey = %q, %v; want %q", k, err, tc.etcdKey)
			}
		})
	}
}

func mustAccessor(t *testing.T, obj runtime.Object) metav1.Object {
	t.Helper()
	a, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBadInput(t *testing.T) {
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "/other/x", "/registry/", "/registry/core"} {
		if _, err := c.Encode(key, &api.ConfigMap{}); err == nil {
			t.Errorf("Encode(%q): no error", key)
		}
	}
	if _, err := c.Decode("/registry/core/configmaps/ns/a", []byte("k8s\x00garbage")); err == nil {
		t.Error("Decode of garbage: no error")
	}
	if _, err := c.Encode("/registry/core/configmaps/ns/a", &unstructured.Unstructured{}); err == nil {
		t.Error("Encode of an unstructured object without a kind: no error")
	}
}
