package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/transport"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	kubeletclient "k8s.io/kubernetes/pkg/kubelet/client"
	nodeutil "k8s.io/kubernetes/pkg/util/node"

	"github.com/kubesim/kubesim/internal/pki"
)

// kubeletConnection reaches nodes' kubelets, as kube-apiserver's
// NodeConnectionInfoGetter does: at the node's preferred address and its
// reported kubelet port, over HTTPS with the kubelet client certificate
// (kube-apiserver-kubelet-client). Like kube-apiserver with
// --kubelet-certificate-authority, it verifies kubelets' serving
// certificates against the cluster's CA, which issues those of real and
// simulated nodes; logs with insecureSkipTLSVerifyBackend skip that, as
// kube-apiserver's.
type kubeletConnection struct {
	server    *Server
	transport http.RoundTripper
	insecure  http.RoundTripper
	preferred []v1.NodeAddressType
}

var _ kubeletclient.ConnectionInfoGetter = (*kubeletConnection)(nil)

func newKubeletConnection(s *Server) (*kubeletConnection, error) {
	cert, err := s.ca.Issue(pki.CertOptions{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}})
	if err != nil {
		return nil, err
	}
	rt, err := transport.New(&transport.Config{TLS: transport.TLSConfig{CAData: s.ca.CertPEM, CertData: cert.CertPEM, KeyData: cert.KeyPEM}})
	if err != nil {
		return nil, fmt.Errorf("unable to build the kubelet transport: %w", err)
	}
	insecure, err := transport.New(&transport.Config{TLS: transport.TLSConfig{Insecure: true, CertData: cert.CertPEM, KeyData: cert.KeyPEM}})
	if err != nil {
		return nil, fmt.Errorf("unable to build the kubelet transport: %w", err)
	}
	c := &kubeletConnection{server: s, transport: rt, insecure: insecure}
	for _, t := range s.cfg.KubeletPreferredAddressTypes {
		c.preferred = append(c.preferred, v1.NodeAddressType(t))
	}
	return c, nil
}

// GetConnectionInfo returns where the node's kubelet listens.
func (c *kubeletConnection) GetConnectionInfo(ctx context.Context, nodeName types.NodeName) (*kubeletclient.ConnectionInfo, error) {
	obj, err := c.server.registry.Stores[schema.GroupResource{Resource: "nodes"}].Get(ctx, string(nodeName), &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	node := &v1.Node{}
	if err := legacyscheme.Scheme.Convert(obj, node, nil); err != nil {
		return nil, err
	}
	host, err := nodeutil.GetPreferredNodeAddress(node, c.preferred)
	if err != nil {
		return nil, err
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port <= 0 {
		port = 10250
	}
	return &kubeletclient.ConnectionInfo{
		Scheme:                         "https",
		Hostname:                       host,
		Port:                           strconv.Itoa(port),
		Transport:                      c.transport,
		InsecureSkipTLSVerifyTransport: c.insecure,
		NodeFeatures:                   node.Status.DeclaredFeatures,
	}, nil
}
