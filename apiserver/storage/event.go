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

// Progress is the object of a watch.Bookmark event a backend's watch may
// send: every change up to Revision under the watched prefix has been
// sent. The REST layer turns it into a bookmark when the client asked for
// them.
type Progress struct {
	Revision int64
}

var _ runtime.Object = (*Progress)(nil)

// GetObjectKind implements runtime.Object.
func (p *Progress) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object.
func (p *Progress) DeepCopyObject() runtime.Object {
	c := *p
	return &c
}
