package registry

import (
	"bytes"
	"io"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// encodedObject is a watch event's object with its serializations, one per
// encoder identifier (the encoding, the version, the event type): the API
// handlers' encoders use runtime.CacheableObject, as with kube-apiserver's
// watch cache, so that an event every watch of a resource receives is
// converted and encoded once per encoding instead of once per watch.
//
// The object is shared with the store and its other readers, and never
// written: each encoding is of a copy, since the encoders set and restore
// the kind of the object they are given (a write to the stored object
// while others read it).
type encodedObject struct {
	obj runtime.Object

	mu   sync.Mutex
	encs map[runtime.Identifier]*encoding
}

type encoding struct {
	once sync.Once
	raw  []byte
	err  error
}

var _ runtime.CacheableObject = (*encodedObject)(nil)

// CacheEncode implements runtime.CacheableObject.
func (o *encodedObject) CacheEncode(id runtime.Identifier, encode func(runtime.Object, io.Writer) error, w io.Writer) error {
	o.mu.Lock()
	e := o.encs[id]
	if e == nil {
		if o.encs == nil {
			o.encs = map[runtime.Identifier]*encoding{}
		}
		e = &encoding{}
		o.encs[id] = e
	}
	o.mu.Unlock()
	e.once.Do(func() {
		var buf bytes.Buffer
		e.err = encode(o.obj.DeepCopyObject(), &buf)
		e.raw = buf.Bytes()
	})
	if e.err != nil {
		return e.err
	}
	if s, ok := w.(runtime.Splice); ok {
		s.Splice(e.raw)
		return nil
	}
	_, err := w.Write(e.raw)
	return err
}

// GetObject implements runtime.CacheableObject.
func (o *encodedObject) GetObject() runtime.Object { return o.obj }

// GetObjectKind implements runtime.Object.
func (o *encodedObject) GetObjectKind() schema.ObjectKind { return o.obj.GetObjectKind() }

// DeepCopyObject implements runtime.Object: a copy of the object, without
// its serializations.
func (o *encodedObject) DeepCopyObject() runtime.Object {
	return &encodedObject{obj: o.obj.DeepCopyObject()}
}

// encodedObjects hands the watches of a store the same encodedObject for
// the same event object (storage backends give every watch of a change the
// same object). It remembers the last encodeCacheSize objects: a watch that
// falls further behind gets a wrapper of its own, and encodes again.
type encodedObjects struct {
	mu   sync.Mutex
	objs map[runtime.Object]*encodedObject
	// ring holds the objects of objs in the order they came, growing to
	// encodeCacheSize: most resources of a cluster see a few changes, and
	// a ring of that size in each of a hundred stores was 6 MB a cluster.
	ring []runtime.Object
	next int
}

// encodeCacheSize covers some seconds of a busy resource's changes (the
// pods of a scheduler experiment change about a thousand times a second),
// so the watches of the control plane, which keep up within milliseconds,
// share every encoding.
const encodeCacheSize = 4096

// wrap returns obj's shared encodedObject. Unstructured objects (custom
// resources) are converted for each watch, so none is shared: each gets a
// wrapper of its own.
func (c *encodedObjects) wrap(obj runtime.Object) runtime.Object {
	if obj == nil {
		return obj
	}
	if _, ok := obj.(runtime.Unstructured); ok {
		return &encodedObject{obj: obj}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.objs[obj]; o != nil {
		return o
	}
	if c.objs == nil {
		c.objs = make(map[runtime.Object]*encodedObject)
	}
	o := &encodedObject{obj: obj}
	c.objs[obj] = o
	if len(c.ring) < encodeCacheSize {
		c.ring = append(c.ring, obj)
		return o
	}
	delete(c.objs, c.ring[c.next])
	c.ring[c.next] = obj
	c.next = (c.next + 1) % encodeCacheSize
	return o
}
