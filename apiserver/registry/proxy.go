package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/proxy"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	apiproxy "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	api "k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/kubernetes/pkg/capabilities"
	kubeletclient "k8s.io/kubernetes/pkg/kubelet/client"
	"k8s.io/kubernetes/pkg/registry/core/node"
	"k8s.io/kubernetes/pkg/registry/core/pod"
)

var endpointSlicesResource = schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}

// proxyMethods are the methods kube-apiserver proxies on pods/proxy,
// services/proxy and nodes/proxy.
var proxyMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// proxySubresource returns the storage of pods/proxy, services/proxy or
// nodes/proxy, or nil for another subresource or when the registry has no
// proxy transport. Each is upstream's ProxyREST restated over this
// registry's stores (upstream's take a generic registry store): the same
// resource locations (pod.ResourceLocation, node.ResourceLocation, and the
// service REST's endpoint choice), the same upgrade-aware proxy handler.
func (r *Registry) proxySubresource(cfg Config, gr schema.GroupResource, sub string) rest.Storage {
	if sub != "proxy" || cfg.ProxyTransport == nil {
		return nil
	}
	switch gr {
	case schema.GroupResource{Resource: "pods"}:
		return &podProxyREST{pods: r.Stores[gr], transport: cfg.ProxyTransport}
	case schema.GroupResource{Resource: "services"}:
		return &serviceProxyREST{registry: r, transport: cfg.ProxyTransport}
	case schema.GroupResource{Resource: "nodes"}:
		if cfg.KubeletConn == nil {
			return nil
		}
		return &nodeProxyREST{nodes: r.Stores[gr], conn: cfg.KubeletConn, transport: cfg.ProxyTransport}
	}
	return nil
}

// upgradeAwareProxy is upstream's newThrottledUpgradeAwareProxyHandler.
func upgradeAwareProxy(location *url.URL, transport http.RoundTripper, responder rest.Responder) http.Handler {
	h := proxy.NewUpgradeAwareHandler(location, transport, true, false, proxy.NewErrorResponder(responder))
	h.MaxBytesPerSec = capabilities.Get().PerConnectionBandwidthLimitBytesPerSec
	return h
}

// podProxyREST serves pods/proxy: to the pod's IP, at the port the name
// asks for ("name:port", "scheme:name:port") or the pod's first.
type podProxyREST struct {
	pods      *Store
	transport http.RoundTripper
}

var _ rest.Connecter = (*podProxyREST)(nil)

func (r *podProxyREST) New() runtime.Object      { return &api.PodProxyOptions{} }
func (r *podProxyREST) Destroy()                 {}
func (r *podProxyREST) ConnectMethods() []string { return proxyMethods }
func (r *podProxyREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &api.PodProxyOptions{}, true, "path"
}

func (r *podProxyREST) Connect(ctx context.Context, id string, opts runtime.Object, responder rest.Responder) (http.Handler, error) {
	proxyOpts, ok := opts.(*api.PodProxyOptions)
	if !ok {
		return nil, fmt.Errorf("invalid options object: %#v", opts)
	}
	location, transport, err := pod.ResourceLocation(ctx, r.pods, r.transport, id)
	if err != nil {
		return nil, err
	}
	location.Path = utilnet.JoinPreservingTrailingSlash(location.Path, proxyOpts.Path)
	return upgradeAwareProxy(location, transport, responder), nil
}

// nodeProxyREST serves nodes/proxy: to the node's kubelet with the kubelet
// client credentials, or to another port of the node's address.
type nodeProxyREST struct {
	nodes     *Store
	conn      kubeletclient.ConnectionInfoGetter
	transport http.RoundTripper
}

var _ rest.Connecter = (*nodeProxyREST)(nil)

func (r *nodeProxyREST) New() runtime.Object      { return &api.NodeProxyOptions{} }
func (r *nodeProxyREST) Destroy()                 {}
func (r *nodeProxyREST) ConnectMethods() []string { return proxyMethods }
func (r *nodeProxyREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &api.NodeProxyOptions{}, true, "path"
}

func (r *nodeProxyREST) Connect(ctx context.Context, id string, opts runtime.Object, responder rest.Responder) (http.Handler, error) {
	proxyOpts, ok := opts.(*api.NodeProxyOptions)
	if !ok {
		return nil, fmt.Errorf("invalid options object: %#v", opts)
	}
	location, transport, err := node.ResourceLocation(r.nodes, r.conn, r.transport, ctx, id)
	if err != nil {
		return nil, err
	}
	location.Path = utilnet.JoinPreservingTrailingSlash(location.Path, proxyOpts.Path)
	return upgradeAwareProxy(location, transport, responder), nil
}

// serviceProxyREST serves services/proxy: to a random ready endpoint of the
// service that is a pod's address, as the service REST's ResourceLocation.
type serviceProxyREST struct {
	// registry has the services, pods and endpointslices stores (looked up
	// per request: they are built after the services endpoint).
	registry  *Registry
	transport http.RoundTripper
}

func (r *serviceProxyREST) store(gr schema.GroupResource) *Store { return r.registry.Stores[gr] }

var _ rest.Connecter = (*serviceProxyREST)(nil)

func (r *serviceProxyREST) New() runtime.Object      { return &api.ServiceProxyOptions{} }
func (r *serviceProxyREST) Destroy()                 {}
func (r *serviceProxyREST) ConnectMethods() []string { return proxyMethods }
func (r *serviceProxyREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &api.ServiceProxyOptions{}, true, "path"
}

func (r *serviceProxyREST) Connect(ctx context.Context, id string, opts runtime.Object, responder rest.Responder) (http.Handler, error) {
	proxyOpts, ok := opts.(*api.ServiceProxyOptions)
	if !ok {
		return nil, fmt.Errorf("invalid options object: %#v", opts)
	}
	location, err := r.resourceLocation(ctx, id)
	if err != nil {
		return nil, err
	}
	location.Path = utilnet.JoinPreservingTrailingSlash(location.Path, proxyOpts.Path)
	return upgradeAwareProxy(location, r.transport, responder), nil
}

// resourceLocation is kube-apiserver's service REST ResourceLocation.
func (r *serviceProxyREST) resourceLocation(ctx context.Context, id string) (*url.URL, error) {
	// Allow ID as "svcname", "svcname:port", or "scheme:svcname:port".
	svcScheme, svcName, portStr, valid := utilnet.SplitSchemeNamePort(id)
	if !valid {
		return nil, errors.NewBadRequest(fmt.Sprintf("invalid service request %q", id))
	}
	// A port number names the service port of that number.
	if portNum, err := strconv.ParseInt(portStr, 10, 64); err == nil {
		obj, err := r.store(schema.GroupResource{Resource: "services"}).Get(ctx, svcName, &metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		svc := obj.(*api.Service)
		found := false
		for _, svcPort := range svc.Spec.Ports {
			if int64(svcPort.Port) == portNum {
				portStr = svcPort.Name
				found = true
				break
			}
		}
		if !found {
			return nil, errors.NewServiceUnavailable(fmt.Sprintf("no service port %d found for service %q", portNum, svcName))
		}
	}
	if r.store(endpointSlicesResource) == nil {
		return nil, errors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", svcName))
	}
	namespace := genericapirequest.NamespaceValue(ctx)
	if namespace == "" {
		return nil, errors.NewBadRequest("missing required namespace")
	}
	slices, err := r.endpointSlices(ctx, svcName)
	if err != nil {
		return nil, errors.NewInternalError(err)
	}
	if len(slices) == 0 {
		return nil, errors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", svcName))
	}
	hostPort, err := apiproxy.RandomEndpoint(svcName, slices, portStr, v1.IPv4Protocol, func(ep *discoveryv1.Endpoint) bool {
		// Only addresses that are pods'.
		if err := r.isPodAddress(ctx, ep); err != nil {
			klog.FromContext(ctx).V(4).Info("Skipping endpoint", "service", svcName, "reason", err.Error())
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return &url.URL{Scheme: svcScheme, Host: hostPort}, nil
}

// endpointSlices are the service's EndpointSlices in discovery/v1, as
// upstream's EndpointSliceGetter (an informer lister) returns them.
func (r *serviceProxyREST) endpointSlices(ctx context.Context, svcName string) ([]*discoveryv1.EndpointSlice, error) {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svcName})
	obj, err := r.store(endpointSlicesResource).List(ctx, &metainternalversion.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	list := &discoveryv1.EndpointSliceList{}
	if err := legacyscheme.Scheme.Convert(obj, list, nil); err != nil {
		return nil, err
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// isPodAddress is upstream's isValidAddress: the endpoint names a pod of
// the namespace that has its address.
func (r *serviceProxyREST) isPodAddress(ctx context.Context, ep *discoveryv1.Endpoint) error {
	if ep.TargetRef == nil {
		return fmt.Errorf("endpoint has no target ref")
	}
	if genericapirequest.NamespaceValue(ctx) != ep.TargetRef.Namespace {
		return fmt.Errorf("endpoint namespace doesn't match context namespace")
	}
	obj, err := r.store(schema.GroupResource{Resource: "pods"}).Get(ctx, ep.TargetRef.Name, &metav1.GetOptions{})
	if err != nil {
		return err
	}
	p, ok := obj.(*api.Pod)
	if !ok || p == nil {
		return fmt.Errorf("failed to cast to pod: %v", obj)
	}
	for _, podIP := range p.Status.PodIPs {
		if len(ep.Addresses) > 0 && podIP.IP == ep.Addresses[0] {
			return nil
		}
	}
	return fmt.Errorf("pod ip(s) doesn't match endpoint ip: %v vs %v", p.Status.PodIPs, ep.Addresses)
}
