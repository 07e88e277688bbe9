package storage

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// WatchError is the object of a watch.Error event sent by a backend's watch.
// It carries the *Error that ended the watch; the REST layer turns it into a
// metav1.Status.
type WatchError struct {
	Err *Error
}

var _ runtime.Object = (*WatchError)(nil)

// GetObjectKind implements runtime.Object.
func (e *WatchError) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object.
func (e *WatchError) DeepCopyObject() runtime.Object {
	c := *e.Err
	return &WatchError{Err: &c}
}
