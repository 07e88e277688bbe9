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
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"decoded history", Config{}},
		// Every version but the latest kept encoded, every event but the
		// last read back from the versions.
		{"encoded history", Config{Codec: storagetest.Codec(t), FreezeAfter: 1}},
		// Every version kept encoded, the latest too, once one more
		// revision follows its change (as Events are).
		{"encoded objects", Config{Codec: storagetest.Codec(t), FreezeAfter: 1, EncodedPrefixes: []string{"/"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storagetest.RunContractTests(t, func(t *testing.T) storage.Interface {
				cfg := tc.cfg
				cfg.FutureRevisionWait, cfg.CompactionInterval = 50*time.Millisecond, -1
				s, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
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

// TestListAttachments: a list returns one attachment for each item, the
// same for a key from list to list, emptied by the key's next version.
func TestListAttachments(t *testing.T) {
	s, err := New(Config{CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, err := s.Create(ctx, "/registry/configmaps/ns/"+name, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}); err != nil {
			t.Fatal(err)
		}
	}
	list := func() *storage.ListResult {
		t.Helper()
		res, err := s.List(ctx, "/registry/configmaps/ns/", storage.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Attachments) != len(res.Items) || len(res.Items) != 2 {
			t.Fatalf("%d items, %d attachments", len(res.Items), len(res.Attachments))
		}
		return res
	}
	first := list()
	first.Attachments[0].Store("a's")
	first.Attachments[1].Store("b's")
	tests := []struct {
		name  string
		write func()
		a, b  any
	}{
		{name: "kept from list to list", write: func() {}, a: "a's", b: "b's"},
		{name: "emptied by an update", write: func() {
			if _, err := s.Update(ctx, "/registry/configmaps/ns/a", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns", Labels: map[string]string{"v": "2"}}}, storage.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, a: nil, b: "b's"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.write()
			res := list()
			if res.Attachments[0] != first.Attachments[0] || res.Attachments[1] != first.Attachments[1] {
				t.Fatalf("other attachments for the same keys")
			}
			if a, b := res.Attachments[0].Load(), res.Attachments[1].Load(); a != tc.a || b != tc.b {
				t.Errorf("attached %v, %v; want %v, %v", a, b, tc.a, tc.b)
			}
		})
	}
}
