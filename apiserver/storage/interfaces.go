package storage

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Interface is the storage contract every backend implements.
//
// Objects passed in are not retained: the backend stores its own copy.
// Objects returned by Create, Get, Update and Delete are owned by the
// caller. The items of a List and the objects of watch events may be shared
// with the backend and with other callers: they must not be modified (the
// REST layer converts them to the request's version, which copies). Every
// object a backend returns carries the revision of its last change as
// metadata.resourceVersion.
type Interface interface {
	// Create stores obj under key, failing with ErrKeyExists if the key holds
	// an object. It returns the stored object.
	Create(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error)

	// Get returns the latest state of the object under key, once the backend
	// has reached opts.MinRevision. It fails with ErrNotFound when there is
	// none.
	Get(ctx context.Context, key string, opts GetOptions) (runtime.Object, error)

	// Update replaces the object under key. With opts.ExpectedRevision set it
	// fails with ErrConflict unless the stored object is at that revision.
	Update(ctx context.Context, key string, obj runtime.Object, opts UpdateOptions) (runtime.Object, error)

	// Delete removes the object under key and returns its last state, whose
	// resourceVersion is the revision of the deletion.
	Delete(ctx context.Context, key string, opts DeleteOptions) (runtime.Object, error)

	// List returns the objects whose keys start with prefix, in key order.
	List(ctx context.Context, prefix string, opts ListOptions) (*ListResult, error)

	// Watch streams the changes to keys under prefix made after
	// opts.Revision. Subscription happens before history is replayed, so no
	// change is missed or repeated.
	Watch(ctx context.Context, prefix string, opts WatchOptions) (watch.Interface, error)

	// CurrentRevision returns the revision of the latest write.
	CurrentRevision(ctx context.Context) (int64, error)

	// Compact discards the history older than revision. Reads and watches
	// from before it fail with ErrExpired.
	Compact(ctx context.Context, revision int64) error
}

// GetOptions are the options of Interface.Get.
type GetOptions struct {
	// MinRevision, when non-zero, makes the read wait (a bounded time) until
	// the backend has reached that revision; it then fails with
	// ErrTooLargeRevision. Default: 0, no wait.
	MinRevision int64
}

// UpdateOptions are the options of Interface.Update.
type UpdateOptions struct {
	// ExpectedRevision, when non-zero, makes the update conditional on the
	// stored object being at that revision. Default: 0, unconditional.
	ExpectedRevision int64
}

// DeleteOptions are the options of Interface.Delete.
type DeleteOptions struct {
	// ExpectedRevision, when non-zero, makes the deletion conditional on the
	// stored object being at that revision. Default: 0, unconditional.
	ExpectedRevision int64
}

// RevisionMatch says how ListOptions.Revision is interpreted.
type RevisionMatch int

const (
	// MatchLatest reads the latest state; Revision is ignored. The default.
	MatchLatest RevisionMatch = iota
	// MatchExact reads the state at exactly Revision.
	MatchExact
	// MatchNotOlderThan reads the latest state, waiting for the backend to
	// reach Revision if it has not yet.
	MatchNotOlderThan
)

// Predicate reports whether an object belongs to a filtered result.
type Predicate func(obj runtime.Object) (bool, error)

// ListOptions are the options of Interface.List.
type ListOptions struct {
	// Revision and Match choose the state to read. Default: the latest.
	Revision int64
	Match    RevisionMatch
	// StartKey, when set, resumes a listing at that key (inclusive). It must
	// lie under the listed prefix.
	StartKey string
	// Limit, when positive, caps the number of items returned. Default: 0,
	// no limit.
	Limit int64
	// Predicate, when set, keeps only the objects it accepts. Default: all.
	Predicate Predicate
}

// ListResult is what Interface.List returns.
type ListResult struct {
	// Items are the objects, in key order.
	Items []runtime.Object
	// Attachments, from a store whose lists share their objects, has one
	// for each item, in the same order: what the layers above keep of the
	// item's key (see Attachment). Nil from other stores.
	Attachments []*Attachment
	// Revision is the revision the list was read at.
	Revision int64
	// NextKey is the key to resume at when the list was cut by Limit; empty
	// when the listing is complete.
	NextKey string
	// LastKey is the key of the last item, when the list was cut by Limit
	// (kube-apiserver's continue tokens resume after it).
	LastKey string
	// RemainingItemCount counts the objects after NextKey. It is set only
	// when the list was cut and no Predicate was given.
	RemainingItemCount *int64
}

// WatchOptions are the options of Interface.Watch.
type WatchOptions struct {
	// Revision: only changes made after it are sent. Default: 0, changes
	// from now on.
	Revision int64
	// Predicate, when set, filters events: an object that starts matching is
	// ADDED, one that stops matching is DELETED. Default: all.
	Predicate Predicate
	// Transform, when set, maps every event the watch would send (its
	// errors and *Progress bookmarks too) to the event it sends, or drops
	// it (false), in the watch's own goroutine: a caller that adapts each
	// event (the REST layer's shared encodings, a custom resource's
	// version) needs no goroutine and channel of its own between the
	// storage and its reader. The watch ends after the first watch.Error
	// it sends, its own or one Transform made. Default: events as they are.
	Transform func(watch.Event) (watch.Event, bool)
}

// Send is what a watch sends of e under opts: e itself, or what
// opts.Transform makes of it.
func (opts WatchOptions) Send(e watch.Event) (watch.Event, bool) {
	if opts.Transform == nil {
		return e, true
	}
	return opts.Transform(e)
}

// Deliver sends what opts make of e on a backend watch's channel; false
// when the watch ends: ctx is done, or an error was sent.
func (opts WatchOptions) Deliver(ctx context.Context, ch chan<- watch.Event, e watch.Event) bool {
	e, ok := opts.Send(e)
	if !ok {
		return true
	}
	select {
	case ch <- e:
		return e.Type != watch.Error
	case <-ctx.Done():
		return false
	}
}
