package openapi

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	_ "k8s.io/kubernetes/pkg/apis/coordination/install"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

var (
	leaseKind = schema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"}
	podKind   = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	nodeKind  = schema.GroupVersionKind{Version: "v1", Kind: "Node"}
)

func testModels(t *testing.T) map[string]*spec.Schema {
	t.Helper()
	models, err := Models(legacyscheme.Scheme, []schema.GroupVersionKind{leaseKind, podKind, nodeKind})
	if err != nil {
		t.Fatal(err)
	}
	return models
}

func testLease() *coordinationv1.Lease {
	now := metav1.NewMicroTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	return &coordinationv1.Lease{
		TypeMeta:   metav1.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Namespace: "kube-node-lease", ResourceVersion: "42", OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-1", UID: "u"}}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: new("node-1"), LeaseDurationSeconds: new(int32(40)), RenewTime: &now},
	}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", Labels: map[string]string{"app": "a"}, Annotations: map[string]string{"x": "y"}},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Containers: []corev1.Container{{
				Name: "c", Image: "img",
				Ports:        []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
				Env:          []corev1.EnvVar{{Name: "A", Value: "1"}},
				Resources:    corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
				VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/v"}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Port: intstr.FromString("http"),
				}}},
			}},
			Volumes:     []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Tolerations: []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
			PodIPs:     []corev1.PodIP{{IP: "10.0.0.1"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Ready: true, State: corev1.ContainerState{
				Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()},
			}}},
		},
	}
}

func testNode() *corev1.Node {
	return &corev1.Node{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"topology.kubernetes.io/zone": "a"}},
		Spec:       corev1.NodeSpec{PodCIDR: "10.0.0.0/24", Taints: []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.1.0.1"}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
		},
	}
}

// TestTypeConverterMatchesUpstream: the converter gives the field manager
// what managedfields.NewTypeConverter gives it (the same typed value, or an
// error where upstream's fails), and skips the validation walk only where
// that walk cannot fail.
func TestTypeConverterMatchesUpstream(t *testing.T) {
	models := testModels(t)
	// Upstream's schemas without a field the Go type has, as kube-apiserver
	// drops the fields of disabled features from its OpenAPI.
	trimmed := map[string]*spec.Schema{}
	for k, v := range models {
		trimmed[k] = v
	}
	leaseSpec := *trimmed["io.k8s.api.coordination.v1.LeaseSpec"]
	leaseSpec.Properties = map[string]spec.Schema{}
	for k, v := range models["io.k8s.api.coordination.v1.LeaseSpec"].Properties {
		if k != "holderIdentity" {
			leaseSpec.Properties[k] = v
		}
	}
	trimmed["io.k8s.api.coordination.v1.LeaseSpec"] = &leaseSpec

	noHolder := testLease()
	noHolder.Spec.HolderIdentity = nil
	unnamedSecret := testPod()
	unnamedSecret.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: ""}}
	namedSecret := testPod()
	namedSecret.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
	noSchema := testLease()
	noSchema.Kind = "LeaseWithoutSchema"

	for _, tc := range []struct {
		name    string
		models  map[string]*spec.Schema
		obj     runtime.Object
		skips   bool // the validation walk is left out
		wantErr bool
	}{
		{name: "lease", models: models, obj: testLease(), skips: true},
		{name: "pod", models: models, obj: testPod(), skips: true},
		{name: "node", models: models, obj: testNode(), skips: true},
		{name: "pod with a named pull secret", models: models, obj: namedSecret, skips: true},
		// A keyed list's element without its key: validated (the schema's
		// default for the key makes it pass).
		{name: "pod with a pull secret that omits its only key", models: models, obj: unnamedSecret},
		{name: "undeclared field set", models: trimmed, obj: testLease(), wantErr: true},
		{name: "undeclared field unset", models: trimmed, obj: noHolder, skips: true},
		// The field manager's versions converter recognises the type of
		// this error (the same constructor's).
		{name: "kind without a schema", models: models, obj: noSchema, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, err := managedfields.NewTypeConverter(tc.models, false)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := newTypeConverter(tc.models)
			if err != nil {
				t.Fatal(err)
			}
			if skips := ours.(*skipValidationTypeConverter).unvalidated(tc.obj) != nil; skips != tc.skips {
				t.Errorf("validation skipped = %v, want %v", skips, tc.skips)
			}
			want, wantErr := up.ObjectToTyped(tc.obj, typed.AllowDuplicates)
			got, gotErr := ours.ObjectToTyped(tc.obj, typed.AllowDuplicates)
			if (wantErr != nil) != tc.wantErr {
				t.Fatalf("upstream's error = %v, want an error: %v", wantErr, tc.wantErr)
			}
			if (gotErr != nil) != (wantErr != nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
				t.Fatalf("error = %v, upstream's %v", gotErr, wantErr)
			}
			if wantErr != nil {
				return
			}
			if !value.Equals(got.AsValue(), want.AsValue()) {
				t.Errorf("typed value differs from upstream's:\n%v\n%v", value.ToString(got.AsValue()), value.ToString(want.AsValue()))
			}
			// Conversions that do not allow duplicates are upstream's.
			if _, err := ours.ObjectToTyped(tc.obj); err != nil {
				t.Errorf("validating conversion: %v", err)
			}
		})
	}
}

// TestFieldManagerMatchesUpstream: a field manager on the converter
// records the same managed fields as one on upstream's, for an update that
// changes, adds and removes fields, and a server-side apply that conflicts
// and is forced.
func TestFieldManagerMatchesUpstream(t *testing.T) {
	models := testModels(t)
	up, err := managedfields.NewTypeConverter(models, false)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := newTypeConverter(models)
	if err != nil {
		t.Fatal(err)
	}
	newManager := func(tc managedfields.TypeConverter) *managedfields.FieldManager {
		t.Helper()
		fm, err := managedfields.NewDefaultFieldManager(tc, legacyscheme.Scheme, legacyscheme.Scheme, legacyscheme.Scheme, podKind, podKind.GroupVersion(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return fm
	}
	old := testPod()
	updated := testPod()
	updated.Labels["b"] = "2"
	delete(updated.Annotations, "x")
	updated.Spec.Containers[0].Env = append(updated.Spec.Containers[0].Env, corev1.EnvVar{Name: "B", Value: "2"})
	updated.Status.Phase = corev1.PodSucceeded

	var got, want []metav1.ManagedFieldsEntry
	for _, run := range []struct {
		tc  managedfields.TypeConverter
		out *[]metav1.ManagedFieldsEntry
	}{{up, &want}, {ours, &got}} {
		fm := newManager(run.tc)
		created, err := fm.Update(&corev1.Pod{TypeMeta: old.TypeMeta}, old.DeepCopy(), "creator")
		if err != nil {
			t.Fatal(err)
		}
		next := updated.DeepCopy()
		next.ManagedFields = created.(*corev1.Pod).ManagedFields
		obj, err := fm.Update(created, next, "updater")
		if err != nil {
			t.Fatal(err)
		}
		// A server-side apply (the patch unstructured, the live object
		// typed) of a field another manager owns: a conflict, then forced.
		patch := &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]interface{}{"name": "p", "namespace": "default", "labels": map[string]interface{}{"b": "3", "c": "1"}},
		}}
		if _, err := fm.Apply(obj, patch.DeepCopy(), "applier", false); !apierrors.IsConflict(err) {
			t.Fatalf("conflicting apply: %v, want a conflict", err)
		}
		applied, err := fm.Apply(obj, patch.DeepCopy(), "applier", true)
		if err != nil {
			t.Fatalf("forced apply: %v", err)
		}
		*run.out = applied.(*corev1.Pod).ManagedFields
	}
	if len(want) != 3 {
		t.Fatalf("upstream's managed fields = %d entries, want 3", len(want))
	}
	for i := range want {
		want[i].Time, got[i].Time = nil, nil
		if want[i].Manager != got[i].Manager || string(want[i].FieldsV1.Raw) != string(got[i].FieldsV1.Raw) {
			t.Errorf("entry %d = %s %s, upstream's %s %s", i, got[i].Manager, got[i].FieldsV1.Raw, want[i].Manager, want[i].FieldsV1.Raw)
		}
	}
}
