package transform

import "k8s.io/apimachinery/pkg/api/meta"

// DropManagedFields drops an object's managed fields, as kube-scheduler's
// and kube-controller-manager's informers do: none of kubesim's caches
// reads them, and at scale they are a good part of an object's memory. It
// is a client-go TransformFunc; it changes obj in place, which informers
// allow (the object is freshly decoded).
func DropManagedFields(obj interface{}) (interface{}, error) {
	if a, err := meta.Accessor(obj); err == nil && a.GetManagedFields() != nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
