package memory

import (
	"context"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// replicaPod is a pod of one ReplicaSet as a request decodes it: its own
// copy of everything.
func replicaPod(name, image string, owned bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": strings.Clone("web")}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: strings.Clone(image),
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}},
			Tolerations: []corev1.Toleration{{Key: strings.Clone("node.kubernetes.io/not-ready"), Operator: "Exists", TolerationSeconds: ptr.To(int64(300))}},
		},
	}
	if owned {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: types.UID("rs-1"), Controller: ptr.To(true)}}
	}
	return p
}

func mapData(m corev1.ResourceList) unsafe.Pointer { return reflect.ValueOf(m).UnsafePointer() }

// storedPod is the latest stored version of a pod, not a copy.
func storedPod(t *testing.T, s *Store, name string) *corev1.Pod {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := s.latest("/registry/pods/ns/" + name)
	if v == nil {
		t.Fatalf("no pod %s", name)
	}
	return v.obj.(*corev1.Pod)
}

// TestReplicasShareParts: the pods of one ReplicaSet hold one copy of what
// they have alike, an update one copy of what it leaves, and every object
// reads back as written.
func TestReplicasShareParts(t *testing.T) {
	s, err := New(Config{CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range []*corev1.Pod{replicaPod("a", "app:1", true), replicaPod("b", "app:1", true), replicaPod("c", "app:2", true), replicaPod("d", "app:1", false), replicaPod("e", "app:1", false)} {
		if _, err := s.Create(ctx, "/registry/pods/ns/"+p.Name, p); err != nil {
			t.Fatal(err)
		}
	}
	updated := replicaPod("b", "app:1", true)
	updated.Status.Phase = corev1.PodRunning
	if _, err := s.Update(ctx, "/registry/pods/ns/b", updated, storage.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := storedPod(t, s, "a")
	tests := []struct {
		name        string
		pod         string
		tmpl        string // the first of its set; "a" if empty
		shareImage  bool
		shareOthers bool
	}{
		{name: "a replica", pod: "b", shareImage: true, shareOthers: true},
		{name: "a replica with another image", pod: "c", shareOthers: true},
		{name: "a pod no controller owns, with a replica's labels", pod: "d"},
		{name: "a pod no controller owns, alike another", pod: "e", tmpl: "d", shareImage: true, shareOthers: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := storedPod(t, s, tc.pod)
			a := a
			if tc.tmpl != "" {
				a = storedPod(t, s, tc.tmpl)
			}
			if sameImage := unsafe.StringData(got.Spec.Containers[0].Image) == unsafe.StringData(a.Spec.Containers[0].Image); sameImage != tc.shareImage {
				t.Errorf("image shared: %v, want %v", sameImage, tc.shareImage)
			}
			sameTolerations := unsafe.SliceData(got.Spec.Tolerations) == unsafe.SliceData(a.Spec.Tolerations)
			sameRequests := mapData(got.Spec.Containers[0].Resources.Requests) == mapData(a.Spec.Containers[0].Resources.Requests)
			if sameTolerations != tc.shareOthers || sameRequests != tc.shareOthers {
				t.Errorf("tolerations shared: %v, requests shared: %v; want %v", sameTolerations, sameRequests, tc.shareOthers)
			}
			read, err := s.Get(ctx, "/registry/pods/ns/"+tc.pod, storage.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := replicaPod(tc.pod, got.Spec.Containers[0].Image, tc.pod != "d" && tc.pod != "e")
			if tc.pod == "b" {
				want.Status.Phase = corev1.PodRunning
			}
			want.ResourceVersion = got.ResourceVersion
			if !reflect.DeepEqual(read, want) {
				t.Errorf("read back\n%+v\nwant\n%+v", read, want)
			}
		})
	}
	t.Run("an update shares what it leaves with the version before", func(t *testing.T) {
		s.mu.RLock()
		r, _ := s.tree.Get(&record{key: "/registry/pods/ns/b"})
		before, after := r.versions[0].obj.(*corev1.Pod), r.versions[1].obj.(*corev1.Pod)
		s.mu.RUnlock()
		if unsafe.SliceData(before.Spec.Containers) != unsafe.SliceData(after.Spec.Containers) {
			t.Errorf("the unchanged containers are held twice")
		}
		if before.Status.Phase == after.Status.Phase {
			t.Errorf("the versions' phases: %q and %q", before.Status.Phase, after.Status.Phase)
		}
	})
	t.Run("a template no version holds goes", func(t *testing.T) {
		for _, name := range []string{"a", "b", "c", "d", "e"} {
			if _, err := s.Delete(ctx, "/registry/pods/ns/"+name, storage.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		rev, _ := s.CurrentRevision(ctx)
		if err := s.Compact(ctx, rev); err != nil {
			t.Fatal(err)
		}
		a = nil
		deadline := time.Now().Add(10 * time.Second)
		for s.templateCount() > 0 && time.Now().Before(deadline) {
			runtime.GC()
		}
		if n := s.templateCount(); n != 0 {
			t.Errorf("%d templates left", n)
		}
	})
}

// TestUnstructuredVersionsKeepTheirRevisions: an update that changes
// nothing but the revision, and a deletion, of an unstructured object (a
// custom resource) leave the versions before them as they were.
func TestUnstructuredVersionsKeepTheirRevisions(t *testing.T) {
	s, err := New(Config{CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const key = "/registry/example.com/widgets/ns/w"
	obj := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "example.com/v1", "kind": "Widget",
			"metadata": map[string]interface{}{"name": "w", "namespace": "ns",
				"ownerReferences": []interface{}{map[string]interface{}{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u", "controller": true}}},
			"spec": map[string]interface{}{"size": int64(1)},
		}}
	}
	created, err := s.Create(ctx, key, obj())
	if err != nil {
		t.Fatal(err)
	}
	first := created.(*unstructured.Unstructured).GetResourceVersion()
	same := obj()
	same.SetResourceVersion(first)
	if _, err := s.Update(ctx, key, same, storage.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, key, storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rev, _ := strconv.ParseInt(first, 10, 64)
	for _, at := range []int64{rev, rev + 1} {
		res, err := s.List(ctx, "/registry/example.com/widgets/", storage.ListOptions{Match: storage.MatchExact, Revision: at})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Items) != 1 {
			t.Fatalf("at %d: %d items", at, len(res.Items))
		}
		if got := res.Items[0].(*unstructured.Unstructured).GetResourceVersion(); got != strconv.FormatInt(at, 10) {
			t.Errorf("the version of revision %d reads resourceVersion %s", at, got)
		}
	}
}

// TestTemplateOfAnObjectAlone: an object alone in its set of replicas (a
// Node, whose labels name it) does not keep its first version alive once
// it is updated and history is compacted; an object that shares the
// template keeps it.
func TestTemplateOfAnObjectAlone(t *testing.T) {
	tests := []struct {
		name      string
		alike     bool // another object of the set is stored
		templates int
	}{
		{name: "alone", templates: 0},
		{name: "with another of its set", alike: true, templates: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{CompactionInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			pods := []string{"alone"}
			if tc.alike {
				pods = append(pods, "alike")
			}
			for _, name := range pods {
				if _, err := s.Create(ctx, "/registry/pods/ns/"+name, replicaPod(name, "app:1", false)); err != nil {
					t.Fatal(err)
				}
			}
			updated := replicaPod("alone", "app:1", false)
			updated.Status.Phase = corev1.PodRunning
			if _, err := s.Update(ctx, "/registry/pods/ns/alone", updated, storage.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			rev, _ := s.CurrentRevision(ctx)
			if err := s.Compact(ctx, rev); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for s.templateCount() > tc.templates && time.Now().Before(deadline) {
				runtime.GC()
			}
			if n := s.templateCount(); n != tc.templates {
				t.Errorf("%d templates, want %d", n, tc.templates)
			}
		})
	}
}
