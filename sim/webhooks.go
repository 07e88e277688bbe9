package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/kubesim/kubesim/internal/pki"
)

// Webhooks are an operator's admission and conversion webhooks, served on
// a local port with a certificate the cluster trusts, as envtest's
// WebhookInstallOptions arrange.
type Webhooks struct {
	// Paths are files or directories of MutatingWebhookConfiguration and
	// ValidatingWebhookConfiguration manifests (kubebuilder's
	// config/webhook/manifests.yaml), registered before Start returns.
	Paths []string
	// Mutating and Validating are more configurations to register.
	Mutating   []*admissionregistrationv1.MutatingWebhookConfiguration
	Validating []*admissionregistrationv1.ValidatingWebhookConfiguration
	// Handler serves the webhooks' paths (an http.ServeMux, a
	// controller-runtime webhook server's WebhookMux()). When set, Start
	// serves it over TLS at the webhook address. When nil, the caller
	// serves the webhooks there, with Cluster.Webhooks' Host, Port and
	// CertDir (controller-runtime's webhook.Options take them), as with
	// envtest.
	Handler http.Handler
	// Host is the address the webhooks are served on. Default: 127.0.0.1.
	Host string
	// Port is their port. Default: a free port.
	Port int
}

// needed reports whether any webhook is configured or served.
func (w Webhooks) needed() bool {
	return len(w.Paths) > 0 || len(w.Mutating) > 0 || len(w.Validating) > 0 || w.Handler != nil
}

// WebhookServer is where a cluster calls its operator's webhooks.
type WebhookServer struct {
	// Host and Port are the address the webhooks are served on.
	Host string
	Port int
	// CertDir holds the serving certificate and key (tls.crt, tls.key)
	// and the CA that signed them (ca.crt).
	CertDir string
	// CAData is the PEM of that CA: the caBundle of every webhook.
	CAData []byte

	server   *http.Server
	listener net.Listener
	done     chan error
}

// URL returns the base URL of the webhooks.
func (w *WebhookServer) URL() string {
	return "https://" + net.JoinHostPort(w.Host, strconv.Itoa(w.Port))
}

// newWebhookServer makes the webhooks' certificates in dir/webhook-certs,
// takes a port and, with a handler, serves it.
func newWebhookServer(dir string, w Webhooks) (*WebhookServer, error) {
	host := w.Host
	if host == "" {
		host = "127.0.0.1"
	}
	s := &WebhookServer{Host: host, CertDir: filepath.Join(dir, "webhook-certs")}
	if err := os.MkdirAll(s.CertDir, 0o700); err != nil {
		return nil, err
	}
	ca, err := pki.NewCA("kubesim-webhook-ca")
	if err != nil {
		return nil, err
	}
	opts := pki.CertOptions{CommonName: "kubesim-webhooks", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, Server: true}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
		opts.IPs = append(opts.IPs, ip)
	} else if ip == nil && host != "localhost" {
		opts.DNSNames = append(opts.DNSNames, host)
	}
	kp, err := ca.Issue(opts)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(
		os.WriteFile(filepath.Join(s.CertDir, "tls.crt"), kp.CertPEM, 0o600),
		os.WriteFile(filepath.Join(s.CertDir, "tls.key"), kp.KeyPEM, 0o600),
		os.WriteFile(filepath.Join(s.CertDir, "ca.crt"), ca.CertPEM, 0o600),
	); err != nil {
		return nil, err
	}
	s.CAData = ca.CertPEM
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(w.Port)))
	if err != nil {
		return nil, fmt.Errorf("unable to listen for webhooks: %w", err)
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	if w.Handler == nil {
		// The caller serves on this port.
		ln.Close()
		return s, nil
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.listener = ln
	s.server = &http.Server{
		Handler:           w.Handler,
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:          nil,
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.server.ServeTLS(ln, "", "") }()
	return s, nil
}

// stop stops serving, if Start served.
func (s *WebhookServer) stop() error {
	if s == nil || s.server == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.server.Shutdown(ctx); err != nil {
		s.server.Close()
	}
	if err := <-s.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// urlFor is the local server's URL of a webhook whose configuration names
// servicePath or rawURL (their path; def when neither has one).
func (s *WebhookServer) urlFor(servicePath, rawURL *string, def string) string {
	p := def
	switch {
	case servicePath != nil:
		p = *servicePath
	case rawURL != nil:
		if u, err := url.Parse(*rawURL); err == nil && u.Path != "" {
			p = u.Path
		}
	}
	return s.URL() + path.Clean("/"+p)
}

// clientConfig points a webhook at the local server: the path of its
// service (or URL), the server's address, the CA.
func (s *WebhookServer) clientConfig(cc admissionregistrationv1.WebhookClientConfig) admissionregistrationv1.WebhookClientConfig {
	var servicePath *string
	if cc.Service != nil {
		servicePath = cc.Service.Path
	}
	u := s.urlFor(servicePath, cc.URL, "/")
	return admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: s.CAData}
}

// pointCRDs points the conversion webhooks of CRDs at the local server
// (at /convert, controller-runtime's path, when they name none).
func (s *WebhookServer) pointCRDs(crds []*apiextensionsv1.CustomResourceDefinition) {
	for _, crd := range crds {
		conv := crd.Spec.Conversion
		if conv == nil || conv.Strategy != apiextensionsv1.WebhookConverter || conv.Webhook == nil {
			continue
		}
		var servicePath, rawURL *string
		if cc := conv.Webhook.ClientConfig; cc != nil {
			rawURL = cc.URL
			if cc.Service != nil {
				servicePath = cc.Service.Path
			}
		}
		u := s.urlFor(servicePath, rawURL, "/convert")
		conv.Webhook.ClientConfig = &apiextensionsv1.WebhookClientConfig{URL: &u, CABundle: s.CAData}
	}
}

// installWebhooks registers the configurations, pointed at the server,
// creating or replacing them.
func installWebhooks(ctx context.Context, cs kubernetes.Interface, s *WebhookServer, mutating []*admissionregistrationv1.MutatingWebhookConfiguration, validating []*admissionregistrationv1.ValidatingWebhookConfiguration) error {
	for _, m := range mutating {
		for i := range m.Webhooks {
			m.Webhooks[i].ClientConfig = s.clientConfig(m.Webhooks[i].ClientConfig)
		}
		api := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
		if err := createOrReplace(ctx, m, api.Create, api.Get, api.Update); err != nil {
			return fmt.Errorf("unable to register MutatingWebhookConfiguration %s: %w", m.Name, err)
		}
	}
	for _, v := range validating {
		for i := range v.Webhooks {
			v.Webhooks[i].ClientConfig = s.clientConfig(v.Webhooks[i].ClientConfig)
		}
		api := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		if err := createOrReplace(ctx, v, api.Create, api.Get, api.Update); err != nil {
			return fmt.Errorf("unable to register ValidatingWebhookConfiguration %s: %w", v.Name, err)
		}
	}
	return nil
}

// createOrReplace creates obj, or replaces the object of its name.
func createOrReplace[T interface {
	metav1.Object
	*M
}, M any](ctx context.Context, obj T,
	create func(context.Context, T, metav1.CreateOptions) (T, error),
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		_, err := create(ctx, obj, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		existing, err := get(ctx, obj.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		obj.SetResourceVersion(existing.GetResourceVersion())
		_, err = update(ctx, obj, metav1.UpdateOptions{})
		return err
	})
}
