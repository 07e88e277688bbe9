package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"
	"weak"

	"github.com/google/btree"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// Config configures a memory Store. The zero value is usable.
type Config struct {
	// Clock drives compaction and bounded waits. Default: the real clock.
	Clock clock.WithTicker
	// CompactionInterval is how often history is compacted; each compaction
	// discards what is older than the revision of the previous one, so at
	// least one interval of history is kept. Default: 5m, the period
	// kube-apiserver compacts etcd with. Negative disables compaction.
	CompactionInterval time.Duration
	// FutureRevisionWait bounds how long a read waits for a revision the
	// store has not reached yet. Default: 3s.
	FutureRevisionWait time.Duration
	// Journal, when set, makes the store durable: every change is handed
	// to it, and becomes visible (to reads, watches and its writer) only
	// once the journal reports it durable (Store.Durable). Default: none,
	// every change is visible at once.
	Journal Journal
	// Codec, when set, keeps the versions history holds only for reads at
	// older revisions (exact lists, paginated lists, watches that resume)
	// encoded, without pointers for the garbage collector to follow, once
	// FreezeAfter revisions have been written after the change that
	// superseded them: five minutes of Lease renewals at 5,000 nodes held
	// 250 MB of live heap and a fifth of the process's CPU in marking. A
	// read of such a version decodes it. Default: none, history stays
	// decoded.
	Codec Codec
	// FreezeAfter is how many revisions a change's event keeps its objects
	// decoded for the watches that read it; after that a watch decodes
	// them. Default: 10,000 (20 s of 5,000 nodes' renewals). Negative:
	// never.
	FreezeAfter int64
	// EncodedPrefixes are the keys whose latest versions are kept encoded
	// too (with Codec), once FreezeAfter revisions have followed the change
	// that wrote them: objects written once and seldom read, which
	// kube-apiserver keeps in etcd alone, with no watch cache (Events).
	// A read of one decodes it. Default: none.
	EncodedPrefixes []string
}

// Codec encodes and decodes stored objects (Config.Codec), as
// storage/encoding's Codec does.
type Codec interface {
	Encode(key string, obj runtime.Object) ([]byte, error)
	Decode(key string, data []byte) (runtime.Object, error)
}

// Journal persists a Store's changes (Config.Journal).
type Journal interface {
	// Encode returns the record of obj, to be stored under key. The store
	// calls it before it takes its lock; obj's resourceVersion is not
	// yet set (Change.Revision carries it).
	Encode(key string, obj runtime.Object) ([]byte, error)
	// Append queues a change for persistence. The store calls it with its
	// lock held, in revision order: it must not block. The journal then
	// calls Store.Durable, or Store.Fail if it cannot persist.
	Append(c Change)
}

// Change is one write handed to a Journal.
type Change struct {
	// Revision is the write's revision.
	Revision int64
	// Type is watch.Added, watch.Modified or watch.Deleted.
	Type watch.EventType
	// Key is the key written.
	Key string
	// Data is the Journal's encoding of the object; nil for a deletion.
	Data []byte
}

// Store is the in-memory storage.Interface.
type Store struct {
	cfg Config

	// mu guards every field below.
	mu sync.RWMutex
	// rev is the revision of the latest write; an empty store is at 1.
	rev int64
	// visible is the revision reads, watches and writers see: rev without
	// a journal, the latest durable revision with one. Versions and events
	// after it exist but are not shown.
	visible int64
	// failed, once set, is why the journal could not persist: writes are
	// refused from then on.
	failed error
	// loading is set while Replay applies recovered changes, which are not
	// handed back to the journal.
	loading bool
	// compactRev is the revision history was last compacted at.
	compactRev int64
	// frozen is the revision up to which events hold no objects (see
	// Config.Codec): a reader takes them from the versions.
	frozen int64
	// tree holds one record per key ever written and not yet compacted away.
	tree *btree.BTreeG[*record]
	// byKey indexes tree's records by key for point reads and writes: a
	// B-tree lookup compares strings down its height (4% of the API
	// server's CPU in a 110,000-object scheduler experiment).
	byKey map[string]*record
	// events holds one event per revision: events[i] is revision firstRev+i.
	events   []event
	firstRev int64
	// wake is closed and replaced by every write, for reads that wait for a
	// revision.
	wake chan struct{}

	// waitMu guards waiters and watchers; it is taken with mu held (for
	// reading by a watcher that registers, for writing by a write that
	// wakes them).
	waitMu sync.Mutex
	// watchers are the running watchers, whose positions bound how far
	// events are frozen: a watcher behind never decodes what it reads.
	watchers map[*watcher]struct{}
	// waiters holds, by prefix, the watchers that have read every event and
	// wait for the next one under their prefix: a write wakes only those of
	// its key, not every watcher of the store.
	waiters map[string]*waiter

	// templates holds, by templateKey, the first stored object of each set
	// of replicas (a ReplicaSet's pods), whose parts the others share; a
	// template no stored version holds any more goes. Guarded by
	// templatesMu, taken without mu.
	templatesMu sync.Mutex
	templates   map[string]weak.Pointer[template]

	// ticked, when set (by tests), receives the revision each compaction
	// tick recorded; waited, the prefix of each watcher that starts to wait.
	ticked chan int64
	waited chan string
}

// waiter is the wake-up of the watchers waiting on one prefix.
type waiter struct {
	ch chan struct{} // closed by the first write under the prefix
	// rev is that write's revision, set before ch is closed: the events
	// between a watcher's cursor and rev are none of the prefix's.
	rev     int64
	waiting int // watchers waiting, for the last one gone to remove it
}

var _ storage.Interface = (*Store)(nil)

type version struct {
	rev     int64
	obj     runtime.Object // nil for a deletion and once encoded
	deleted bool
	// data is obj encoded (Config.Codec), once a later version has
	// superseded it for long enough.
	data []byte
	// interned keeps the field sets obj's managed fields share with other
	// versions canonical (see internManagedFields).
	interned []unique.Handle[string]
	// tmpl is the template of obj's set of replicas, kept while a version
	// has parts of it (see shareWithReplicas).
	tmpl *template
}

type record struct {
	key      string
	versions []version // ascending by rev
	// attach is what the layers above keep of the key's latest version
	// (storage.Attachment), emptied by each new version.
	attach storage.Attachment
}

type event struct {
	rev  int64
	typ  watch.EventType
	key  string
	obj  runtime.Object // the new state; the last state for a deletion
	prev runtime.Object // the previous state, nil for a creation
	// frozen: obj and prev are nil, to be read from the key's versions
	// (Store.thaw).
	frozen bool
}

// New returns an empty Store.
func New(cfg Config) (*Store, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.CompactionInterval == 0 {
		cfg.CompactionInterval = 5 * time.Minute
	}
	if cfg.FutureRevisionWait == 0 {
		cfg.FutureRevisionWait = 3 * time.Second
	}
	if cfg.FutureRevisionWait < 0 {
		return nil, fmt.Errorf("unable to create memory store: FutureRevisionWait must not be negative")
	}
	if cfg.FreezeAfter == 0 {
		cfg.FreezeAfter = 10000
	}
	if cfg.Codec == nil || cfg.FreezeAfter < 0 {
		cfg.EncodedPrefixes = nil // nothing is encoded
	}
	return &Store{
		cfg:       cfg,
		rev:       1,
		visible:   1,
		firstRev:  2,
		frozen:    1,
		tree:      btree.NewG(32, func(a, b *record) bool { return a.key < b.key }),
		byKey:     map[string]*record{},
		wake:      make(chan struct{}),
		waiters:   map[string]*waiter{},
		watchers:  map[*watcher]struct{}{},
		templates: map[string]weak.Pointer[template]{},
	}, nil
}

// Start runs periodic compaction until ctx is done.
func (s *Store) Start(ctx context.Context) error {
	if s.cfg.CompactionInterval < 0 {
		<-ctx.Done()
		return nil
	}
	logger := klog.FromContext(ctx)
	t := s.cfg.Clock.NewTicker(s.cfg.CompactionInterval)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		if last > 0 {
			if err := s.Compact(ctx, last); err != nil {
				logger.Error(err, "unable to compact", "revision", last)
			}
		}
		last, _ = s.CurrentRevision(ctx)
		if s.ticked != nil {
			s.ticked <- last
		}
	}
}

func setRevision(obj runtime.Object, rev int64) error {
	a, err := meta.Accessor(obj)
	if err != nil {
		return storage.NewError(storage.ErrCodeInvalidArgument, "", 0, "object has no metadata: %v", err)
	}
	a.SetResourceVersion(fmt.Sprint(rev))
	return nil
}

// commit appends a version and an event for key at the next revision;
// interned are the handles of obj's shared field sets. It must be called
// with mu held for writing.
func (s *Store) commit(r *record, typ watch.EventType, obj, prev runtime.Object, interned []unique.Handle[string], tmpl *template, data []byte) int64 {
	s.rev++
	v := version{rev: s.rev, obj: obj, deleted: typ == watch.Deleted, interned: interned, tmpl: tmpl}
	if v.deleted {
		v.obj = nil
	}
	r.versions = append(r.versions, v)
	r.attach.Clear()
	s.events = append(s.events, event{rev: s.rev, typ: typ, key: r.key, obj: obj, prev: prev})
	if s.cfg.Journal != nil && !s.loading {
		s.cfg.Journal.Append(Change{Revision: s.rev, Type: typ, Key: r.key, Data: data})
		return s.rev
	}
	s.publish(s.rev)
	return s.rev
}

// publish makes the changes up to rev visible. It must be called with mu
// held for writing.
func (s *Store) publish(rev int64) {
	if rev <= s.visible {
		return
	}
	for _, e := range s.eventsAfter(s.visible, rev) {
		s.wakeWatchers(e.key, e.rev)
	}
	s.visible = rev
	close(s.wake)
	s.wake = make(chan struct{})
	s.freeze()
}

// freeze drops the objects of the events FreezeAfter revisions behind the
// visible one, and encodes the versions those events superseded, which
// only reads at older revisions need from then on. It must be called with
// mu held for writing.
func (s *Store) freeze() {
	if s.cfg.Codec == nil || s.cfg.FreezeAfter < 0 {
		return
	}
	s.frozen = max(s.frozen, s.firstRev-1)
	limit := s.visible - s.cfg.FreezeAfter
	if limit-s.frozen < min(s.cfg.FreezeAfter, 256) {
		return // in batches: each looks at every watcher
	}
	s.waitMu.Lock()
	for w := range s.watchers {
		limit = min(limit, w.pos.Load())
	}
	s.waitMu.Unlock()
	for ; s.frozen < limit; s.frozen++ {
		e := &s.events[s.frozen+1-s.firstRev]
		if latest := s.encodedKey(e.key); e.prev != nil || latest {
			if r := s.byKey[e.key]; r != nil {
				i := r.index(e.rev)
				if e.prev != nil && i > 0 {
					s.encodeVersion(r.key, &r.versions[i-1])
				}
				if latest && i >= 0 && i == len(r.versions)-1 {
					s.encodeVersion(r.key, &r.versions[i])
				}
			}
		}
		e.obj, e.prev, e.frozen = nil, nil, true
	}
}

// encodedKey reports whether key's latest version is kept encoded
// (Config.EncodedPrefixes).
func (s *Store) encodedKey(key string) bool {
	for _, p := range s.cfg.EncodedPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// encodeVersion keeps v encoded instead of decoded. Stored objects are
// read without a lock, so it encodes a copy; a version it cannot encode
// stays as it is.
func (s *Store) encodeVersion(key string, v *version) {
	if v.obj == nil {
		return
	}
	data, err := s.cfg.Codec.Encode(key, v.obj.DeepCopyObject())
	if err != nil {
		return
	}
	// Exactly its length: the encoder's buffer has room to spare.
	v.data, v.obj, v.interned, v.tmpl = bytes.Clone(data), nil, nil, nil
}

// object returns v's object, decoded if it is kept encoded. It must be
// called with mu held.
func (s *Store) object(key string, v *version) (runtime.Object, error) {
	if v.obj != nil || v.data == nil {
		return v.obj, nil
	}
	obj, err := s.cfg.Codec.Decode(key, v.data)
	if err != nil {
		return nil, storage.NewError(storage.ErrCodeInvalidArgument, key, v.rev, "%v", err)
	}
	if err := setRevision(obj, v.rev); err != nil {
		return nil, err
	}
	return obj, nil
}

// thaw sets the objects of a frozen event, a copy of the store's, from the
// key's versions. It must be called with mu held.
func (s *Store) thaw(e *event) error {
	r := s.byKey[e.key]
	i := r.index(e.rev)
	if i < 0 {
		return storage.NewError(storage.ErrCodeInvalidArgument, e.key, e.rev, "no version of the event's revision")
	}
	var err error
	if i > 0 && !r.versions[i-1].deleted && e.typ != watch.Added {
		if e.prev, err = s.object(e.key, &r.versions[i-1]); err != nil {
			return err
		}
	}
	if e.typ != watch.Deleted {
		e.obj, err = s.object(e.key, &r.versions[i])
		return err
	}
	// A deletion's object is the last state at the deletion's revision.
	if e.prev == nil {
		return storage.NewError(storage.ErrCodeInvalidArgument, e.key, e.rev, "no last state of the deletion")
	}
	e.obj = e.prev.DeepCopyObject()
	return setRevision(e.obj, e.rev)
}

// eventsAfter returns the events in (from, to]. It must be called with mu
// held.
func (s *Store) eventsAfter(from, to int64) []event {
	i := max(from+1-s.firstRev, 0)
	j := min(to+1-s.firstRev, int64(len(s.events)))
	if i >= j {
		return nil
	}
	return s.events[i:j]
}

// Durable reports that the journal has persisted every change up to rev:
// they become visible, and their writers return.
func (s *Store) Durable(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publish(min(rev, s.rev))
}

// Fail reports that the journal cannot persist: the changes it has not
// reported durable stay invisible, their writers and every later write
// fail with err. Reads go on at the last durable revision.
func (s *Store) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = err
		close(s.wake)
		s.wake = make(chan struct{})
	}
}

// LoadSnapshot fills an empty store with the objects of a snapshot taken at
// revision rev, by key; each carries the revision of its last change as its
// resourceVersion. History starts after rev: reads and watches from before
// it are expired. It must be called before the store is used.
func (s *Store) LoadSnapshot(rev int64, objs map[string]runtime.Object) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rev != 1 || len(s.byKey) != 0 {
		return fmt.Errorf("unable to load a snapshot into a store in use")
	}
	if rev < 1 {
		return fmt.Errorf("unable to load a snapshot at revision %d", rev)
	}
	for key, obj := range objs {
		a, err := meta.Accessor(obj)
		if err != nil {
			return fmt.Errorf("unable to load %s: %w", key, err)
		}
		var orev int64
		if _, err := fmt.Sscan(a.GetResourceVersion(), &orev); err != nil || orev < 1 || orev > rev {
			return fmt.Errorf("unable to load %s: resourceVersion %q is not a revision up to %d", key, a.GetResourceVersion(), rev)
		}
		interned := internManagedFields(obj)
		r := &record{key: key, versions: []version{{rev: orev, obj: obj, interned: interned}}}
		if s.encodedKey(key) {
			s.encodeVersion(key, &r.versions[0])
		}
		s.tree.ReplaceOrInsert(r)
		s.byKey[key] = r
	}
	s.rev, s.visible, s.compactRev, s.firstRev = rev, rev, rev, rev+1
	return nil
}

// Replay applies a change recovered from a journal at its revision, which
// must be the store's next one; obj is nil for a deletion. The change is
// not handed back to the journal. It must be called before the store
// serves.
func (s *Store) Replay(rev int64, typ watch.EventType, key string, obj runtime.Object) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev != s.rev+1 {
		return fmt.Errorf("unable to replay revision %d of %s: the store is at %d", rev, key, s.rev)
	}
	r, ok := s.byKey[key]
	cur := r.latest()
	switch typ {
	case watch.Added:
		if cur != nil {
			return fmt.Errorf("unable to replay the creation of %s at revision %d: it exists", key, rev)
		}
	case watch.Modified, watch.Deleted:
		if cur == nil {
			return fmt.Errorf("unable to replay the %s of %s at revision %d: it does not exist", strings.ToLower(string(typ)), key, rev)
		}
	default:
		return fmt.Errorf("unable to replay revision %d of %s: unknown change %q", rev, key, typ)
	}
	var prev runtime.Object
	if cur != nil {
		var err error
		if prev, err = s.object(key, cur); err != nil {
			return err
		}
	}
	if typ == watch.Deleted {
		obj = prev.DeepCopyObject()
	}
	if err := setRevision(obj, rev); err != nil {
		return err
	}
	if !ok {
		r = &record{key: key}
		s.tree.ReplaceOrInsert(r)
		s.byKey[key] = r
	}
	s.loading = true
	defer func() { s.loading = false }()
	var interned []unique.Handle[string]
	if typ != watch.Deleted {
		interned = internManagedFields(obj)
	}
	s.commit(r, typ, obj, prev, interned, nil, nil)
	return nil
}

// Entry is a key and its object (see Store.Entries).
type Entry struct {
	Key    string
	Object runtime.Object // shared, read-only
}

// Entries returns the live objects at revision rev, in key order, for a
// snapshot. It fails with storage.ErrExpired when rev has been compacted.
func (s *Store) Entries(rev int64) ([]Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if rev < s.compactRev {
		return nil, storage.NewError(storage.ErrCodeExpired, "", s.compactRev, "%d (%d)", rev, s.compactRev)
	}
	if rev > s.visible {
		return nil, storage.NewError(storage.ErrCodeTooLargeRevision, "", s.visible, "requested %d", rev)
	}
	out := make([]Entry, 0, len(s.byKey))
	var err error
	s.tree.Ascend(func(r *record) bool {
		if v := r.at(rev); v != nil {
			var obj runtime.Object
			if obj, err = s.object(r.key, v); err != nil {
				return false
			}
			out = append(out, Entry{Key: r.key, Object: obj})
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// encode returns the journal's record of obj, if the store has a journal.
func (s *Store) encode(key string, obj runtime.Object) ([]byte, error) {
	if s.cfg.Journal == nil {
		return nil, nil
	}
	return s.cfg.Journal.Encode(key, obj)
}

// awaitDurable waits until the changes up to rev are durable, for their
// writer to return, or for a write that failed against them to report its
// failure (a conflict with a change that never became durable must not be
// reported). It must be called with mu held for writing, and releases it.
func (s *Store) awaitDurable(ctx context.Context, rev int64) error {
	for rev > s.visible {
		if s.failed != nil {
			err := s.failed
			s.mu.Unlock()
			return err
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			// The write may yet become durable: as with a timeout
			// from etcd, its outcome is unknown to the writer.
			return ctx.Err()
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// writeResult returns what a write returns once it is durable: obj, or
// err when the write failed against the state at revision seen.
func (s *Store) writeResult(ctx context.Context, rev int64, obj runtime.Object, err error) (runtime.Object, error) {
	if werr := s.awaitDurable(ctx, rev); werr != nil && err == nil {
		return nil, werr
	}
	if err != nil {
		return nil, err
	}
	return obj.DeepCopyObject(), nil
}

// wakeWatchers wakes the watchers waiting on a prefix of key, with the
// write's revision. It must be called with mu held for writing.
func (s *Store) wakeWatchers(key string, rev int64) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	for prefix, w := range s.waiters {
		if strings.HasPrefix(key, prefix) {
			w.rev = rev
			close(w.ch)
			delete(s.waiters, prefix)
		}
	}
}

func (r *record) latest() *version {
	if r == nil || len(r.versions) == 0 {
		return nil
	}
	v := &r.versions[len(r.versions)-1]
	if v.deleted {
		return nil
	}
	return v
}

// latest returns the latest live version of key, pending ones included,
// or nil. It must be called with mu held.
func (s *Store) latest(key string) *version {
	r := s.byKey[key]
	return r.latest()
}

// current returns r's live version at the visible revision, or nil. It
// must be called with mu held.
func (s *Store) current(r *record) *version {
	if r == nil {
		return nil
	}
	if s.visible == s.rev {
		return r.latest()
	}
	return r.at(s.visible)
}

// index returns the index of r's version of revision rev, or -1.
func (r *record) index(rev int64) int {
	if r == nil {
		return -1
	}
	for i := len(r.versions) - 1; i >= 0; i-- {
		if r.versions[i].rev == rev {
			return i
		}
		if r.versions[i].rev < rev {
			break
		}
	}
	return -1
}

// at returns the live version at revision rev, or nil.
func (r *record) at(rev int64) *version {
	for i := len(r.versions) - 1; i >= 0; i-- {
		if r.versions[i].rev <= rev {
			if r.versions[i].deleted {
				return nil
			}
			return &r.versions[i]
		}
	}
	return nil
}

// Create implements storage.Interface.
func (s *Store) Create(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
	stored := obj.DeepCopyObject()
	data, err := s.encode(key, stored)
	if err != nil {
		return nil, storage.NewError(storage.ErrCodeInvalidArgument, key, 0, "%v", err)
	}
	interned := internManagedFields(stored)
	tmpl := s.shareWithReplicas(stored)
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return nil, s.failed
	}
	r, ok := s.byKey[key]
	if ok && r.latest() != nil {
		return s.writeResult(ctx, s.rev, nil, storage.NewError(storage.ErrCodeKeyExists, key, 0, ""))
	}
	if err := setRevision(stored, s.rev+1); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if !ok {
		r = &record{key: key}
		s.tree.ReplaceOrInsert(r)
		s.byKey[key] = r
	}
	rev := s.commit(r, watch.Added, stored, nil, interned, tmpl, data)
	return s.writeResult(ctx, rev, stored, nil)
}

// waitFor waits, bounded by FutureRevisionWait, until the store has reached
// rev. It returns with mu held for reading.
func (s *Store) waitFor(ctx context.Context, rev int64) error {
	s.mu.RLock()
	if rev <= s.visible {
		return nil
	}
	deadline := s.cfg.Clock.After(s.cfg.FutureRevisionWait)
	for rev > s.visible {
		wake := s.wake
		s.mu.RUnlock()
		select {
		case <-wake:
		case <-deadline:
			s.mu.RLock()
			if rev > s.visible {
				cur := s.visible
				s.mu.RUnlock()
				e := storage.NewError(storage.ErrCodeTooLargeRevision, "", cur, "requested %d", rev)
				e.Requested = rev
				return e
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.RLock()
	}
	return nil
}

// Get implements storage.Interface.
func (s *Store) Get(ctx context.Context, key string, opts storage.GetOptions) (runtime.Object, error) {
	if err := s.waitFor(ctx, opts.MinRevision); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	v := s.current(s.byKey[key])
	if v == nil {
		return nil, storage.NewError(storage.ErrCodeNotFound, key, 0, "")
	}
	if v.obj == nil {
		return s.object(key, v) // decoded: the caller's own
	}
	return v.obj.DeepCopyObject(), nil
}

// Update implements storage.Interface.
func (s *Store) Update(ctx context.Context, key string, obj runtime.Object, opts storage.UpdateOptions) (runtime.Object, error) {
	stored := obj.DeepCopyObject()
	data, err := s.encode(key, stored)
	if err != nil {
		return nil, storage.NewError(storage.ErrCodeInvalidArgument, key, 0, "%v", err)
	}
	interned := internManagedFields(stored)
	// What the update leaves as it was is the last version's: one copy for
	// the versions history keeps. Any version would do, so the one read
	// here need not be the one the update replaces; stored objects are
	// never written, so the comparison needs no lock.
	var last runtime.Object
	s.mu.RLock()
	if v := s.latest(key); v != nil {
		last = v.obj
	}
	s.mu.RUnlock()
	if last != nil {
		shareWith(stored, last)
	}
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return nil, s.failed
	}
	r := s.byKey[key]
	cur := r.latest()
	if cur == nil {
		return s.writeResult(ctx, s.rev, nil, storage.NewError(storage.ErrCodeNotFound, key, 0, ""))
	}
	if opts.ExpectedRevision != 0 && cur.rev != opts.ExpectedRevision {
		return s.writeResult(ctx, s.rev, nil, storage.NewError(storage.ErrCodeConflict, key, cur.rev, "expected revision %d", opts.ExpectedRevision))
	}
	prev, err := s.object(key, cur)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if err := setRevision(stored, s.rev+1); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	rev := s.commit(r, watch.Modified, stored, prev, interned, heldTemplate(cur), data)
	return s.writeResult(ctx, rev, stored, nil)
}

// Delete implements storage.Interface.
func (s *Store) Delete(ctx context.Context, key string, opts storage.DeleteOptions) (runtime.Object, error) {
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return nil, s.failed
	}
	r := s.byKey[key]
	cur := r.latest()
	if cur == nil {
		return s.writeResult(ctx, s.rev, nil, storage.NewError(storage.ErrCodeNotFound, key, 0, ""))
	}
	if opts.ExpectedRevision != 0 && cur.rev != opts.ExpectedRevision {
		return s.writeResult(ctx, s.rev, nil, storage.NewError(storage.ErrCodeConflict, key, cur.rev, "expected revision %d", opts.ExpectedRevision))
	}
	prev, err := s.object(key, cur)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	last := prev.DeepCopyObject()
	shareWith(last, prev)
	if err := setRevision(last, s.rev+1); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	rev := s.commit(r, watch.Deleted, last, prev, nil, nil, nil)
	return s.writeResult(ctx, rev, last, nil)
}

// List implements storage.Interface.
func (s *Store) List(ctx context.Context, prefix string, opts storage.ListOptions) (*storage.ListResult, error) {
	if opts.StartKey != "" && !strings.HasPrefix(opts.StartKey, prefix) {
		return nil, storage.NewError(storage.ErrCodeInvalidArgument, opts.StartKey, 0, "start key is not under prefix %q", prefix)
	}
	var wait int64
	if opts.Match == storage.MatchNotOlderThan {
		wait = opts.Revision
	}
	if err := s.waitFor(ctx, wait); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()

	rev := s.visible
	if opts.Match == storage.MatchExact {
		if opts.Revision <= 0 {
			return nil, storage.NewError(storage.ErrCodeInvalidArgument, "", opts.Revision, "an exact read needs a revision")
		}
		if opts.Revision < s.compactRev {
			e := storage.NewError(storage.ErrCodeExpired, "", s.compactRev, "%d (%d)", opts.Revision, s.compactRev)
			e.Requested = opts.Revision
			return nil, e
		}
		if opts.Revision > s.visible {
			e := storage.NewError(storage.ErrCodeTooLargeRevision, "", s.visible, "requested %d", opts.Revision)
			e.Requested = opts.Revision
			return nil, e
		}
		rev = opts.Revision
	}

	start := prefix
	if opts.StartKey != "" {
		start = opts.StartKey
	}
	res := &storage.ListResult{Revision: rev}
	var (
		err       error
		remaining int64
		counting  bool
		lastKey   string
	)
	s.tree.AscendGreaterOrEqual(&record{key: start}, func(r *record) bool {
		if !strings.HasPrefix(r.key, prefix) {
			return false
		}
		var v *version
		if rev == s.rev {
			v = r.latest()
		} else {
			v = r.at(rev)
		}
		if v == nil {
			return true
		}
		obj, oerr := s.object(r.key, v)
		if oerr != nil {
			err = oerr
			return false
		}
		if counting {
			if opts.Predicate != nil {
				return false // one more live key is all we need to know
			}
			remaining++
			return true
		}
		if opts.Limit > 0 && int64(len(res.Items)) == opts.Limit {
			res.NextKey = r.key
			counting = true
			if opts.Predicate != nil {
				return false
			}
			remaining++
			return true
		}
		if opts.Predicate != nil {
			ok, perr := opts.Predicate(obj)
			if perr != nil {
				err = perr
				return false
			}
			if !ok {
				return true
			}
		}
		res.Items = append(res.Items, obj)
		res.Attachments = append(res.Attachments, &r.attach)
		lastKey = r.key
		return true
	})
	if res.NextKey != "" {
		res.LastKey = lastKey
	}
	if err != nil {
		return nil, err
	}
	// Items are shared, read-only (see storage.Interface): stored objects
	// are never modified in place, only replaced.
	if res.NextKey != "" && opts.Predicate == nil {
		res.RemainingItemCount = &remaining
	}
	return res, nil
}

// CurrentRevision implements storage.Interface.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.visible, nil
}

// Compact implements storage.Interface.
func (s *Store) Compact(ctx context.Context, revision int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if revision <= s.compactRev {
		return nil
	}
	if revision > s.visible {
		return storage.NewError(storage.ErrCodeTooLargeRevision, "", s.visible, "compact to %d", revision)
	}
	s.compactRev = revision
	var drop []*record
	s.tree.Ascend(func(r *record) bool {
		// Keep the newest version at or before revision and all after it.
		keep := 0
		for i, v := range r.versions {
			if v.rev <= revision {
				keep = i
			}
		}
		if keep > 0 {
			r.versions = append([]version(nil), r.versions[keep:]...)
		}
		if len(r.versions) > 0 && r.versions[0].deleted && r.versions[0].rev <= revision {
			r.versions = r.versions[1:]
		}
		if len(r.versions) == 0 {
			drop = append(drop, r)
		}
		return true
	})
	for _, r := range drop {
		s.tree.Delete(r)
		delete(s.byKey, r.key)
	}
	if n := revision - s.firstRev + 1; n > 0 {
		if n > int64(len(s.events)) {
			n = int64(len(s.events))
		}
		s.events = append([]event(nil), s.events[n:]...)
		s.firstRev += n
	}
	return nil
}

// Watch implements storage.Interface.
func (s *Store) Watch(ctx context.Context, prefix string, opts storage.WatchOptions) (watch.Interface, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cursor := opts.Revision
	if cursor == 0 {
		cursor = s.visible
	}
	if cursor < s.compactRev {
		e := storage.NewError(storage.ErrCodeExpired, "", s.compactRev, "%d (%d)", cursor, s.compactRev)
		e.Requested = cursor
		return nil, e
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{
		store:  s,
		prefix: prefix,
		pred:   opts.Predicate,
		opts:   opts,
		cursor: cursor,
		result: make(chan watch.Event, 100),
		cancel: cancel,
	}
	w.pos.Store(cursor)
	s.waitMu.Lock()
	s.watchers[w] = struct{}{}
	s.waitMu.Unlock()
	go w.run(ctx)
	return w, nil
}

type watcher struct {
	store  *Store
	prefix string
	pred   storage.Predicate
	buf    []event              // the events next read, the watcher's own copy
	opts   storage.WatchOptions // for its Transform
	cursor int64                // the last revision looked at
	// pos is the last revision the watcher has read from the log, set
	// with the store's lock held; MaxInt64 while it waits.
	pos    atomic.Int64
	result chan watch.Event
	cancel context.CancelFunc
}

// SharesObjects reports that the objects List and watches return are the
// stored objects themselves, shared among readers and never written:
// what is derived from one (an encoding) holds for as long as it lives.
func (s *Store) SharesObjects() bool { return true }

func (w *watcher) Stop()                          { w.cancel() }
func (w *watcher) ResultChan() <-chan watch.Event { return w.result }

// next returns the events after the cursor, or, once the watcher has read
// every event, the waiter of its prefix to wait on.
func (w *watcher) next() ([]event, *waiter, error) {
	s := w.store
	s.mu.RLock()
	defer s.mu.RUnlock()
	if w.cursor < s.compactRev {
		return nil, nil, storage.NewError(storage.ErrCodeExpired, "", s.compactRev, "%d (%d)", w.cursor, s.compactRev)
	}
	i := w.cursor + 1 - s.firstRev
	if i < 0 {
		i = 0
	}
	if i >= s.visible+1-s.firstRev {
		// The events read last hold no objects while the watcher waits,
		// and it holds no freezing back.
		clear(w.buf)
		w.buf = w.buf[:0]
		w.pos.Store(math.MaxInt64)
		// No write can come between the read of the log and the waiter's
		// registration: writes hold mu.
		s.waitMu.Lock()
		wt := s.waiters[w.prefix]
		if wt == nil {
			wt = &waiter{ch: make(chan struct{})}
			s.waiters[w.prefix] = wt
		}
		wt.waiting++
		s.waitMu.Unlock()
		return nil, wt, nil
	}
	evs := s.events[i : s.visible+1-s.firstRev]
	if len(evs) > 1000 {
		evs = evs[:1000]
	}
	// A copy: events are frozen in place (Store.freeze), and the watcher
	// reads them after the lock.
	w.buf = append(w.buf[:0], evs...)
	for k := range w.buf {
		// Only the watcher's own keys: a watch that resumes reads the
		// other keys' events only to pass them.
		if w.buf[k].frozen && strings.HasPrefix(w.buf[k].key, w.prefix) {
			if err := s.thaw(&w.buf[k]); err != nil {
				return nil, nil, err
			}
		}
	}
	w.pos.Store(w.buf[len(w.buf)-1].rev)
	return w.buf, nil, nil
}

// stopWaiting removes a watcher that stops from its prefix's waiter.
func (w *watcher) stopWaiting(wt *waiter) {
	s := w.store
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	if s.waiters[w.prefix] == wt {
		if wt.waiting--; wt.waiting == 0 {
			delete(s.waiters, w.prefix)
		}
	}
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.result)
	defer func() {
		w.store.waitMu.Lock()
		delete(w.store.watchers, w)
		w.store.waitMu.Unlock()
	}()
	for {
		evs, wt, err := w.next()
		if err != nil {
			var se *storage.Error
			errors.As(err, &se)
			w.deliver(ctx, watch.Event{Type: watch.Error, Object: &storage.WatchError{Err: se}})
			return
		}
		if wt != nil {
			if w.store.waited != nil {
				w.store.waited <- w.prefix
			}
			select {
			case <-wt.ch:
				// Nothing before wt.rev is the prefix's: the watcher
				// reads on from there (and an idle watcher is not
				// expired by the compaction of other keys' writes).
				w.cursor = max(w.cursor, wt.rev-1)
				continue
			case <-ctx.Done():
				w.stopWaiting(wt)
				return
			}
		}
		for _, e := range evs {
			w.cursor = e.rev
			out, ok, err := w.filter(e)
			if err != nil {
				utilErr := storage.NewError(storage.ErrCodeInvalidArgument, e.key, e.rev, "predicate: %v", err)
				w.deliver(ctx, watch.Event{Type: watch.Error, Object: &storage.WatchError{Err: utilErr}})
				return
			}
			if ok && !w.deliver(ctx, out) {
				return
			}
		}
	}
}

// deliver sends what the watch's options make of e; false when the watch
// ends.
func (w *watcher) deliver(ctx context.Context, e watch.Event) bool {
	return w.opts.Deliver(ctx, w.result, e)
}

// filter filters an event through the prefix and predicate.
func (w *watcher) filter(e event) (watch.Event, bool, error) {
	if !strings.HasPrefix(e.key, w.prefix) {
		return watch.Event{}, false, nil
	}
	// Event objects are shared, read-only (see storage.Interface).
	if w.pred == nil {
		return watch.Event{Type: e.typ, Object: e.obj}, true, nil
	}
	cur, prev := false, false
	var err error
	if e.typ != watch.Deleted {
		if cur, err = w.pred(e.obj); err != nil {
			return watch.Event{}, false, err
		}
	}
	if e.prev != nil {
		if prev, err = w.pred(e.prev); err != nil {
			return watch.Event{}, false, err
		}
	}
	switch {
	case cur && prev:
		return watch.Event{Type: watch.Modified, Object: e.obj}, true, nil
	case cur:
		return watch.Event{Type: watch.Added, Object: e.obj}, true, nil
	case prev && e.typ == watch.Deleted:
		return watch.Event{Type: watch.Deleted, Object: e.obj}, true, nil
	case prev:
		// It stopped matching: DELETED, with its new state.
		// kube-apiserver sends the state that matched, at the change's
		// revision; the in-process informers' interning (package sim)
		// identifies an object's content by its uid and revision, so a
		// second state at one revision would need that changed first.
		return watch.Event{Type: watch.Deleted, Object: e.obj}, true, nil
	}
	return watch.Event{}, false, nil
}
