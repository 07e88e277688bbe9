package metrics

import (
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// runningPods is the pod metadata lister metrics-server's API reads, over
// the typed pod informer the cluster's controllers already keep: the pods
// whose phase is Running, as metav1.PartialObjectMetadata, which is what
// metrics-server's own informer (a metadata informer of pods with the field
// selector status.phase=Running) holds. A metadata informer of its own was
// a second watch decoding every pod change and a second copy of every pod's
// metadata, managed fields included (1.6 KB a pod).
//
// The objects share the cached pods' labels, owner references and other
// reference fields: like any informer's objects, they are read-only.
type runningPods struct {
	pods corelisters.PodLister
}

var _ cache.GenericLister = runningPods{}

// List implements cache.GenericLister.
func (l runningPods) List(selector labels.Selector) ([]runtime.Object, error) {
	return l.ByNamespace(metav1.NamespaceAll).List(selector)
}

// Get implements cache.GenericLister: name is namespace/name, the key of a
// namespaced object in an informer's cache.
func (l runningPods) Get(name string) (runtime.Object, error) {
	namespace, n, err := cache.SplitMetaNamespaceKey(name)
	if err != nil {
		return nil, err
	}
	return l.ByNamespace(namespace).Get(n)
}

// ByNamespace implements cache.GenericLister.
func (l runningPods) ByNamespace(namespace string) cache.GenericNamespaceLister {
	return runningPodsIn{pods: l.pods, namespace: namespace}
}

type runningPodsIn struct {
	pods      corelisters.PodLister
	namespace string
}

// List implements cache.GenericNamespaceLister.
func (l runningPodsIn) List(selector labels.Selector) ([]runtime.Object, error) {
	pods, err := l.pods.Pods(l.namespace).List(selector)
	if err != nil {
		return nil, err
	}
	out := make([]runtime.Object, 0, len(pods))
	for _, pod := range pods {
		if pod.Status.Phase == corev1.PodRunning {
			out = append(out, podMetadata(pod))
		}
	}
	return out, nil
}

// Get implements cache.GenericNamespaceLister: a pod that is not Running is
// not found, as it is not in metrics-server's informer.
func (l runningPodsIn) Get(name string) (runtime.Object, error) {
	pod, err := l.pods.Pods(l.namespace).Get(name)
	if apierrors.IsNotFound(err) || err == nil && pod.Status.Phase != corev1.PodRunning {
		// As a metadata lister says it (the typed one says "pod").
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
	}
	if err != nil {
		return nil, err
	}
	return podMetadata(pod), nil
}

// podMetadata is pod's metadata as a metadata informer of pods decodes it.
func podMetadata(pod *corev1.Pod) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: pod.ObjectMeta,
	}
}
