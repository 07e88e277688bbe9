package upstreamtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	apistorage "k8s.io/apiserver/pkg/storage"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// Prefix is where the suite's keys live in kubesim's key space.
const Prefix = "/registry/example.apiserver.k8s.io"

// Adapter is k8s.io/apiserver's storage.Interface over a kubesim backend,
// as far as the upstream suite needs it.
type Adapter struct {
	Store   storage.Interface
	NewFunc func() runtime.Object
}

var _ apistorage.Interface = (*Adapter)(nil)

func (a *Adapter) key(k string) string { return Prefix + k }

func (a *Adapter) upstreamKey(k string) string { return strings.TrimPrefix(k, Prefix) }

// copyInto sets out (a pointer) to obj's value.
func copyInto(obj, out runtime.Object) error {
	ov, iv := reflect.ValueOf(out), reflect.ValueOf(obj)
	if ov.Kind() != reflect.Pointer || iv.Kind() != reflect.Pointer || ov.Elem().Type() != iv.Elem().Type() {
		return fmt.Errorf("unable to copy %T into %T", obj, out)
	}
	ov.Elem().Set(reflect.ValueOf(obj.DeepCopyObject()).Elem())
	return nil
}

func revisionOf(obj runtime.Object) int64 {
	a, err := meta.Accessor(obj)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(a.GetResourceVersion(), 10, 64)
	return n
}

// toUpstream maps a kubesim storage error onto k8s.io/apiserver's.
func toUpstream(err error, key string) error {
	var se *storage.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case storage.ErrCodeNotFound:
		return apistorage.NewKeyNotFoundError(key, 0)
	case storage.ErrCodeKeyExists:
		return apistorage.NewKeyExistsError(key, 0)
	case storage.ErrCodeConflict:
		return apistorage.NewResourceVersionConflictsError(key, se.Revision)
	case storage.ErrCodeTooLargeRevision:
		return apistorage.NewTooLargeResourceVersionError(uint64(se.Requested), uint64(se.Revision), 0)
	case storage.ErrCodeExpired:
		return apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", se.Requested, se.Revision))
	case storage.ErrCodeInvalidArgument:
		return apistorage.NewInvalidObjError(key, se.Error())
	}
	return err
}

// Versioner implements storage.Interface.
func (a *Adapter) Versioner() apistorage.Versioner { return apistorage.APIObjectVersioner{} }

// Create implements storage.Interface. TTLs are not supported.
func (a *Adapter) Create(ctx context.Context, key string, obj, out runtime.Object, ttl uint64) error {
	if revisionOf(obj) != 0 {
		return apistorage.ErrResourceVersionSetOnCreate
	}
	res, err := a.Store.Create(ctx, a.key(key), obj)
	if err != nil {
		return toUpstream(err, key)
	}
	return copyInto(res, out)
}

func parseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, apistorage.NewInvalidError(nil)
	}
	return n, nil
}

// Get implements storage.Interface.
func (a *Adapter) Get(ctx context.Context, key string, opts apistorage.GetOptions, out runtime.Object) error {
	rv, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return err
	}
	res, err := a.Store.Get(ctx, a.key(key), storage.GetOptions{MinRevision: rv})
	if errors.Is(err, storage.ErrNotFound) && opts.IgnoreNotFound {
		return copyInto(a.NewFunc(), out)
	}
	if err != nil {
		return toUpstream(err, key)
	}
	return copyInto(res, out)
}

// Delete implements storage.Interface.
func (a *Adapter) Delete(ctx context.Context, key string, out runtime.Object, pre *apistorage.Preconditions, validate apistorage.ValidateObjectFunc, cached runtime.Object, opts apistorage.DeleteOptions) error {
	for {
		cur, err := a.Store.Get(ctx, a.key(key), storage.GetOptions{})
		if err != nil {
			return toUpstream(err, key)
		}
		if pre != nil {
			if err := pre.Check(key, cur); err != nil {
				return err
			}
		}
		if validate != nil {
			if err := validate(ctx, cur); err != nil {
				return err
			}
		}
		res, err := a.Store.Delete(ctx, a.key(key), storage.DeleteOptions{ExpectedRevision: revisionOf(cur)})
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			return toUpstream(err, key)
		}
		return copyInto(res, out)
	}
}

// GuaranteedUpdate implements storage.Interface. TTLs are not supported.
func (a *Adapter) GuaranteedUpdate(ctx context.Context, key string, dest runtime.Object, ignoreNotFound bool, pre *apistorage.Preconditions, tryUpdate apistorage.UpdateFunc, cached runtime.Object) error {
	for {
		cur, err := a.Store.Get(ctx, a.key(key), storage.GetOptions{})
		exists := err == nil
		switch {
		case errors.Is(err, storage.ErrNotFound) && ignoreNotFound:
			cur = a.NewFunc()
		case err != nil:
			return toUpstream(err, key)
		}
		if pre != nil {
			if err := pre.Check(key, cur); err != nil {
				return err
			}
		}
		rev := revisionOf(cur)
		next, _, err := tryUpdate(cur.DeepCopyObject(), apistorage.ResponseMeta{ResourceVersion: uint64(rev)})
		if err != nil {
			return err
		}
		if exists && equality.Semantic.DeepEqual(next, cur) {
			return copyInto(cur, dest) // nothing to write
		}
		if na, err := meta.Accessor(next); err == nil {
			na.SetResourceVersion("")
		}
		var res runtime.Object
		if exists {
			res, err = a.Store.Update(ctx, a.key(key), next, storage.UpdateOptions{ExpectedRevision: rev})
		} else {
			res, err = a.Store.Create(ctx, a.key(key), next)
		}
		if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrKeyExists) || errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return toUpstream(err, key)
		}
		return copyInto(res, dest)
	}
}

// GetList implements storage.Interface, with k8s.io/apiserver's own
// validation of the options.
func (a *Adapter) GetList(ctx context.Context, key string, opts apistorage.ListOptions, listObj runtime.Object) error {
	prefix := key
	if opts.Recursive && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	withRev, continueKey, err := apistorage.ValidateListOptions(prefix, a.Versioner(), opts)
	if err != nil {
		return err
	}
	lo := storage.ListOptions{Limit: opts.Predicate.Limit}
	switch {
	case withRev > 0:
		lo.Revision, lo.Match = withRev, storage.MatchExact
	case continueKey == "" && opts.ResourceVersion != "" && opts.ResourceVersion != "0":
		rv, err := parseRV(opts.ResourceVersion)
		if err != nil {
			return err
		}
		lo.Revision, lo.Match = rv, storage.MatchNotOlderThan
	}
	if continueKey != "" {
		lo.StartKey = a.key(continueKey)
	}
	if !opts.Predicate.Empty() {
		pred := opts.Predicate
		lo.Predicate = func(obj runtime.Object) (bool, error) { return pred.Matches(obj) }
	}
	var items []runtime.Object
	var res *storage.ListResult
	if opts.Recursive {
		res, err = a.Store.List(ctx, a.key(prefix), lo)
		if err != nil {
			if errors.Is(err, storage.ErrExpired) {
				if opts.Predicate.Continue != "" {
					// As kube-apiserver: a token that goes on at the
					// latest revision, inconsistently.
					st := apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
					if next, err := apistorage.EncodeContinue(continueKey, prefix, -1); err == nil {
						st.ErrStatus.ListMeta.Continue = next
					}
					return st
				}
				return apierrors.NewResourceExpired("The resourceVersion for the provided list is too old.")
			}
			return toUpstream(err, key)
		}
		items = res.Items
	} else {
		// One key: a list of the key as a prefix, at the revision asked
		// for, keeping the object of that exact key.
		lo.Limit = 0
		res, err = a.Store.List(ctx, a.key(key), lo)
		if err != nil {
			return toUpstream(err, key)
		}
		for _, o := range res.Items {
			if ac, err := meta.Accessor(o); err == nil && strings.HasSuffix(key, "/"+ac.GetName()) {
				items = append(items, o)
			}
		}
		res.NextKey = ""
	}
	copies := make([]runtime.Object, len(items))
	for i, o := range items {
		copies[i] = o.DeepCopyObject()
	}
	if err := meta.SetList(listObj, copies); err != nil {
		return err
	}
	lm, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(strconv.FormatInt(res.Revision, 10))
	lm.SetContinue("")
	lm.SetRemainingItemCount(nil)
	if res.NextKey != "" {
		// As kube-apiserver's tokens: after the last item.
		next, err := apistorage.EncodeContinue(a.upstreamKey(res.LastKey)+"\x00", prefix, res.Revision)
		if err != nil {
			return err
		}
		lm.SetContinue(next)
		lm.SetRemainingItemCount(res.RemainingItemCount)
	}
	return nil
}

// Watch implements storage.Interface: from ResourceVersion, or the state
// now (ADDED events) then its changes when it is "" or "0".
func (a *Adapter) Watch(ctx context.Context, key string, opts apistorage.ListOptions) (watch.Interface, error) {
	rv, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		// Canceled already: a watch that is over.
		w := watch.NewEmptyWatch()
		return w, nil
	}
	prefix := a.key(key)
	if opts.Recursive && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	var pred storage.Predicate
	if !opts.Predicate.Empty() {
		p := opts.Predicate
		pred = func(obj runtime.Object) (bool, error) { return p.Matches(obj) }
	}
	var initial []runtime.Object
	from := rv
	if rv == 0 {
		res, err := a.Store.List(ctx, prefix, storage.ListOptions{Predicate: pred})
		if err != nil {
			return nil, toUpstream(err, key)
		}
		initial, from = res.Items, res.Revision
		if !opts.Recursive {
			initial = nil
			for _, o := range res.Items {
				if ac, err := meta.Accessor(o); err == nil && Prefix+key == prefix && strings.HasSuffix(key, "/"+ac.GetName()) {
					initial = append(initial, o)
				}
			}
		}
	}
	inner, err := a.Store.Watch(ctx, prefix, storage.WatchOptions{Revision: from, Predicate: pred})
	if errors.Is(err, storage.ErrExpired) {
		// As kube-apiserver: the watch opens, its only event the 410.
		st := apierrors.NewResourceExpired(err.Error()).ErrStatus
		w := watch.NewFake()
		go func() { w.Error(&st); w.Stop() }()
		return w, nil
	}
	if err != nil {
		return nil, toUpstream(err, key)
	}
	w := &adapterWatch{inner: inner, result: make(chan watch.Event), done: make(chan struct{})}
	go w.run(initial, !opts.Recursive, key)
	return w, nil
}

type adapterWatch struct {
	inner  watch.Interface
	result chan watch.Event
	done   chan struct{}
	once   bool
}

func (w *adapterWatch) Stop() {
	if !w.once {
		w.once = true
		close(w.done)
	}
	w.inner.Stop()
}

func (w *adapterWatch) ResultChan() <-chan watch.Event { return w.result }

func (w *adapterWatch) run(initial []runtime.Object, single bool, key string) {
	defer close(w.result)
	send := func(e watch.Event) bool {
		select {
		case w.result <- e:
			return true
		case <-w.done:
			return false
		}
	}
	for _, o := range initial {
		if !send(watch.Event{Type: watch.Added, Object: o.DeepCopyObject()}) {
			return
		}
	}
	for e := range w.inner.ResultChan() {
		switch e.Type {
		case watch.Bookmark:
			continue
		case watch.Error:
			if we, ok := e.Object.(*storage.WatchError); ok {
				st := apierrors.NewInternalError(we.Err).Status()
				if we.Err.Code == storage.ErrCodeExpired {
					st = apierrors.NewResourceExpired(we.Err.Error()).Status()
				}
				e.Object = &st
			}
			send(e)
			return
		}
		if single {
			if ac, err := meta.Accessor(e.Object); err != nil || !strings.HasSuffix(key, "/"+ac.GetName()) {
				continue
			}
		}
		if !send(watch.Event{Type: e.Type, Object: e.Object.DeepCopyObject()}) {
			return
		}
	}
}

// Stats implements storage.Interface.
func (a *Adapter) Stats(ctx context.Context) (apistorage.Stats, error) {
	res, err := a.Store.List(ctx, Prefix+"/", storage.ListOptions{})
	if err != nil {
		return apistorage.Stats{}, err
	}
	return apistorage.Stats{ObjectCount: int64(len(res.Items))}, nil
}

// ReadinessCheck implements storage.Interface.
func (a *Adapter) ReadinessCheck() error { return nil }

// RequestWatchProgress implements storage.Interface.
func (a *Adapter) RequestWatchProgress(ctx context.Context) error { return nil }

// GetCurrentResourceVersion implements storage.Interface.
func (a *Adapter) GetCurrentResourceVersion(ctx context.Context) (uint64, error) {
	rev, err := a.Store.CurrentRevision(ctx)
	return uint64(rev), err
}

// EnableResourceSizeEstimation implements storage.Interface.
func (a *Adapter) EnableResourceSizeEstimation(apistorage.KeysFunc) error { return nil }

// CompactRevision implements storage.Interface.
func (a *Adapter) CompactRevision() int64 { return 0 }
