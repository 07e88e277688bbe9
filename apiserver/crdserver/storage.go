package crdserver

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// versionedStorage is the storage of one served version of a custom
// resource: what the shared backend holds at the CRD's storage version,
// converted on the way in and out, as kube-apiserver's storage codec for a
// CRD version converts (None or Webhook conversion), prunes and defaults.
// The registry's Store runs over it unchanged, as over any other storage.
type versionedStorage struct {
	storage.Interface
	// version is the version objects are served at; storageVersion the one
	// they are stored at.
	version, storageVersion schema.GroupVersion
	// toStorage and fromStorage convert one object; fromStorage also
	// prunes and defaults, as reading from etcd does upstream.
	toStorage   func(*unstructured.Unstructured) (*unstructured.Unstructured, error)
	fromStorage func(*unstructured.Unstructured) (*unstructured.Unstructured, error)
}

var _ storage.Interface = (*versionedStorage)(nil)

func (s *versionedStorage) in(obj runtime.Object) (runtime.Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("unable to store %T: not a custom resource", obj)
	}
	out, err := s.toStorage(u)
	if err != nil {
		return nil, conversionError(err)
	}
	return out, nil
}

func (s *versionedStorage) out(obj runtime.Object) (runtime.Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	out, err := s.fromStorage(u)
	if err != nil {
		return nil, conversionError(err)
	}
	return out, nil
}

// conversionError is what a failed conversion answers, as kube-apiserver's
// storage codec errors surface: an internal error.
func conversionError(err error) error {
	if _, ok := err.(apierrors.APIStatus); ok {
		return err
	}
	return apierrors.NewInternalError(err)
}

// Create implements storage.Interface.
func (s *versionedStorage) Create(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
	stored, err := s.in(obj)
	if err != nil {
		return nil, err
	}
	created, err := s.Interface.Create(ctx, key, stored)
	if err != nil {
		return nil, err
	}
	return s.out(created)
}

// Get implements storage.Interface.
func (s *versionedStorage) Get(ctx context.Context, key string, opts storage.GetOptions) (runtime.Object, error) {
	obj, err := s.Interface.Get(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	return s.out(obj)
}

// Update implements storage.Interface.
func (s *versionedStorage) Update(ctx context.Context, key string, obj runtime.Object, opts storage.UpdateOptions) (runtime.Object, error) {
	stored, err := s.in(obj)
	if err != nil {
		return nil, err
	}
	updated, err := s.Interface.Update(ctx, key, stored, opts)
	if err != nil {
		return nil, err
	}
	return s.out(updated)
}

// Delete implements storage.Interface.
func (s *versionedStorage) Delete(ctx context.Context, key string, opts storage.DeleteOptions) (runtime.Object, error) {
	obj, err := s.Interface.Delete(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	return s.out(obj)
}

// predicate evaluates p on the served version of a stored object: field
// selectors name the served version's selectable fields.
func (s *versionedStorage) predicate(p storage.Predicate) storage.Predicate {
	if p == nil || s.version == s.storageVersion {
		return p
	}
	return func(obj runtime.Object) (bool, error) {
		served, err := s.out(obj)
		if err != nil {
			return false, err
		}
		return p(served)
	}
}

// List implements storage.Interface.
func (s *versionedStorage) List(ctx context.Context, prefix string, opts storage.ListOptions) (*storage.ListResult, error) {
	opts.Predicate = s.predicate(opts.Predicate)
	res, err := s.Interface.List(ctx, prefix, opts)
	if err != nil {
		return nil, err
	}
	items := make([]runtime.Object, len(res.Items))
	for i, obj := range res.Items {
		if items[i], err = s.out(obj); err != nil {
			return nil, err
		}
	}
	out := *res
	out.Items = items
	return &out, nil
}

// Watch implements storage.Interface: the backend's watch converts each
// event in its own goroutine, before the caller's Transform.
func (s *versionedStorage) Watch(ctx context.Context, prefix string, opts storage.WatchOptions) (watch.Interface, error) {
	opts.Predicate = s.predicate(opts.Predicate)
	then := opts
	opts.Transform = func(e watch.Event) (watch.Event, bool) {
		return then.Send(s.convertEvent(e))
	}
	return s.Interface.Watch(ctx, prefix, opts)
}

// convertEvent is a stored object's event at the served version; a failed
// conversion is the watch's error, as the storage codec's error ends a
// kube-apiserver watch.
func (s *versionedStorage) convertEvent(e watch.Event) watch.Event {
	if e.Type == watch.Error || e.Type == watch.Bookmark {
		return e
	}
	obj, err := s.out(e.Object)
	if err != nil {
		status := apierrors.NewInternalError(err).Status()
		return watch.Event{Type: watch.Error, Object: &status}
	}
	e.Object = obj
	return e
}
