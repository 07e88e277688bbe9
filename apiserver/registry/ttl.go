package registry

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// expiry removes a store's objects a time after their last write, as
// kube-apiserver gives Events an etcd lease of --event-ttl renewed by
// every write: the object goes, and watchers see it deleted.
type expiry struct {
	ttl time.Duration
	mu  sync.Mutex
	// due holds, by key, when an object expires and the revision that
	// set it: a later write moves it.
	due map[string]expiring
}

type expiring struct {
	at  time.Time
	rev int64
}

// track records a write of obj under key.
func (s *Store) track(key string, obj runtime.Object) {
	if s.expiry == nil || obj == nil {
		return
	}
	rev, err := resourceVersion(obj)
	if err != nil {
		return
	}
	at := s.cfg.Clock.Now().Add(s.expiry.ttl)
	s.expiry.mu.Lock()
	s.expiry.due[key] = expiring{at: at, rev: rev}
	s.expiry.mu.Unlock()
}

// expire deletes the objects whose time is up, unless they changed since
// (their new write set a later time). It returns how many it deleted.
func (s *Store) expire(ctx context.Context) int {
	if s.expiry == nil {
		return 0
	}
	now := s.cfg.Clock.Now()
	var keys []string
	var revs []int64
	s.expiry.mu.Lock()
	for key, e := range s.expiry.due {
		if !now.Before(e.at) {
			keys = append(keys, key)
			revs = append(revs, e.rev)
		}
	}
	s.expiry.mu.Unlock()
	deleted := 0
	for i, key := range keys {
		_, err := s.removeAt(ctx, key, revs[i])
		switch {
		case err == nil:
			deleted++
		case isCode(err, storage.ErrCodeConflict):
			continue // written since: its entry has moved on
		case !isCode(err, storage.ErrCodeNotFound):
			klog.FromContext(ctx).Error(err, "Unable to delete an expired object", "key", key)
			continue
		}
		s.expiry.mu.Lock()
		if e, ok := s.expiry.due[key]; ok && e.rev == revs[i] {
			delete(s.expiry.due, key)
		}
		s.expiry.mu.Unlock()
	}
	return deleted
}

// RunExpiry deletes expired objects (Events after their TTL) until ctx is
// done, checking every tenth of the shortest TTL, within 1s to 1m.
func (r *Registry) RunExpiry(ctx context.Context) {
	var stores []*Store
	period := time.Minute
	for _, s := range r.Stores {
		if s.expiry != nil {
			stores = append(stores, s)
			period = min(period, max(s.expiry.ttl/10, time.Second))
		}
	}
	if len(stores) == 0 {
		return
	}
	t := r.clock.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			for _, s := range stores {
				if n := s.expire(ctx); n > 0 {
					klog.FromContext(ctx).V(4).Info("Deleted expired objects", "resource", s.cfg.Resource, "count", n)
				}
			}
		}
	}
}
