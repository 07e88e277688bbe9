package sim

import (
	"runtime"
	"sync"
	"weak"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubesim/kubesim/internal/transform"
)

// podInterner lets the in-process components' informers hold one object
// for each revision of a pod: the API server's (for PodSecurity), the
// scheduler's and the controller manager's caches (kubeletsim watches
// through the latter) each decode every pod, and at 100,000 pods a second
// copy of each is gigabytes.
// Informers hand out their cached objects read-only, so two caches can
// share one. Entries are weak: a revision no cache holds any more goes.
type podInterner struct {
	mu   sync.Mutex
	pods map[podRevision]weak.Pointer[corev1.Pod]
}

type podRevision struct {
	uid types.UID
	rv  string
}

func newPodInterner() *podInterner {
	return &podInterner{pods: map[podRevision]weak.Pointer[corev1.Pod]{}}
}

// transform drops an object's managed fields, as the scheduler's and the
// controller manager's informers do, and returns the shared object of a
// pod revision another informer holds already.
func (in *podInterner) transform(obj interface{}) (interface{}, error) {
	obj, err := transform.DropManagedFields(obj)
	pod, ok := obj.(*corev1.Pod)
	if err != nil || !ok || pod.ResourceVersion == "" {
		return obj, err
	}
	k := podRevision{uid: pod.UID, rv: pod.ResourceVersion}
	in.mu.Lock()
	defer in.mu.Unlock()
	if shared := in.pods[k].Value(); shared != nil {
		return shared, nil
	}
	wp := weak.Make(pod)
	in.pods[k] = wp
	runtime.AddCleanup(pod, func(k podRevision) {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.pods[k] == wp {
			delete(in.pods, k)
		}
	}, k)
	return pod, nil
}

// size is the number of pod revisions tracked.
func (in *podInterner) size() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.pods)
}
