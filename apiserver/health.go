package apiserver

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"
	"k8s.io/apiserver/pkg/server/healthz"
)

// postStartHooks are kube-apiserver's post-start hooks, in the order in
// which its /livez, /readyz and /healthz list them (v1.37, default flags).
// Each has a check "poststarthook/NAME" that fails until the hook is done.
// kubesim does the equivalent work (admission, informers, CRDs, the
// bootstrap policy and priority classes, the kubernetes Service and its
// ServiceCIDR, ...) before it reports ready, or has no such component, so
// all of them pass once the server is ready: a script that waits for
// `[+]poststarthook/rbac/bootstrap-roles ok` waits as long as it must.
var postStartHooks = []string{
	"start-apiserver-admission-initializer",
	"generic-apiserver-start-informers",
	"priority-and-fairness-config-consumer",
	"priority-and-fairness-filter",
	"storage-object-count-tracker-hook",
	"start-apiextensions-informers",
	"start-apiextensions-controllers",
	"crd-informer-synced",
	"start-system-namespaces-controller",
	"peer-endpoint-reconciler-controller",
	"start-cluster-authentication-info-controller",
	"start-kube-apiserver-identity-lease-controller",
	"start-kube-apiserver-identity-lease-garbage-collector",
	"storage-readiness",
	"start-legacy-token-tracking-controller",
	"start-service-ip-repair-controllers",
	"rbac/bootstrap-roles",
	"scheduling/bootstrap-system-priority-classes",
	"priority-and-fairness-config-producer",
	"bootstrap-controller",
	"start-kubernetes-service-cidr-controller",
	"start-kube-aggregator-informers",
	"apiservice-status-local-available-controller",
	"apiservice-status-remote-available-controller",
	"apiservice-registration-controller",
	"apiservice-discovery-controller",
	"kube-apiserver-autoregistration",
	// Then autoregister-completion, a check of its own, and the last two.
	"apiservice-openapi-controller",
	"apiservice-openapiv3-controller",
}

// installHealth serves /livez, /readyz and /healthz with kube-apiserver's
// handler (k8s.io/apiserver/pkg/server/healthz) and its checks, by the same
// names and in the same order: `?verbose` lists them and ends in "livez
// check passed", `?exclude=NAME` skips one, /livez/NAME runs one, and a
// failing check answers 500.
func (s *Server) installHealth(r *mux.Router) {
	started := func(*http.Request) error {
		select {
		case <-s.ready:
			return nil
		default:
			return errors.New("not finished")
		}
	}
	// The memory store (and so "etcd") is there from the start.
	storage := func(*http.Request) error { return nil }
	hooks := make([]healthz.HealthChecker, 0, len(postStartHooks)+1)
	for _, name := range postStartHooks {
		if name == "apiservice-openapi-controller" {
			hooks = append(hooks, healthz.NamedCheck("autoregister-completion", started))
		}
		hooks = append(hooks, healthz.NamedCheck("poststarthook/"+name, started))
	}
	live := append([]healthz.HealthChecker{
		healthz.PingHealthz,
		healthz.LogHealthz,
		healthz.NamedCheck("loopback-serving-certificate", started),
		healthz.NamedCheck("etcd", storage),
	}, hooks...)
	ready := append(append([]healthz.HealthChecker{
		healthz.PingHealthz,
		healthz.LogHealthz,
		healthz.NamedCheck("etcd", storage),
		healthz.NamedCheck("etcd-readiness", storage),
		healthz.NewInformerSyncHealthz(s.informers),
	}, hooks...),
		// Fails once the server is shutting down, as kube-apiserver's
		// readiness does during its graceful termination.
		healthz.NewShutdownHealthz(s.lifetime.Done()))
	m := exactPaths{}
	healthz.InstallPathHandler(m, "/healthz", live...)
	healthz.InstallPathHandler(m, "/livez", live...)
	healthz.InstallPathHandler(m, "/readyz", ready...)
	m.install(r)
}

// exactPaths serves handlers of exact paths from one gorilla/mux route.
// healthz registers a path for each check (/readyz/etcd, ...): as routes of
// their own, those were some 60 regular expressions compiled at each start.
type exactPaths map[string]http.Handler

// Handle registers h for path alone.
func (e exactPaths) Handle(path string, h http.Handler) { e[path] = h }

// install adds e's route to r, where its paths' routes would have been.
// gorilla/mux matches a path template against the request's cleaned path,
// as e's lookup does.
func (e exactPaths) install(r *mux.Router) {
	r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
		_, ok := e[req.URL.Path]
		return ok
	}).Handler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		e[req.URL.Path].ServeHTTP(w, req)
	}))
}
