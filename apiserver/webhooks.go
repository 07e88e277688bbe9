package apiserver

import (
	"crypto/tls"
	"net/http"
	"net/url"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/apiserver/pkg/util/webhook"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// serviceResolver resolves the Service of an admission or conversion
// webhook as kube-apiserver does without --enable-aggregator-routing (the
// aggregator's ClusterIP resolver, k8s.io/apiserver's ResolveCluster), and
// the API server's own kubernetes Service to its loopback address (the
// aggregator's loopback resolver).
type serviceResolver struct {
	services corelisters.ServiceLister
	loopback *url.URL
}

var _ webhook.ServiceResolver = (*serviceResolver)(nil)

func newServiceResolver(services corelisters.ServiceLister, loopbackURL string) *serviceResolver {
	u, _ := url.Parse(loopbackURL)
	return &serviceResolver{services: services, loopback: u}
}

// ResolveEndpoint implements webhook.ServiceResolver.
func (r *serviceResolver) ResolveEndpoint(namespace, name string, port int32) (*url.URL, error) {
	if r.loopback != nil && namespace == "default" && name == "kubernetes" && port == 443 {
		return r.loopback, nil
	}
	return proxy.ResolveCluster(r.services, namespace, name, port)
}

// webhookProxyTransport is the transport kube-apiserver dials webhooks
// through (its CreateProxyTransport).
func webhookProxyTransport() *http.Transport {
	return utilnet.SetTransportDefaults(&http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}})
}
