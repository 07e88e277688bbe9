package registry

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	api "k8s.io/kubernetes/pkg/apis/core"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// An item's encoding kept in its key's attachment is of the object it was
// made from: another version of the key (a list at an older revision, an
// update between the list and the encoding) is encoded afresh.
func TestItemEncodingOfTheObjectListed(t *testing.T) {
	var attach storage.Attachment
	v1 := &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", ResourceVersion: "1"}, Data: map[string]string{"k": "one"}}
	v2 := &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", ResourceVersion: "2"}, Data: map[string]string{"k": "two"}}
	tests := []struct {
		name string
		obj  *api.ConfigMap
		want string
	}{
		{"the first version", v1, `"one"`},
		{"kept", v1, `"one"`},
		{"the next version", v2, `"two"`},
		{"the first again, listed at its revision", v1, `"one"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := itemEncoding(tc.obj, &attach, corev1.SchemeGroupVersion, formatJSON)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(raw), tc.want) {
				t.Errorf("%s, want the data %s", raw, tc.want)
			}
			if e, _ := attach.Load().(*itemEncodings); e == nil || e.obj != tc.obj {
				t.Errorf("the attachment does not keep the object's encodings")
			}
		})
	}
}
