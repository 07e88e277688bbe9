package metrics

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// TestRunningPods: metrics-server's API sees the Running pods, their
// metadata whole, by namespace and label, as its informer with the field
// selector status.phase=Running would hold them; other pods are not found.
func TestRunningPods(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	pod := func(ns, name string, phase corev1.PodPhase, app string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name), Labels: map[string]string{"app": app},
				CreationTimestamp: metav1.Unix(1700000000, 0), Annotations: map[string]string{"a": "b"}},
			Status: corev1.PodStatus{Phase: phase},
		}
	}
	for _, p := range []*corev1.Pod{
		pod("a", "web-1", corev1.PodRunning, "web"),
		pod("a", "web-2", corev1.PodPending, "web"),
		pod("a", "db-1", corev1.PodRunning, "db"),
		pod("b", "web-1", corev1.PodRunning, "web"),
		pod("b", "done", corev1.PodSucceeded, "web"),
		pod("b", "broken", corev1.PodFailed, "web"),
	} {
		if err := indexer.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	l := runningPods{pods: corelisters.NewPodLister(indexer)}
	names := func(objs []runtime.Object) []string {
		var out []string
		for _, o := range objs {
			m := o.(*metav1.PartialObjectMetadata)
			out = append(out, m.Namespace+"/"+m.Name)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name      string
		namespace string
		selector  string
		want      []string
	}{
		{"every namespace", metav1.NamespaceAll, "", []string{"a/db-1", "a/web-1", "b/web-1"}},
		{"one namespace", "a", "", []string{"a/db-1", "a/web-1"}},
		{"by label", metav1.NamespaceAll, "app=web", []string{"a/web-1", "b/web-1"}},
		{"by label in a namespace", "b", "app=web", []string{"b/web-1"}},
		{"none match", "a", "app=cache", nil},
		{"no such namespace", "c", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := labels.Parse(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			got, err := l.ByNamespace(tc.namespace).List(sel)
			if err != nil {
				t.Fatal(err)
			}
			if n := names(got); !slices.Equal(n, tc.want) {
				t.Errorf("List(%q, %q) = %v, want %v", tc.namespace, tc.selector, n, tc.want)
			}
			if tc.namespace == metav1.NamespaceAll {
				all, err := l.List(sel)
				if err != nil {
					t.Fatal(err)
				}
				if n := names(all); !slices.Equal(n, tc.want) {
					t.Errorf("List(%q) = %v, want %v", tc.selector, n, tc.want)
				}
			}
		})
	}

	got, err := l.ByNamespace("a").Get("web-1")
	if err != nil {
		t.Fatal(err)
	}
	m := got.(*metav1.PartialObjectMetadata)
	want := pod("a", "web-1", corev1.PodRunning, "web").ObjectMeta
	if m.Namespace != want.Namespace || m.Name != want.Name || m.UID != want.UID || m.Labels["app"] != "web" ||
		!m.CreationTimestamp.Equal(&want.CreationTimestamp) || m.Annotations["a"] != "b" {
		t.Errorf("Get(a/web-1) metadata = %+v, want %+v", m.ObjectMeta, want)
	}
	if got, err := l.Get("b/web-1"); err != nil || got.(*metav1.PartialObjectMetadata).Namespace != "b" {
		t.Errorf("Get(b/web-1) = %v, %v", got, err)
	}
	for _, key := range []string{"a/web-2", "b/done", "b/broken", "a/nope", "c/web-1"} {
		_, err := l.Get(key)
		if !apierrors.IsNotFound(err) {
			t.Errorf("Get(%s): %v, want NotFound", key, err)
		} else if d := err.(apierrors.APIStatus).Status().Details; d.Kind != "pods" || d.Name != key[2:] {
			t.Errorf("Get(%s): details %+v, want pods %q, as a metadata lister's", key, d, key[2:])
		}
	}
}
