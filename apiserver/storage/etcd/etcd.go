package etcd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/storage/etcd3"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/encoding"
)

// Config configures a Store.
type Config struct {
	// Client reaches etcd. Required (NewClient builds one).
	Client *clientv3.Client
	// Prefix is the key prefix, as kube-apiserver's --etcd-prefix.
	// Default: /registry.
	Prefix string
	// Codec encodes objects. Default: encoding.NewCodec().
	Codec *encoding.Codec
	// CompactionInterval is how often Start compacts etcd, as
	// kube-apiserver's --etcd-compaction-interval; 0 or negative: never.
	// Default (see Defaults): 5m.
	CompactionInterval time.Duration
	// FutureRevisionWait bounds how long a read waits for a revision etcd
	// has not reached yet. Default: 3s.
	FutureRevisionWait time.Duration
	// RequestTimeout bounds a storage call whose context has no deadline,
	// as kube-apiserver's --request-timeout bounds requests. Default: 60s.
	RequestTimeout time.Duration
	// Clock paces compaction and waits. Default: the real clock.
	Clock clock.WithTicker
}

// DefaultCompactionInterval is kube-apiserver's --etcd-compaction-interval.
const DefaultCompactionInterval = 5 * time.Minute

// Store is the etcd storage.Interface.
type Store struct {
	cfg    Config
	client *clientv3.Client
	codec  *encoding.Codec
	prefix string
	// compactor is kube-apiserver's, while Start runs.
	compactRev func() int64
}

var _ storage.Interface = (*Store)(nil)

// New validates and defaults cfg and returns a Store.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("unable to create the etcd store: Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "/registry"
	}
	if !strings.HasPrefix(cfg.Prefix, "/") {
		cfg.Prefix = "/" + cfg.Prefix
	}
	cfg.Prefix = strings.TrimSuffix(cfg.Prefix, "/")
	if cfg.FutureRevisionWait == 0 {
		cfg.FutureRevisionWait = 3 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	codec := cfg.Codec
	if codec == nil {
		var err error
		if codec, err = encoding.NewCodec(); err != nil {
			return nil, err
		}
	}
	return &Store{cfg: cfg, client: cfg.Client, codec: codec, prefix: cfg.Prefix, compactRev: func() int64 { return 0 }}, nil
}

// Start runs kube-apiserver's compactor until ctx is done.
func (s *Store) Start(ctx context.Context) error {
	if s.cfg.CompactionInterval <= 0 {
		<-ctx.Done()
		return nil
	}
	c := etcd3.NewCompactor(s.client, s.cfg.CompactionInterval, s.cfg.Clock, nil)
	s.compactRev = c.CompactRevision
	<-ctx.Done()
	c.Stop()
	return nil
}

// etcdKey maps a kubesim key (or key prefix) to kube-apiserver's.
func (s *Store) etcdKey(key string) (string, error) {
	k, err := s.codec.EtcdKey(key)
	if err != nil {
		return "", storage.NewError(storage.ErrCodeInvalidArgument, key, 0, "%v", err)
	}
	return s.prefix + k, nil
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// encode returns obj's bytes as kube-apiserver stores them: without a
// resourceVersion.
func (s *Store) encode(key string, obj runtime.Object) ([]byte, error) {
	c := obj.DeepCopyObject()
	a, err := meta.Accessor(c)
	if err != nil {
		return nil, storage.NewError(storage.ErrCodeInvalidArgument, key, 0, "object has no metadata: %v", err)
	}
	a.SetResourceVersion("")
	data, err := s.codec.Encode(key, c)
	if err != nil {
		return nil, storage.NewError(storage.ErrCodeInvalidArgument, key, 0, "%v", err)
	}
	return data, nil
}

// decode returns the object of kv, stored under key, at rev.
func (s *Store) decode(key string, value []byte, rev int64) (runtime.Object, error) {
	obj, err := s.codec.Decode(key, value)
	if err != nil {
		return nil, err
	}
	if err := setRevision(obj, rev); err != nil {
		return nil, err
	}
	return obj, nil
}

func setRevision(obj runtime.Object, rev int64) error {
	a, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	a.SetResourceVersion(strconv.FormatInt(rev, 10))
	return nil
}

// withRevision returns a copy of obj at rev.
func withRevision(obj runtime.Object, rev int64) (runtime.Object, error) {
	out := obj.DeepCopyObject()
	return out, setRevision(out, rev)
}

// Create implements storage.Interface.
func (s *Store) Create(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
	ek, err := s.etcdKey(key)
	if err != nil {
		return nil, err
	}
	data, err := s.encode(key, obj)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(ek), "=", 0)).
		Then(clientv3.OpPut(ek, string(data))).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, storage.NewError(storage.ErrCodeKeyExists, key, 0, "")
	}
	return withRevision(obj, resp.Header.Revision)
}

// Get implements storage.Interface.
func (s *Store) Get(ctx context.Context, key string, opts storage.GetOptions) (runtime.Object, error) {
	ek, err := s.etcdKey(key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.getAtLeast(ctx, opts.MinRevision, func() (*clientv3.GetResponse, error) { return s.client.Get(ctx, ek) })
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, storage.NewError(storage.ErrCodeNotFound, key, 0, "")
	}
	kv := resp.Kvs[0]
	return s.decode(key, kv.Value, kv.ModRevision)
}

// getAtLeast reads until etcd has reached rev, bounded by
// FutureRevisionWait. A linearizable read is at the latest revision: one
// ahead of it is one nobody has been told of yet.
func (s *Store) getAtLeast(ctx context.Context, rev int64, get func() (*clientv3.GetResponse, error)) (*clientv3.GetResponse, error) {
	deadline := s.cfg.Clock.Now().Add(s.cfg.FutureRevisionWait)
	for {
		resp, err := get()
		if err != nil {
			return nil, err
		}
		if rev <= resp.Header.Revision {
			return resp, nil
		}
		if !s.cfg.Clock.Now().Before(deadline) {
			e := storage.NewError(storage.ErrCodeTooLargeRevision, "", resp.Header.Revision, "requested %d", rev)
			e.Requested = rev
			return nil, e
		}
		select {
		case <-s.cfg.Clock.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// conditional returns the comparison of a write: the key exists, at
// expected when it is non-zero.
func conditional(ek string, expected int64) clientv3.Cmp {
	if expected != 0 {
		return clientv3.Compare(clientv3.ModRevision(ek), "=", expected)
	}
	return clientv3.Compare(clientv3.CreateRevision(ek), ">", 0)
}

// failedWrite is the error of a conditional write that did not apply,
// from the key's state read in the same transaction.
func failedWrite(key string, expected int64, resp *clientv3.TxnResponse) error {
	var kvs []*mvccpb.KeyValue
	if len(resp.Responses) > 0 {
		if r := resp.Responses[0].GetResponseRange(); r != nil {
			kvs = r.Kvs
		}
	}
	if len(kvs) == 0 {
		return storage.NewError(storage.ErrCodeNotFound, key, 0, "")
	}
	return storage.NewError(storage.ErrCodeConflict, key, kvs[0].ModRevision, "expected revision %d", expected)
}

// Update implements storage.Interface.
func (s *Store) Update(ctx context.Context, key string, obj runtime.Object, opts storage.UpdateOptions) (runtime.Object, error) {
	ek, err := s.etcdKey(key)
	if err != nil {
		return nil, err
	}
	data, err := s.encode(key, obj)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.client.Txn(ctx).If(conditional(ek, opts.ExpectedRevision)).
		Then(clientv3.OpPut(ek, string(data))).Else(clientv3.OpGet(ek)).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, failedWrite(key, opts.ExpectedRevision, resp)
	}
	return withRevision(obj, resp.Header.Revision)
}

// Delete implements storage.Interface.
func (s *Store) Delete(ctx context.Context, key string, opts storage.DeleteOptions) (runtime.Object, error) {
	ek, err := s.etcdKey(key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.client.Txn(ctx).If(conditional(ek, opts.ExpectedRevision)).
		Then(clientv3.OpDelete(ek, clientv3.WithPrevKV())).Else(clientv3.OpGet(ek)).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, failedWrite(key, opts.ExpectedRevision, resp)
	}
	del := resp.Responses[0].GetResponseDeleteRange()
	if del == nil || len(del.PrevKvs) == 0 {
		// Deleted between the comparison and the deletion: impossible in
		// one transaction, but never return nothing.
		return nil, storage.NewError(storage.ErrCodeNotFound, key, 0, "")
	}
	return s.decode(key, del.PrevKvs[0].Value, resp.Header.Revision)
}

// expired is the error of a read at a compacted revision.
func (s *Store) expired(rev int64) error {
	compacted := s.compactRev()
	e := storage.NewError(storage.ErrCodeExpired, "", compacted, "%d (%d)", rev, compacted)
	e.Requested = rev
	return e
}

// List implements storage.Interface.
func (s *Store) List(ctx context.Context, prefix string, opts storage.ListOptions) (*storage.ListResult, error) {
	if opts.StartKey != "" && !strings.HasPrefix(opts.StartKey, prefix) {
		return nil, storage.NewError(storage.ErrCodeInvalidArgument, opts.StartKey, 0, "start key is not under prefix %q", prefix)
	}
	ep, err := s.etcdKey(prefix)
	if err != nil {
		return nil, err
	}
	start := ep
	if opts.StartKey != "" {
		if start, err = s.etcdKey(opts.StartKey); err != nil {
			return nil, err
		}
	}
	end := clientv3.GetPrefixRangeEnd(ep)
	ctx, cancel := s.ctx(ctx)
	defer cancel()

	var rev int64
	switch opts.Match {
	case storage.MatchExact:
		if opts.Revision <= 0 {
			return nil, storage.NewError(storage.ErrCodeInvalidArgument, "", opts.Revision, "an exact read needs a revision")
		}
		rev = opts.Revision
	case storage.MatchNotOlderThan:
		resp, err := s.getAtLeast(ctx, opts.Revision, func() (*clientv3.GetResponse, error) {
			return s.client.Get(ctx, ep, clientv3.WithRange(end), clientv3.WithCountOnly())
		})
		if err != nil {
			return nil, err
		}
		rev = resp.Header.Revision
	}
	res := &storage.ListResult{}
	var lastKey string
	// Pages of at most pageSize keys; a page ahead of the limit tells
	// whether there is more.
	pageSize := int64(0)
	if opts.Limit > 0 {
		pageSize = opts.Limit + 1
		if opts.Predicate != nil {
			pageSize = max(pageSize, 500)
		}
	}
	for {
		ops := []clientv3.OpOption{clientv3.WithRange(end)}
		if rev > 0 {
			ops = append(ops, clientv3.WithRev(rev))
		}
		if pageSize > 0 {
			ops = append(ops, clientv3.WithLimit(pageSize))
		}
		resp, err := s.client.Get(ctx, start, ops...)
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return nil, s.expired(rev)
			}
			if exact := opts.Match == storage.MatchExact; exact && errors.Is(err, rpctypes.ErrFutureRev) {
				e := storage.NewError(storage.ErrCodeTooLargeRevision, "", 0, "requested %d", rev)
				e.Requested = rev
				return nil, e
			}
			return nil, err
		}
		if rev > resp.Header.Revision {
			e := storage.NewError(storage.ErrCodeTooLargeRevision, "", resp.Header.Revision, "requested %d", rev)
			e.Requested = rev
			return nil, e
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		res.Revision = rev
		for i, kv := range resp.Kvs {
			key := prefix + strings.TrimPrefix(string(kv.Key), ep)
			if opts.Limit > 0 && int64(len(res.Items)) == opts.Limit {
				res.NextKey, res.LastKey = key, lastKey
				if opts.Predicate == nil {
					// resp.Count counts the keys from start on.
					remaining := resp.Count - int64(i)
					res.RemainingItemCount = &remaining
				}
				return res, nil
			}
			obj, err := s.decode(key, kv.Value, kv.ModRevision)
			if err != nil {
				return nil, err
			}
			if opts.Predicate != nil {
				ok, err := opts.Predicate(obj)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
			}
			res.Items = append(res.Items, obj)
			lastKey = key
		}
		if !resp.More || pageSize == 0 || len(resp.Kvs) == 0 {
			return res, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// CurrentRevision implements storage.Interface: etcd's revision, read
// linearizably.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.client.Get(ctx, s.prefix+"/", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// Compact implements storage.Interface, as kube-apiserver's compactor
// compacts: it records the revision in the compact key and compacts etcd,
// once for every API server.
func (s *Store) Compact(ctx context.Context, revision int64) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.client.Get(ctx, "compact_rev_key")
	if err != nil {
		return err
	}
	var version int64
	if len(resp.Kvs) > 0 {
		version = resp.Kvs[0].Version
	}
	_, _, _, err = etcd3.Compact(ctx, s.client, version, revision)
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return err
	}
	return nil
}

// Watch implements storage.Interface.
func (s *Store) Watch(ctx context.Context, prefix string, opts storage.WatchOptions) (watch.Interface, error) {
	ep, err := s.etcdKey(prefix)
	if err != nil {
		return nil, err
	}
	from := opts.Revision
	if from == 0 {
		if from, err = s.CurrentRevision(ctx); err != nil {
			return nil, err
		}
	} else {
		// A compacted revision fails here, as the memory store's watch
		// does, rather than in the first event.
		rctx, cancel := s.ctx(ctx)
		_, err := s.client.Get(rctx, ep, clientv3.WithRev(from), clientv3.WithCountOnly())
		cancel()
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil, s.expired(from)
		}
		if err != nil && !errors.Is(err, rpctypes.ErrFutureRev) {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{store: s, prefix: prefix, etcdPrefix: ep, pred: opts.Predicate, opts: opts, result: make(chan watch.Event, 100), cancel: cancel}
	wch := s.client.Watch(clientv3.WithRequireLeader(ctx), ep, clientv3.WithPrefix(), clientv3.WithRev(from+1),
		clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	go w.run(ctx, wch)
	return w, nil
}

type watcher struct {
	store              *Store
	prefix, etcdPrefix string
	pred               storage.Predicate
	opts               storage.WatchOptions // for its Transform
	result             chan watch.Event
	cancel             context.CancelFunc
}

func (w *watcher) Stop()                          { w.cancel() }
func (w *watcher) ResultChan() <-chan watch.Event { return w.result }

// send sends what the watch's options make of e; false when the watch
// ends.
func (w *watcher) send(ctx context.Context, e watch.Event) bool {
	return w.opts.Deliver(ctx, w.result, e)
}

func (w *watcher) fail(ctx context.Context, err *storage.Error) {
	w.send(ctx, watch.Event{Type: watch.Error, Object: &storage.WatchError{Err: err}})
}

func (w *watcher) run(ctx context.Context, wch clientv3.WatchChan) {
	defer close(w.result)
	defer w.cancel()
	logger := klog.FromContext(ctx)
	for resp := range wch {
		if resp.CompactRevision != 0 {
			e := storage.NewError(storage.ErrCodeExpired, "", resp.CompactRevision, "(%d)", resp.CompactRevision)
			w.fail(ctx, e)
			return
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				logger.V(2).Info("etcd watch ended", "prefix", w.etcdPrefix, "err", err)
				// The client re-lists, as after kube-apiserver's watch
				// errors.
				w.fail(ctx, storage.NewError(storage.ErrCodeInvalidArgument, "", 0, "etcd watch: %v", err))
			}
			return
		}
		if resp.IsProgressNotify() {
			if !w.send(ctx, watch.Event{Type: watch.Bookmark, Object: &storage.Progress{Revision: resp.Header.Revision}}) {
				return
			}
			continue
		}
		for _, ev := range resp.Events {
			out, ok, err := w.transform(ev)
			if err != nil {
				w.fail(ctx, storage.NewError(storage.ErrCodeInvalidArgument, string(ev.Kv.Key), ev.Kv.ModRevision, "%v", err))
				return
			}
			if ok && !w.send(ctx, out) {
				return
			}
		}
	}
}

// transform decodes an etcd event and filters it through the predicate:
// an object that starts matching is ADDED, one that stops is DELETED.
func (w *watcher) transform(ev *clientv3.Event) (watch.Event, bool, error) {
	key := w.prefix + strings.TrimPrefix(string(ev.Kv.Key), w.etcdPrefix)
	var cur, prev runtime.Object
	var err error
	if ev.Type == clientv3.EventTypePut {
		if cur, err = w.store.decode(key, ev.Kv.Value, ev.Kv.ModRevision); err != nil {
			return watch.Event{}, false, err
		}
	}
	if ev.PrevKv != nil {
		// The previous state; a deletion's event carries it at the
		// deletion's revision.
		rev := ev.PrevKv.ModRevision
		if ev.Type == clientv3.EventTypeDelete {
			rev = ev.Kv.ModRevision
		}
		if prev, err = w.store.decode(key, ev.PrevKv.Value, rev); err != nil {
			return watch.Event{}, false, err
		}
	}
	if ev.Type == clientv3.EventTypeDelete && prev == nil {
		return watch.Event{}, false, nil // no last state: nothing to show
	}
	curOK, prevOK := cur != nil, prev != nil
	if w.pred != nil {
		if cur != nil {
			if curOK, err = w.pred(cur); err != nil {
				return watch.Event{}, false, err
			}
		}
		if prev != nil {
			if prevOK, err = w.pred(prev); err != nil {
				return watch.Event{}, false, err
			}
		}
	}
	switch {
	case ev.Type == clientv3.EventTypeDelete:
		if !prevOK {
			return watch.Event{}, false, nil
		}
		return watch.Event{Type: watch.Deleted, Object: prev}, true, nil
	case curOK && prevOK:
		return watch.Event{Type: watch.Modified, Object: cur}, true, nil
	case curOK:
		return watch.Event{Type: watch.Added, Object: cur}, true, nil
	case prevOK:
		// It stopped matching: DELETED with its new state, as the memory
		// store sends it (see there).
		return watch.Event{Type: watch.Deleted, Object: cur}, true, nil
	}
	return watch.Event{}, false, nil
}

// ClientConfig says how to reach etcd, as kube-apiserver's --etcd-* flags.
type ClientConfig struct {
	// Servers are the client URLs (--etcd-servers). Required.
	Servers []string
	// CAFile, CertFile and KeyFile secure the connection (--etcd-cafile,
	// --etcd-certfile, --etcd-keyfile). Default: none.
	CAFile, CertFile, KeyFile string
	// DialTimeout bounds connecting. Default: 20s, as kube-apiserver's.
	DialTimeout time.Duration
}

// NewClient returns an etcd client for cfg.
func NewClient(cfg ClientConfig) (*clientv3.Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("unable to reach etcd: no servers given (--etcd-servers)")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 20 * time.Second
	}
	c := clientv3.Config{
		Endpoints:            cfg.Servers,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		Logger:               zap.NewNop(),
	}
	if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" {
		info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
		tlsConfig, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("unable to load the etcd client's TLS files: %w", err)
		}
		c.TLS = tlsConfig
	}
	client, err := clientv3.New(c)
	if err != nil {
		return nil, fmt.Errorf("unable to create the etcd client for %v: %w", cfg.Servers, err)
	}
	return client, nil
}
