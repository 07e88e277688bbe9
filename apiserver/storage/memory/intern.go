package memory

import (
	"unique"
	"unsafe"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// internManagedFields makes a stored object's managed fields share their
// field sets (FieldsV1's raw JSON) with every other stored version that has
// the same: the pods of one ReplicaSet have one field set for the
// controller manager's entry, and each lease renewal kept in the history
// the same as the last. It returns the handles that keep the shared copies
// canonical while the version is stored.
//
// The shared bytes are never written: stored objects are read-only (see
// storage.Interface), copies out of the store are deep, and a slice of
// them has no spare capacity to append into.
func internManagedFields(obj runtime.Object) []unique.Handle[string] {
	if _, ok := obj.(runtime.Unstructured); ok {
		return nil // its accessor returns copies of the entries
	}
	a, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	entries := a.GetManagedFields()
	var handles []unique.Handle[string]
	for i := range entries {
		f := entries[i].FieldsV1
		if f == nil || len(f.Raw) == 0 {
			continue
		}
		// Make clones the string it keeps, so the view of Raw is not kept.
		h := unique.Make(unsafe.String(&f.Raw[0], len(f.Raw)))
		s := h.Value()
		f.Raw = unsafe.Slice(unsafe.StringData(s), len(s))
		if handles == nil {
			handles = make([]unique.Handle[string], 0, len(entries))
		}
		handles = append(handles, h)
	}
	return handles
}
