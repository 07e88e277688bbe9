package sim

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
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

// replica is a pod of one ReplicaSet as an informer decodes it: its own
// copy of everything, its own name and token volume, on a node.
func replica(name, node, image string) *corev1.Pod {
	token := "kube-api-access-" + name
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, GenerateName: strings.Clone("web-5fd74885cf-"), Namespace: "default",
			UID: types.UID(name), ResourceVersion: "1", Labels: map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5fd74885cf", UID: "rs"}}},
		Spec: corev1.PodSpec{
			NodeName: strings.Clone(node),
			Containers: []corev1.Container{{Name: "app", Image: strings.Clone(image),
				Resources:    corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
				VolumeMounts: []corev1.VolumeMount{{Name: token, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}}},
			Volumes: []corev1.Volume{{Name: token, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To(int64(3607))}}}}}}},
			Tolerations:                   []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, TolerationSeconds: ptr.To(int64(300))}},
			TerminationGracePeriodSeconds: ptr.To(int64(30)),
			RestartPolicy:                 corev1.RestartPolicy(strings.Clone("Always")),
		},
		Status: corev1.PodStatus{Phase: corev1.PodPhase(strings.Clone("Running")), HostIP: strings.Clone("10.0.0.1"),
			Conditions: []corev1.PodCondition{{Type: corev1.PodConditionType(strings.Clone("Ready")), Status: corev1.ConditionStatus(strings.Clone("True"))}}},
	}
}

func slicePointer[T any](s []T) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(s)) }

// The replicas of a ReplicaSet share what they have alike; what is a
// replica's own stays its own, and every pod reads as it was decoded.
func TestPodInternerSharesReplicasParts(t *testing.T) {
	in := newPodInterner()
	transform := podTransform(t, in)
	first := transform(replica("a", "node-0", "app:1"))
	tests := []struct {
		name           string
		pod            *corev1.Pod
		shareContainer bool
	}{
		{name: "a replica on the same node", pod: replica("b", "node-0", "app:1"), shareContainer: true},
		{name: "a replica on another node", pod: replica("c", "node-1", "app:1"), shareContainer: true},
		{name: "a pod of the same labels with another image", pod: replica("d", "node-0", "app:2")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.pod.DeepCopy()
			got := transform(tc.pod)
			want.ManagedFields = nil
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("the pod changed:\n got %+v\nwant %+v", got, want)
			}
			gs, fs := &got.Spec, &first.Spec
			if slicePointer(gs.Tolerations) != slicePointer(fs.Tolerations) || gs.TerminationGracePeriodSeconds != fs.TerminationGracePeriodSeconds {
				t.Errorf("tolerations or grace period not shared")
			}
			if gs.Volumes[0].Projected != fs.Volumes[0].Projected {
				t.Errorf("the token volume's source is not shared")
			}
			if slicePointer(got.OwnerReferences) != slicePointer(first.OwnerReferences) {
				t.Errorf("owner references not shared")
			}
			if slicePointer(gs.Containers[0].VolumeMounts) == slicePointer(fs.Containers[0].VolumeMounts) {
				t.Errorf("the volume mounts, which name the pod's own volume, are shared")
			}
			shared := unsafe.StringData(gs.Containers[0].Image) == unsafe.StringData(fs.Containers[0].Image)
			if shared != tc.shareContainer {
				t.Errorf("container shared: %v, want %v", shared, tc.shareContainer)
			}
			if reflect.ValueOf(gs.Containers[0].Resources.Requests).UnsafePointer() != reflect.ValueOf(fs.Containers[0].Resources.Requests).UnsafePointer() {
				t.Errorf("resource requests not shared")
			}
			for _, s := range [][2]string{{string(got.Status.Phase), string(first.Status.Phase)}, {got.Status.HostIP, first.Status.HostIP},
				{string(got.Status.Conditions[0].Type), string(first.Status.Conditions[0].Type)}} {
				if unsafe.StringData(s[0]) != unsafe.StringData(s[1]) {
					t.Errorf("status string %q is not canonical", s[0])
				}
			}
			if tc.pod.Spec.NodeName == first.Spec.NodeName && unsafe.StringData(gs.NodeName) != unsafe.StringData(fs.NodeName) {
				t.Errorf("node name %q is not canonical", gs.NodeName)
			}
		})
	}
}
