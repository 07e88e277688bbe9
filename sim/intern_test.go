package sim

import (
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func decodedPod(rv string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", ResourceVersion: rv,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
}

func TestPodInterner(t *testing.T) {
	in := newPodInterner()
	transform := func(p *corev1.Pod) *corev1.Pod {
		t.Helper()
		out, err := in.transform(p)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*corev1.Pod)
	}
	first := transform(decodedPod("5"))
	tests := []struct {
		name  string
		pod   *corev1.Pod
		same  bool
		check func(t *testing.T, got *corev1.Pod)
	}{
		{name: "another informer's copy of the same revision gets the first", pod: decodedPod("5"), same: true},
		{name: "a new revision is its own object", pod: decodedPod("6")},
		{name: "managed fields are dropped", pod: decodedPod("7"), check: func(t *testing.T, got *corev1.Pod) {
			if got.ManagedFields != nil {
				t.Errorf("managed fields kept: %v", got.ManagedFields)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := transform(tc.pod)
			if (got == first) != tc.same {
				t.Errorf("shared with the first: %v, want %v", got == first, tc.same)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
	t.Run("revisions no cache holds are forgotten", func(t *testing.T) {
		runtime.KeepAlive(first)
		first = nil
		deadline := time.Now().Add(10 * time.Second)
		for in.size() > 0 && time.Now().Before(deadline) {
			runtime.GC()
		}
		if n := in.size(); n != 0 {
			t.Errorf("%d revisions still tracked", n)
		}
	})
}
