package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/net/http2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/controlplane/controller/defaultservicecidr"
	utiltrace "k8s.io/utils/trace"

	"github.com/kubesim/kubesim/internal/pki"
)

// Start bootstraps the cluster's built-in objects, serves until ctx is
// done, then shuts down: watches end, in-flight requests get a few seconds.
// It may be called once.
func (s *Server) Start(ctx context.Context) error {
	started := false
	s.startOnce.Do(func() { started = true })
	if !started {
		return errors.New("apiserver already started")
	}
	logger := klog.FromContext(ctx)
	tr := utiltrace.New("Start the API server")
	// The admission plugins built beside (startAdmission): the informers
	// they asked for start and sync with the server's others.
	var admission admissionStart
	select {
	case admission = <-s.admissionStarted:
	case <-ctx.Done():
		admission.err = ctx.Err()
	}
	if admission.err != nil {
		// The bootstrap New started is of no use now: stopped, not waited out.
		s.bootstrapping.cancel()
		s.bootstrapping.wait()
		s.listener.Close()
		return fmt.Errorf("unable to build the admission chain: %w", admission.err)
	}
	serveCtx, cancelServe := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelServe()
	// The authorizer and the admission plugins read through informers over
	// this server. It is ready once they have synced, the bootstrapped RBAC
	// policy with them, as kube-apiserver's /readyz waits for its informers
	// and the rbac/bootstrap-roles hook: a component starting then is not
	// refused what the policy grants it. They start beside the bootstrap's
	// end (in-process; the network serves once it is done), and are synced
	// once they hold every bootstrap object (waitBootstrapSeen).
	s.serveInProcess(serveCtx)
	s.informers.Start(s.lifetime.Done())
	s.crdInformers.Start(s.lifetime.Done())
	// stopInformers stops them when the server cannot start before abort
	// (below) can.
	stopInformers := func() {
		s.endLifetime()
		s.endDrained()
		s.serveInProcess(nil)
		s.informers.Shutdown()
		s.crdInformers.Shutdown()
		s.listener.Close()
	}
	tr.Step("informers started")
	// The bootstrap objects, which New started creating.
	if err := s.bootstrap(ctx); err != nil {
		stopInformers()
		return fmt.Errorf("unable to bootstrap: %w", err)
	}
	tr.Step("bootstrap objects")
	// As kube-apiserver serves (k8s.io/apiserver's SecureServingInfo.Serve):
	// its timeouts and limits, and HTTP/2 from golang.org/x/net/http2 with
	// its settings (100 streams a connection, as kube-apiserver's default).
	srv := &http.Server{
		Handler:           s.handler,
		MaxHeaderBytes:    1 << 20,
		IdleTimeout:       90 * time.Second,
		ReadHeaderTimeout: 32 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return serveCtx },
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{s.serving},
			ClientAuth:   tls.RequestClientCert,
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"h2", "http/1.1"},
		},
		ErrorLog: klogWriterLogger(),
	}
	const resourceBody99Percentile = 256 * 1024
	h2 := &http2.Server{
		IdleTimeout:              90 * time.Second,
		MaxUploadBufferPerStream: resourceBody99Percentile,
		MaxReadFrameSize:         resourceBody99Percentile,
		MaxConcurrentStreams:     100,
	}
	h2.MaxUploadBufferPerConnection = h2.MaxUploadBufferPerStream * int32(h2.MaxConcurrentStreams)
	if err := http2.ConfigureServer(srv, h2); err != nil {
		stopInformers()
		return fmt.Errorf("unable to configure HTTP/2: %w", err)
	}
	if s.memory != nil {
		go s.memory.Start(serveCtx)
	}
	if s.etcd != nil {
		go s.etcd.Start(serveCtx)
		defer s.etcdClient.Close()
	}
	if s.dataDir != nil {
		go s.dataDir.Start(serveCtx)
		// Writes in flight when the server stops are written first.
		defer s.dataDir.Close()
	}
	if err := s.audit.run(); err != nil {
		stopInformers()
		return fmt.Errorf("unable to run the audit backend: %w", err)
	}
	// The audit backend stops last: a batching one writes what it holds.
	defer s.audit.shutdown()
	go s.registry.RunExpiry(serveCtx)
	go s.registry.RunAllocators(serveCtx)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(s.listener, "", "") }()
	crdDone := make(chan struct{})
	crdRunning := false
	// abort stops what runs so far when the server cannot start.
	abort := func(err error) error {
		s.endLifetime()
		s.endDrained()
		srv.Close()
		s.serveInProcess(nil)
		s.informers.Shutdown()
		s.crdInformers.Shutdown()
		if crdRunning {
			<-crdDone
		}
		return err
	}
	synced := s.informers.WaitForCacheSync(ctx.Done())
	for typ, ok := range s.crdInformers.WaitForCacheSync(ctx.Done()) {
		synced[typ] = ok
	}
	for typ, ok := range synced {
		if !ok {
			return abort(fmt.Errorf("the API server's %v informer did not sync: %w", typ, ctx.Err()))
		}
	}
	if err := s.waitBootstrapSeen(ctx, synced); err != nil {
		return abort(err)
	}
	// The custom resource server's controllers (upstream's naming,
	// establishing, ...) poll every 100 ms for the CRD informer unless it
	// has synced: started now, a CRD created at once is served at once.
	crdRunning = true
	go func() { defer close(crdDone); s.crd.Run(s.lifetime) }()
	tr.Step("informers synced")
	s.runFlowControl()
	if err := s.buildAdmission(ctx, admission.builder); err != nil {
		return abort(fmt.Errorf("unable to build the admission chain: %w", err))
	}
	tr.Step("admission chain")
	// kube-apiserver's start-kubernetes-service-cidr-controller hook makes
	// the default ServiceCIDR exist, Ready, before the server is: the
	// bootstrap created it so, and the controller (whose start waits 100 ms
	// for its own informer) keeps it so from then on.
	_, serviceCIDR, err := net.ParseCIDR(s.cfg.Services.ClusterIPRange)
	if err != nil {
		return fmt.Errorf("unable to parse the service cluster IP range: %w", err)
	}
	go defaultservicecidr.NewController(*serviceCIDR, net.IPNet{}, s.loopback).Start(s.lifetime)
	// As kube-apiserver's readyz check autoregister-completion: the
	// APIServices of what the server serves exist, and are Available.
	s.aggregator.run(s.lifetime)
	waitCtx, cancelWait := context.WithTimeout(ctx, time.Minute)
	err = s.aggregator.waitAvailable(waitCtx)
	cancelWait()
	if err != nil {
		logger.Error(err, "Serving before every APIService is Available")
	}
	tr.Step("APIServices available")
	if klog.V(2).Enabled() {
		tr.Log()
	}
	close(s.ready)
	logger.Info("Serving the Kubernetes API", "address", "https://"+s.listener.Addr().String(), "version", Version().GitVersion)

	select {
	case err := <-errc:
		return fmt.Errorf("unable to serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("Shutting down the Kubernetes API")
	s.endLifetime()    // the server's own clients: informers, CRD controllers
	s.endLongRunning() // watches and other long-running requests end
	// The other requests in flight finish (for a few seconds at most), then
	// the connections close, gracefully: an HTTP/2 connection sends its
	// GOAWAY and the answers its handlers wrote (which http.Server.Close
	// would drop: a write in flight at the shutdown would be stored but
	// its client told of a broken connection) before it closes.
	select {
	case <-s.requests.idle():
	case <-time.After(5 * time.Second):
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), time.Second)
	srv.Shutdown(shutdownCtx)
	cancelShutdown()
	srv.Close()
	s.serveInProcess(nil)
	cancelServe()
	select {
	case <-s.admitting.idle():
	case <-time.After(5 * time.Second):
	}
	// The admission plugins' workers stop once the requests have drained,
	// as kube-apiserver's drained notification orders it: a request still
	// in admission finishes (ResourceQuota would otherwise hold it ten
	// seconds for workers that stopped).
	s.endDrained()
	s.informers.Shutdown()
	s.crdInformers.Shutdown()
	<-crdDone
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// trackRequests counts the requests being served, but the long-running
// ones, which end with s.longRunning instead.
func (s *Server) trackRequests(h http.Handler, longRunning genericapirequest.LongRunningRequestCheck) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if info, ok := genericapirequest.RequestInfoFrom(req.Context()); ok && longRunning(req, info) {
			ctx, cancel := context.WithCancel(req.Context())
			defer cancel()
			defer context.AfterFunc(s.longRunning, cancel)()
			h.ServeHTTP(w, req.WithContext(ctx))
			return
		}
		s.requests.begin()
		defer s.requests.end()
		h.ServeHTTP(w, req)
	})
}

// requestTracker counts requests in flight and tells when there are none.
type requestTracker struct {
	mu sync.Mutex // guards n and zero
	n  int
	// zero is closed when n drops to zero, if someone waits for it.
	zero chan struct{}
}

func (t *requestTracker) begin() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *requestTracker) end() {
	t.mu.Lock()
	t.n--
	if t.n == 0 && t.zero != nil {
		close(t.zero)
		t.zero = nil
	}
	t.mu.Unlock()
}

// idle returns a channel closed once no request is in flight.
func (t *requestTracker) idle() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if t.zero == nil {
		t.zero = make(chan struct{})
	}
	return t.zero
}

// Ready is closed once the server serves requests.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Handler is the server's whole HTTP handler, filters included.
func (s *Server) Handler() http.Handler { return s.handler }

// Address is the host:port the server listens on.
func (s *Server) Address() string { return s.listener.Addr().String() }

// URL is the server's base URL.
func (s *Server) URL() string { return "https://" + s.Address() }

// CACertPEM is the PEM of the CA that signed the serving and client
// certificates.
func (s *Server) CACertPEM() []byte { return s.ca.CertPEM }

// CA is the cluster's CA, which issues real nodes' credentials.
func (s *Server) CA() *pki.CA { return s.ca }

// RESTConfig returns a client configuration with cluster-admin rights.
func (s *Server) RESTConfig() *rest.Config {
	return &rest.Config{
		Host: s.URL(),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   s.ca.CertPEM,
			CertData: s.admin.CertPEM,
			KeyData:  s.admin.KeyPEM,
		},
		QPS:   -1, // a simulator's own clients are not rate limited
		Burst: -1,
		// The simulator's clients run in its process or beside it:
		// compressing their watch streams and lists (kube-apiserver gzips
		// watch-list streams for clients that accept it) only costs CPU on
		// both ends, a tenth of it when thousands of nodes register.
		DisableCompression: true,
	}
}

// UserRESTConfig returns a client configuration authenticating as user in
// groups with a client certificate from the cluster CA: the identities
// kube-controller-manager and kube-scheduler have (system:kube-scheduler,
// ...), which the bootstrapped RBAC policy grants what they need.
func (s *Server) UserRESTConfig(user string, groups ...string) (*rest.Config, error) {
	kp, err := s.ca.Issue(pki.CertOptions{CommonName: user, Organization: groups})
	if err != nil {
		return nil, err
	}
	cfg := s.RESTConfig()
	cfg.CertData, cfg.KeyData = kp.CertPEM, kp.KeyPEM
	return cfg, nil
}

// ServiceAccountKeyPEM is the service-account signing key, PEM-encoded
// (PKCS #8), as kube-controller-manager's --service-account-private-key-file
// takes it to sign legacy token Secrets.
func (s *Server) ServiceAccountKeyPEM() []byte { return s.serviceAccounts.keyPEM }

// Kubeconfig returns a kubeconfig for the cluster-admin user.
func (s *Server) Kubeconfig() ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubesim"] = &clientcmdapi.Cluster{Server: s.URL(), CertificateAuthorityData: s.ca.CertPEM}
	cfg.AuthInfos["kubesim-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: s.admin.CertPEM, ClientKeyData: s.admin.KeyPEM}
	cfg.Contexts["kubesim"] = &clientcmdapi.Context{Cluster: "kubesim", AuthInfo: "kubesim-admin", Namespace: metav1.NamespaceDefault}
	cfg.CurrentContext = "kubesim"
	return clientcmd.Write(*cfg)
}

// WriteKubeconfig writes the kubeconfig to path atomically: readers see no
// file or a whole one.
func (s *Server) WriteKubeconfig(path string) error {
	b, err := s.Kubeconfig()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".kubeconfig-*")
	if err != nil {
		return fmt.Errorf("unable to write kubeconfig: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("unable to write kubeconfig: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("unable to write kubeconfig: %w", err)
	}
	return nil
}

// requestContext gives an in-process write what a request's context has:
// upstream strategies (declarative validation) read the request info.
func requestContext(ctx context.Context, verb, group, version, resource, namespace string) context.Context {
	ctx = genericapirequest.WithNamespace(ctx, namespace)
	prefix := "apis"
	if group == "" {
		prefix = "api"
	}
	return genericapirequest.WithRequestInfo(ctx, &genericapirequest.RequestInfo{
		IsResourceRequest: true, Verb: verb, APIPrefix: prefix, APIGroup: group, APIVersion: version, Resource: resource, Namespace: namespace,
	})
}
