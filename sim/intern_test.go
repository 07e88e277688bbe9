package sim

import (
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func decodedPod(rv string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", ResourceVersion: rv,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
}

// podTransform returns in's transform for pods, failing t on an error.
func podTransform(t *testing.T, in *podInterner) func(*corev1.Pod) *corev1.Pod {
	return func(p *corev1.Pod) *corev1.Pod {
		t.Helper()
		out, err := in.transform(p)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*corev1.Pod)
	}
}

func TestPodInterner(t *testing.T) {
	in := newPodInterner()
	transform := podTransform(t, in)
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

func labeledPod(uid, namespace string, labels map[string]string) *corev1.Pod {
	// Each decoded pod has its own strings and map, as informers' do.
	own := make(map[string]string, len(labels))
	for k, v := range labels {
		own[strings.Clone(k)] = strings.Clone(v)
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: strings.Clone(namespace), UID: types.UID(uid),
		ResourceVersion: "1", Labels: own}}
}

func mapPointer(m map[string]string) unsafe.Pointer { return reflect.ValueOf(m).UnsafePointer() }

func TestPodInternerSharesLabelSets(t *testing.T) {
	in := newPodInterner()
	transform := podTransform(t, in)
	web := map[string]string{"app": "web", "pod-template-hash": "5fd74885cf"}
	first := transform(labeledPod("a", "default", web))
	tests := []struct {
		name  string
		pod   *corev1.Pod
		share bool
	}{
		{name: "another replica shares the labels and the namespace", pod: labeledPod("b", "default", web), share: true},
		{name: "other labels", pod: labeledPod("c", "default", map[string]string{"app": "web", "pod-template-hash": "77b96bb9c8"})},
		{name: "a label more", pod: labeledPod("d", "default", map[string]string{"app": "web", "pod-template-hash": "5fd74885cf", "x": ""})},
		{name: "the same labels in another namespace", pod: labeledPod("e", "other", web)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.pod.Labels
			got := transform(tc.pod)
			if !reflect.DeepEqual(got.Labels, want) {
				t.Fatalf("labels %v, want %v", got.Labels, want)
			}
			if shared := mapPointer(got.Labels) == mapPointer(first.Labels); shared != tc.share {
				t.Errorf("labels shared with the first pod's: %v, want %v", shared, tc.share)
			}
			if tc.share && unsafe.StringData(got.Namespace) != unsafe.StringData(first.Namespace) {
				t.Errorf("namespace %q is not the first pod's string", got.Namespace)
			}
		})
	}
	t.Run("label sets no pod holds are forgotten", func(t *testing.T) {
		if n := in.labelSetCount(); n != 4 {
			t.Fatalf("%d label sets, want 4", n)
		}
		runtime.KeepAlive(first)
		first = nil
		deadline := time.Now().Add(10 * time.Second)
		for in.labelSetCount() > 0 && time.Now().Before(deadline) {
			runtime.GC()
		}
		if n := in.labelSetCount(); n != 0 {
			t.Errorf("%d label sets still tracked", n)
		}
	})
}

func TestPodInternerCanonicalNodeLabels(t *testing.T) {
	in := newPodInterner()
	node := func(name, zone string) *corev1.Node {
		out, err := in.transform(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{strings.Clone(corev1.LabelTopologyZone): strings.Clone(zone),
				strings.Clone(corev1.LabelHostname): strings.Clone(name), "pool": strings.Clone("a")},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}}})
		if err != nil {
			t.Fatal(err)
		}
		return out.(*corev1.Node)
	}
	a, b := node("node-0", "sim-a"), node("node-1", "sim-a")
	keyData := func(n *corev1.Node, want string) *byte {
		t.Helper()
		for k := range n.Labels {
			if k == want {
				return unsafe.StringData(k)
			}
		}
		t.Fatalf("%s has no label %s", n.Name, want)
		return nil
	}
	if got, want := keyData(a, corev1.LabelTopologyZone), unsafe.StringData(corev1.LabelTopologyZone); got != want {
		t.Errorf("the zone key is not Kubernetes' constant")
	}
	if keyData(a, "pool") != keyData(b, "pool") {
		t.Errorf("the nodes' pool keys are different strings")
	}
	za, zb := a.Labels[corev1.LabelTopologyZone], b.Labels[corev1.LabelTopologyZone]
	if za != "sim-a" || unsafe.StringData(za) != unsafe.StringData(zb) {
		t.Errorf("zones %q and %q are not one string", za, zb)
	}
	if a.Labels[corev1.LabelHostname] != "node-0" || b.Labels[corev1.LabelHostname] != "node-1" {
		t.Errorf("hostnames %v, %v", a.Labels, b.Labels)
	}
	if a.ManagedFields != nil {
		t.Errorf("managed fields kept: %v", a.ManagedFields)
	}
}
