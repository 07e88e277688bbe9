package registry

import (
	"context"
	"sort"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// Purge deletes, straight from storage, every object of the store that
// keep does not keep: no strategy, admission, grace period or finalizer,
// as wiping etcd keys would (watchers see them deleted; a Service's IPs
// and ports are released). It returns how many objects it deleted.
func (s *Store) Purge(ctx context.Context, keep func(namespace, name string) bool) (int, error) {
	res, err := s.cfg.Storage.List(ctx, s.prefix, storage.ListOptions{})
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, obj := range res.Items {
		a, err := meta.Accessor(obj)
		if err != nil {
			return deleted, err
		}
		if keep(a.GetNamespace(), a.GetName()) {
			continue
		}
		key := s.prefix + a.GetName()
		if s.cfg.Namespaced {
			key = s.prefix + a.GetNamespace() + "/" + a.GetName()
		}
		_, err = s.removeAt(ctx, key, 0)
		if err != nil && !isCode(err, storage.ErrCodeNotFound) {
			return deleted, err
		}
		if err == nil {
			deleted++
		}
	}
	return deleted, nil
}

// Purge purges every store of the registry (see Store.Purge), the
// namespaces first, so that nothing more is created in the namespaces
// whose objects go.
func (r *Registry) Purge(ctx context.Context, keep func(gr schema.GroupResource, namespace, name string) bool) (int, error) {
	resources := make([]schema.GroupResource, 0, len(r.Stores))
	for gr := range r.Stores {
		resources = append(resources, gr)
	}
	namespaces := schema.GroupResource{Resource: "namespaces"}
	sort.Slice(resources, func(i, j int) bool {
		if (resources[i] == namespaces) != (resources[j] == namespaces) {
			return resources[i] == namespaces
		}
		return resources[i].String() < resources[j].String()
	})
	total := 0
	for _, gr := range resources {
		n, err := r.Stores[gr].Purge(ctx, func(namespace, name string) bool { return keep(gr, namespace, name) })
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
