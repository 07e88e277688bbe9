package memory

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/storagetest"
)

func TestContract(t *testing.T) {
	storagetest.RunContractTests(t, func(t *testing.T) storage.Interface {
		s, err := New(Config{FutureRevisionWait: 50 * time.Millisecond, CompactionInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestManagedFieldsShared: stored versions with the same field set hold one
// copy of it (the pods of a ReplicaSet, a lease's renewals), and versions
// with another field set do not.
func TestManagedFieldsShared(t *testing.T) {
	s, err := New(Config{CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	withFields := func(name, fields string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", ManagedFields: []metav1.ManagedFieldsEntry{{
			Manager: "test", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)},
		}}}}
	}
	for _, c := range []*corev1.ConfigMap{withFields("a", `{"f:data":{}}`), withFields("b", `{"f:data":{}}`), withFields("c", `{"f:binaryData":{}}`)} {
		if _, err := s.Create(ctx, "/registry/configmaps/ns/"+c.Name, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update(ctx, "/registry/configmaps/ns/a", withFields("a", `{"f:data":{}}`), storage.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw := map[string]*byte{}
	s.mu.RLock()
	s.tree.Ascend(func(r *record) bool {
		for i, v := range r.versions {
			raw[r.key[len("/registry/configmaps/ns/"):]+string(rune('0'+i))] = &v.obj.(*corev1.ConfigMap).ManagedFields[0].FieldsV1.Raw[0]
		}
		return true
	})
	s.mu.RUnlock()
	if raw["a0"] != raw["b0"] || raw["a1"] != raw["a0"] {
		t.Errorf("the same field set is held more than once")
	}
	if raw["c0"] == raw["a0"] {
		t.Errorf("different field sets share bytes")
	}
}
