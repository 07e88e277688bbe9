package apiserver

import (
	"net/http"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/endpoints/metrics"
	"k8s.io/apiserver/pkg/endpoints/request"
	genericstorage "k8s.io/apiserver/pkg/storage"
	etcd3metrics "k8s.io/apiserver/pkg/storage/etcd3/metrics"
	flowcontrolmetrics "k8s.io/apiserver/pkg/util/flowcontrol/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/apiserver/registry"
)

var registerMetrics sync.Once

// metricsHandler serves /metrics in the Prometheus text format from the
// registry kube-apiserver uses (k8s.io/component-base legacyregistry): the
// request metrics of k8s.io/apiserver's endpoints (apiserver_request_total,
// apiserver_request_duration_seconds, ...) and the stored object counts
// (apiserver_storage_objects, apiserver_resource_objects), counted when
// scraped rather than on kube-apiserver's one-minute poll.
func metricsHandler(reg *registry.Registry) http.Handler {
	registerMetrics.Do(func() {
		metrics.Register()
		etcd3metrics.Register()
		// API Priority and Fairness's (apiserver_flowcontrol_*), as
		// kube-apiserver's /metrics registers them.
		flowcontrolmetrics.Register()
	})
	h := legacyregistry.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		for gr, st := range reg.Stores {
			n, err := st.Count(req.Context())
			if err != nil {
				klog.FromContext(req.Context()).Error(err, "Counting stored objects", "resource", gr)
			}
			etcd3metrics.UpdateStoreStats(gr, genericstorage.Stats{ObjectCount: n}, err)
		}
		h.ServeHTTP(w, req)
	})
}

// instrument records a resource request in the request metrics as
// kube-apiserver's installer does for the route of the given verb (GET,
// LIST, WATCH, WATCHLIST, POST, PUT, PATCH, DELETE, DELETECOLLECTION).
func instrument(action string, gvr schema.GroupVersionResource, subresource string, deprecated bool, removedRelease string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		scope := ""
		if info, ok := request.RequestInfoFrom(req.Context()); ok {
			scope = metrics.CleanScope(info)
		}
		metrics.InstrumentHandlerFunc(action, gvr.Group, gvr.Version, gvr.Resource, subresource, scope, metrics.APIServerComponent, deprecated, removedRelease, h)(w, req)
	}
}
