package apiserver

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericfeatures "k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	utilflowcontrol "k8s.io/apiserver/pkg/util/flowcontrol"
	apiserverproxyutil "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/transport"
	"k8s.io/klog/v2"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	apiregistrationv1helper "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1/helper"
	"k8s.io/kube-aggregator/pkg/controllers/status/remote"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"k8s.io/streaming/pkg/httpstream"
)

// proxyHandler proxies the requests of one APIService backed by a Service
// to it, as kube-aggregator's proxyHandler (pkg/apiserver/handler_proxy.go,
// unexported there) does, with its building blocks: the transport of
// remote.BuildTransportConfig (the APIService's CA bundle, the front proxy
// client certificate, ServerName SERVICE.NAMESPACE.svc), the requesting
// user in X-Remote-* headers, the upgrade-aware proxy, and 503 while the
// APIService is not Available.
type proxyHandler struct {
	resolver interface {
		ResolveEndpoint(namespace, name string, port int32) (*url.URL, error)
	}
	dial     *transport.DialHolder
	certKey  func() ([]byte, []byte)
	handling atomic.Value // proxyHandlingInfo
}

type proxyHandlingInfo struct {
	roundTripper     http.RoundTripper
	transportErr     error
	namespace, name  string
	port             int32
	serviceAvailable bool
}

func (p *proxyHandler) update(apiService *apiregistrationv1.APIService) {
	cert, key := p.certKey()
	cfg := remote.BuildTransportConfig(p.dial, cert, key, apiService)
	info := proxyHandlingInfo{
		namespace: apiService.Spec.Service.Namespace, name: apiService.Spec.Service.Name, port: *apiService.Spec.Service.Port,
		serviceAvailable: apiregistrationv1helper.IsAPIServiceConditionTrue(apiService, apiregistrationv1.Available),
	}
	info.roundTripper, info.transportErr = transport.New(cfg)
	p.handling.Store(info)
}

func (p *proxyHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	info := p.handling.Load().(proxyHandlingInfo)
	if !info.serviceAvailable {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	if info.transportErr != nil {
		http.Error(w, info.transportErr.Error(), http.StatusInternalServerError)
		return
	}
	user, ok := genericapirequest.UserFrom(req.Context())
	if !ok {
		http.Error(w, "missing user", http.StatusInternalServerError)
		return
	}
	rloc, err := p.resolver.ResolveEndpoint(info.namespace, info.name, info.port)
	if err != nil {
		klog.FromContext(req.Context()).Error(err, "Resolving an APIService's Service", "service", info.namespace+"/"+info.name)
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	location := &url.URL{Scheme: "https", Host: rloc.Host, Path: req.URL.Path, RawQuery: req.URL.Query().Encode()}
	newReq, cancel := apiserverproxyutil.NewRequestForProxy(location, req)
	defer cancel()
	upgrade := httpstream.IsUpgradeRequest(req)
	var uid string
	if utilfeature.DefaultFeatureGate.Enabled(genericfeatures.RemoteRequestHeaderUID) {
		uid = user.GetUID()
	}
	rt := transport.NewAuthProxyRoundTripper(user.GetName(), uid, user.GetGroups(), user.GetExtra(), info.roundTripper)
	if upgrade {
		transport.SetAuthProxyHeaders(newReq, user.GetName(), uid, user.GetGroups(), user.GetExtra())
	}
	// As kube-aggregator's proxy: the request is served elsewhere, so API
	// Priority and Fairness does not hold a watch's seats while it lasts.
	utilflowcontrol.RequestDelegated(req.Context())
	handler := proxy.NewUpgradeAwareHandler(location, rt, true, upgrade, &proxyResponder{w: w})
	handler.RejectForwardingRedirects = true
	handler.ServeHTTP(w, newReq)
}

type proxyResponder struct{ w http.ResponseWriter }

func (r *proxyResponder) Object(statusCode int, obj runtime.Object) {
	responsewriters.WriteRawJSON(statusCode, obj, r.w)
}

func (r *proxyResponder) Error(_ http.ResponseWriter, _ *http.Request, err error) {
	http.Error(r.w, err.Error(), http.StatusServiceUnavailable)
}

// remoteAPIs are the group versions of APIServices backed by a Service,
// as kube-aggregator's apiservice registration controller keeps them: a
// proxy each, the aggregated discovery the discovery manager fetches
// through it, and the group in the legacy /apis list.
type remoteAPIs struct {
	server *Server

	mu       sync.RWMutex // guards proxies and versions
	proxies  map[schema.GroupVersion]*proxyHandler
	versions map[string]map[string]*apiregistrationv1.APIService // by group, version
	// groups counts the groups in versions.
	groups atomic.Int32
}

func (r *remoteAPIs) handler(req *http.Request) http.Handler {
	if r.groups.Load() == 0 {
		return nil // every request, while no APIService has a Service
	}
	rest, ok := strings.CutPrefix(req.URL.Path, "/apis/")
	if !ok {
		return nil
	}
	group, rest, _ := strings.Cut(rest, "/")
	version, _, _ := strings.Cut(rest, "/")
	r.mu.RLock()
	defer r.mu.RUnlock()
	if version == "" {
		// The group's legacy discovery, as the aggregator's
		// apiGroupHandler serves it.
		if versions, ok := r.versions[group]; ok {
			return discovery.NewAPIGroupHandler(legacyscheme.Codecs, apiGroup(group, versions))
		}
		return nil
	}
	if p, ok := r.proxies[schema.GroupVersion{Group: group, Version: version}]; ok {
		return p
	}
	return nil
}

// openAPIPaths are the OpenAPI v3 paths (apis/<group>/<version>) of the
// proxied group versions, with their proxies.
func (r *remoteAPIs) openAPIPaths() map[string]http.Handler {
	if r.groups.Load() == 0 {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]http.Handler, len(r.proxies))
	for gv, p := range r.proxies {
		out["apis/"+gv.Group+"/"+gv.Version] = p
	}
	return out
}

// apiGroup is the legacy discovery of a group of APIServices, its versions
// by priority.
func apiGroup(name string, versions map[string]*apiregistrationv1.APIService) metav1.APIGroup {
	var list []*apiregistrationv1.APIService
	for _, v := range versions {
		list = append(list, v)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Spec.VersionPriority != list[j].Spec.VersionPriority {
			return list[i].Spec.VersionPriority > list[j].Spec.VersionPriority
		}
		return list[i].Spec.Version > list[j].Spec.Version
	})
	g := metav1.APIGroup{Name: name}
	for _, s := range list {
		g.Versions = append(g.Versions, metav1.GroupVersionForDiscovery{GroupVersion: s.Spec.Group + "/" + s.Spec.Version, Version: s.Spec.Version})
	}
	g.PreferredVersion = g.Versions[0]
	return g
}

// builtIn says whether the server serves the group itself.
func (r *remoteAPIs) builtIn(group string) bool {
	if group == "" {
		return true
	}
	for _, g := range r.server.registry.Groups {
		if g.Name == group {
			return true
		}
	}
	return false
}

func (r *remoteAPIs) add(obj interface{}) {
	svc, ok := obj.(*apiregistrationv1.APIService)
	if !ok || svc.Spec.Service == nil || r.builtIn(svc.Spec.Group) {
		if ok && svc.Spec.Service == nil {
			r.remove(svc)
		}
		return
	}
	gv := schema.GroupVersion{Group: svc.Spec.Group, Version: svc.Spec.Version}
	r.mu.Lock()
	p, ok := r.proxies[gv]
	if !ok {
		p = &proxyHandler{resolver: r.server.serviceResolver, dial: &transport.DialHolder{Dial: r.server.dialService}, certKey: r.server.aggregator.proxyCertKey}
		r.proxies[gv] = p
	}
	p.update(svc)
	if r.versions[gv.Group] == nil {
		r.versions[gv.Group] = map[string]*apiregistrationv1.APIService{}
		r.groups.Add(1)
	}
	r.versions[gv.Group][gv.Version] = svc
	group := apiGroup(gv.Group, r.versions[gv.Group])
	r.mu.Unlock()
	r.server.root.AddGroup(group)
	r.server.aggregator.discovery.AddAPIService(svc, p)
}

func (r *remoteAPIs) remove(svc *apiregistrationv1.APIService) {
	gv := schema.GroupVersion{Group: svc.Spec.Group, Version: svc.Spec.Version}
	r.mu.Lock()
	_, had := r.proxies[gv]
	delete(r.proxies, gv)
	delete(r.versions[gv.Group], gv.Version)
	remaining := len(r.versions[gv.Group])
	var group metav1.APIGroup
	if _, known := r.versions[gv.Group]; known && remaining == 0 {
		delete(r.versions, gv.Group)
		r.groups.Add(-1)
	} else if remaining > 0 {
		group = apiGroup(gv.Group, r.versions[gv.Group])
	}
	r.mu.Unlock()
	if !had {
		return
	}
	r.server.aggregator.discovery.RemoveAPIService(svc.Name)
	r.server.root.RemoveGroup(gv.Group)
	if remaining > 0 {
		r.server.root.AddGroup(group)
	}
}

func (r *remoteAPIs) handlers() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    r.add,
		UpdateFunc: func(_, obj interface{}) { r.add(obj) },
		DeleteFunc: func(obj interface{}) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if svc, ok := obj.(*apiregistrationv1.APIService); ok {
				r.remove(svc)
			}
		},
	}
}
