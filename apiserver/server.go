package apiserver

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"k8s.io/kubernetes/pkg/capabilities"
	netutils "k8s.io/utils/net"
	"net"
	"net/http"
	"net/http/pprof"
	"path"
	"path/filepath"
	"reflect"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	restful "github.com/emicklei/go-restful/v3"
	"github.com/gorilla/mux"
	clientv3 "go.etcd.io/etcd/client/v3"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apiextensionsinformers "k8s.io/apiextensions-apiserver/pkg/client/informers/externalversions"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	discoveryendpoint "k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
	genericfilters "k8s.io/apiserver/pkg/endpoints/filters"
	"k8s.io/apiserver/pkg/endpoints/filters/impersonation"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
	serverfilters "k8s.io/apiserver/pkg/server/filters"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	utilflowcontrol "k8s.io/apiserver/pkg/util/flowcontrol"
	flowcontrolrequest "k8s.io/apiserver/pkg/util/flowcontrol/request"
	"k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/tracing"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"k8s.io/kubernetes/pkg/serviceaccount"
	"k8s.io/utils/clock"
	utiltrace "k8s.io/utils/trace"

	"github.com/kubesim/kubesim/apiserver/crdserver"
	"github.com/kubesim/kubesim/apiserver/openapi"
	"github.com/kubesim/kubesim/apiserver/registry"
	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/datadir"
	"github.com/kubesim/kubesim/apiserver/storage/encoding"
	etcdstore "github.com/kubesim/kubesim/apiserver/storage/etcd"
	"github.com/kubesim/kubesim/apiserver/storage/memory"
	"github.com/kubesim/kubesim/internal/pki"
	kstransform "github.com/kubesim/kubesim/internal/transform"
)

// Config configures a Server. The zero value serves on 127.0.0.1:6443
// from a new in-memory store.
type Config struct {
	// Storage is the backend. Default: a new memory store, compacted by the
	// server while it runs (or the data dir's, with DataDir).
	Storage storage.Interface
	// DataDir, when set (and Storage is not), keeps the cluster's state in
	// that directory (package datadir): every write is persisted before it
	// is acknowledged, and a restart comes back at the last acknowledged
	// revision. DataDir/pki keeps the cluster CA, the front-proxy CA and
	// the service-account signing key, so that kubeconfigs and tokens stay
	// valid across restarts. Default: none, state in memory.
	DataDir string
	// Etcd, when set (and neither Storage nor DataDir is), stores in etcd
	// as kube-apiserver does (package storage/etcd): several API servers
	// on one etcd serve one state. Default: none.
	Etcd *EtcdConfig
	// PKIDir keeps the cluster CA, the front-proxy CA and the
	// service-account signing key: read when there, written when not.
	// API servers that share one etcd share one PKIDir (or copies of
	// it). Default: DataDir/pki with DataDir; none (new keys at every
	// start) otherwise.
	PKIDir string
	// Clock is injected everywhere time matters. Default: the real clock.
	Clock clock.WithTicker
	// BindAddress is the IP to listen on. Default: 127.0.0.1.
	BindAddress string
	// Port to listen on; 0 picks a free port. Default: 6443 (see UseDefaultPort).
	Port int
	// AnyPort, when true, listens on a free port whatever Port says.
	AnyPort bool
	// MaxRequestBodyBytes caps request bodies. Default: 3 MiB, as
	// kube-apiserver's --max-resource-write-bytes.
	MaxRequestBodyBytes int64
	// MinRequestTimeout bounds watches that give no timeoutSeconds: they
	// last between it and twice it. Default: 30m, as kube-apiserver's.
	MinRequestTimeout time.Duration
	// RequestTimeout is kube-apiserver's --request-timeout: a request that
	// is not long-running (a watch, exec, logs, a proxy, ...) is answered
	// 504 Timeout once it has run this long, or as long as its timeout
	// parameter asks if that is shorter. Default: 60s.
	RequestTimeout time.Duration
	// MaxRequestsInFlight and MaxMutatingRequestsInFlight are
	// kube-apiserver's --max-requests-inflight (default 400) and
	// --max-mutating-requests-inflight (default 200). With API Priority and
	// Fairness their sum is the concurrency the priority levels share;
	// without it each bounds its kind of request. Negative: no limit
	// (kube-apiserver's 0); with APF, the sum must be positive.
	MaxRequestsInFlight, MaxMutatingRequestsInFlight int
	// DisablePriorityAndFairness serves without API Priority and Fairness,
	// as kube-apiserver's --enable-priority-and-fairness=false: the
	// max-in-flight limits apply instead.
	DisablePriorityAndFairness bool
	// Audit is kube-apiserver's audit configuration, its --audit-* flags
	// (start from NewAuditOptions): the policy file, the log backend (path,
	// format, max age, size and backups, mode, truncation) and the webhook
	// backend. Events are recorded as kube-apiserver records them, by its
	// filters and handlers. Default: none, no audit (as without
	// --audit-policy-file).
	Audit *genericoptions.AuditOptions
	// AuditBackend receives the audit events too (an in-memory backend in
	// a test, say), under Audit's policy, which it needs. Default: none.
	AuditBackend audit.Backend
	// Services configures ClusterIP and NodePort allocation.
	Services registry.ServiceAllocatorConfig
	// EventTTL is how long an Event lives after its last write, as
	// kube-apiserver's --event-ttl. Default: 1h.
	EventTTL time.Duration
	// CompactionInterval is how often the default memory store compacts
	// its history (kube-apiserver's --etcd-compaction-interval). Default: 5m.
	CompactionInterval time.Duration
	// ServiceAccountIssuer is the issuer of service-account tokens and the
	// API server's audience (--service-account-issuer).
	// Default: https://kubernetes.default.svc.
	ServiceAccountIssuer string
	// ServiceAccountSigningKey signs service-account tokens (an RSA or
	// ECDSA key, --service-account-signing-key-file). Several API servers
	// of one cluster share it. Default: a new ECDSA P-256 key.
	ServiceAccountSigningKey crypto.Signer
	// KubeletPreferredAddressTypes is the order in which node address
	// types are tried to reach a kubelet (for pods/log, exec, attach,
	// portforward), as --kubelet-preferred-address-types.
	// Default: InternalIP, ExternalIP, Hostname, as kubeadm sets it.
	KubeletPreferredAddressTypes []string
	// InformerTransform transforms the objects cached by the API server's
	// own informers, those of the authorizer and the admission plugins
	// (PodSecurity caches every pod). Default: one that drops managed
	// fields, which none of them reads. In-process components pass one
	// that also shares objects with their own caches.
	InformerTransform cache.TransformFunc
	// DisableAdmissionPlugins turns off admission plugins that are on by
	// default, as kube-apiserver's --disable-admission-plugins: for
	// scheduler_perf's workloads, which run with ServiceAccount,
	// TaintNodesByCondition and Priority off. A name that is not a
	// plugin is an error. Default: none.
	DisableAdmissionPlugins []string
	// AuthorizationModes are the authorizers after system:masters, in
	// order, as kube-apiserver's --authorization-mode: Node, RBAC,
	// AlwaysAllow, AlwaysDeny. Default: Node, RBAC, as kubeadm runs it.
	// scheduler_perf's integration API server runs AlwaysAllow (its test
	// server's default), which capacity experiments follow.
	AuthorizationModes []string
	// NonResourceHandlers serve more non-resource paths (each key a path
	// prefix ending in "/"), behind the same authentication and
	// authorization as /metrics: a user needs the nonResourceURLs
	// permission. kubesim's own endpoints (the scheduler's explanations)
	// are served so. Default: none.
	NonResourceHandlers map[string]http.Handler
}

// EtcdConfig says where and how the etcd backend stores, as
// kube-apiserver's --etcd-servers, --etcd-cafile, --etcd-certfile,
// --etcd-keyfile and --etcd-prefix.
type EtcdConfig struct {
	Servers                   []string
	CAFile, CertFile, KeyFile string
	// Prefix: default /registry.
	Prefix string
}

// Server is a running kubesim API server.
type Server struct {
	// trace times the start-up steps (logged at -v 2).
	trace *utiltrace.Trace

	cfg    Config
	memory *memory.Store // when the server owns its storage
	// dataDir is the storage when the server opened a data dir.
	dataDir *datadir.Store
	// etcd is the storage when the server connected to etcd.
	etcd       *etcdstore.Store
	etcdClient *clientv3.Client
	// pkiDir keeps the CAs and keys (Config.PKIDir).
	pkiDir   string
	registry *registry.Registry
	handler  http.Handler
	// openapi builds /openapi/v2 and /openapi/v3 on their first request.
	openapi    *openapi.Documents
	listener   net.Listener
	ca         *pki.CA
	serving    tls.Certificate
	admin      *pki.KeyPair
	adminToken string
	// serviceAccounts signs and verifies service-account tokens.
	serviceAccounts *serviceAccounts
	ready           chan struct{}
	startOnce       sync.Once
	// lifetime ends when the server stops serving: the informers and the
	// CRD controllers, the server's own clients, run in it.
	lifetime context.Context
	// drained ends once the requests have drained: the admission plugins'
	// workers run until then, as with kube-apiserver's drained notification.
	drained     context.Context
	endDrained  context.CancelFunc
	endLifetime context.CancelFunc
	informers   informers.SharedInformerFactory
	// tokens authenticates bearer tokens: the admin token and
	// service-account tokens; tokenReviewAuthenticator answers TokenReviews
	// with it.
	tokens                   authenticator.Token
	tokenReviewAuthenticator authenticator.Request
	// authorizer is kube-apiserver's RBAC mode; ruleResolver answers rules reviews.
	authorizer   authorizer.Authorizer
	ruleResolver authorizer.RuleResolver
	// crdInformers feed the CRD server; crd serves custom resources.
	crdInformers apiextensionsinformers.SharedInformerFactory
	// aggregator registers the APIServices of what the server serves,
	// and proxies those of aggregated API servers.
	aggregator *aggregator
	// inProcessServices are the Services served in this process
	// (ServeInProcess).
	inProcessServices inProcessServices
	crd               *crdserver.Server
	// serviceResolver and webhookAuth reach admission and conversion
	// webhooks, as kube-apiserver's.
	serviceResolver webhook.ServiceResolver
	webhookAuth     webhook.AuthenticationInfoResolverWrapper
	// aggregated and root are the /apis discovery documents CRD groups
	// join.
	aggregated discoveryendpoint.ResourceManager
	root       discovery.GroupManager
	// admission is the admission chain requests go through, built by Start.
	admission *trackedAdmission
	// admissionStarted gives what startAdmission built, once.
	admissionStarted <-chan admissionStart
	// lateAdmissionInformers are the informers the admission chain's build
	// started, which preRegisterAdmissionInformers did not.
	lateAdmissionInformers []reflect.Type
	// bootstrapping creates the bootstrap objects beside the rest of the
	// build (startBootstrap); Start waits for it. apiBuilt is closed once
	// api is set (or the build failed), for the bootstrap's field managers.
	bootstrapping bootstrapRun
	apiBuilt      chan struct{}
	// requests counts the requests being served but long-running ones, for
	// shutdown to drain; longRunning ends the long-running ones (watches,
	// exec, logs, ...) at shutdown.
	requests       requestTracker
	admitting      requestTracker // admission calls in flight
	longRunning    context.Context
	endLongRunning context.CancelFunc
	// chainWorkers serve requests inside the timeout filter.
	chainWorkers *handlerWorkers
	// audit is the server's audit policy and backends (none unless
	// configured).
	audit *auditing
	// flowControl is the server's API Priority and Fairness (nil without
	// it); objectCounts the stored objects' counts its work estimates read.
	flowControl  utilflowcontrol.Interface
	objectCounts flowcontrolrequest.StorageObjectCountTracker
	// api serves the API's resources (its field managers write the
	// bootstrap objects' managedFields).
	api *apiHandler
	// loopback is the server's own client, over loopbackConfig.
	loopback       kubernetes.Interface
	loopbackConfig *rest.Config
	// inProcess.ctx is the context in-process requests are served in
	// while the server serves (see InProcessRESTConfig); nil otherwise.
	inProcess struct {
		sync.RWMutex
		ctx     context.Context
		workers *handlerWorkers // serve the requests while ctx lasts
	}
}

// New validates cfg, fills in its defaults, builds the server and opens its
// listener; Start serves.
func New(cfg Config) (_ *Server, err error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.BindAddress == "" {
		cfg.BindAddress = "127.0.0.1"
	}
	if cfg.AnyPort {
		cfg.Port = 0
	} else if cfg.Port == 0 {
		cfg.Port = 6443
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("unable to create apiserver: port %d out of range", cfg.Port)
	}
	for prefix := range cfg.NonResourceHandlers {
		if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") || strings.HasPrefix(prefix, "/api/") || strings.HasPrefix(prefix, "/apis/") || prefix == "/" {
			return nil, fmt.Errorf("unable to create apiserver: non-resource handler path %q must start and end with / and not be under /api or /apis", prefix)
		}
	}
	if cfg.MaxRequestBodyBytes == 0 {
		cfg.MaxRequestBodyBytes = 3 * 1024 * 1024
	}
	if cfg.EventTTL < 0 {
		return nil, fmt.Errorf("unable to create apiserver: event TTL %v is negative", cfg.EventTTL)
	}
	if cfg.MinRequestTimeout == 0 {
		cfg.MinRequestTimeout = 30 * time.Minute
	}
	if err := defaultFlowControl(&cfg); err != nil {
		return nil, fmt.Errorf("unable to create apiserver: %w", err)
	}
	auditing, err := newAuditing(cfg)
	if err != nil {
		return nil, fmt.Errorf("unable to create apiserver: %w", err)
	}
	// Privileged containers are allowed, as kubeadm and kind run
	// kube-apiserver (--allow-privileged=true; the reference peer too).
	// Process-wide, as in kube-apiserver; the first setting wins.
	capabilities.Setup(true, 0)
	if len(cfg.KubeletPreferredAddressTypes) == 0 {
		cfg.KubeletPreferredAddressTypes = []string{"InternalIP", "ExternalIP", "Hostname"}
	}
	if cfg.Services.ClusterIPRange == "" {
		cfg.Services.ClusterIPRange = "10.96.0.0/16"
	}
	if cfg.ServiceAccountIssuer == "" {
		cfg.ServiceAccountIssuer = "https://kubernetes.default.svc"
	}
	if len(cfg.AuthorizationModes) == 0 {
		cfg.AuthorizationModes = defaultAuthorizationModes
	}
	if err := validateAuthorizationModes(cfg.AuthorizationModes); err != nil {
		return nil, fmt.Errorf("unable to create apiserver: %w", err)
	}
	bindIP := net.ParseIP(cfg.BindAddress)
	if bindIP == nil {
		return nil, fmt.Errorf("unable to create apiserver: bind address %q is not an IP", cfg.BindAddress)
	}
	s := &Server{cfg: cfg, ready: make(chan struct{}), audit: auditing}
	tr := utiltrace.New("Build the API server")
	defer func() {
		if klog.V(2).Enabled() {
			tr.Log()
		}
	}()
	s.trace = tr
	s.lifetime, s.endLifetime = context.WithCancel(context.Background())
	s.chainWorkers = &handlerWorkers{work: make(chan func()), done: s.lifetime.Done()}
	s.drained, s.endDrained = context.WithCancel(context.Background())
	s.longRunning, s.endLongRunning = context.WithCancel(context.Background())
	s.pkiDir = cfg.PKIDir
	if s.pkiDir == "" && cfg.DataDir != "" {
		s.pkiDir = filepath.Join(cfg.DataDir, "pki")
	}
	if err := s.initPKI(bindIP); err != nil {
		return nil, err
	}
	tr.Step("PKI")
	saKey := cfg.ServiceAccountSigningKey
	if saKey == nil && s.pkiDir != "" {
		if saKey, err = pki.LoadOrCreateKey(filepath.Join(s.pkiDir, "sa.key")); err != nil {
			return nil, err
		}
	}
	if s.serviceAccounts, err = newServiceAccounts(cfg.ServiceAccountIssuer, saKey); err != nil {
		return nil, err
	}
	tr.Step("service account keys")
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("unable to listen: %w", err)
	}
	switch {
	case cfg.Storage != nil:
	case cfg.DataDir != "":
		// After the listener: a second server on the same port fails
		// before it would wait for the data dir's lock.
		d, err := datadir.Open(context.Background(), datadir.Config{Dir: cfg.DataDir, Clock: cfg.Clock, CompactionInterval: cfg.CompactionInterval, EncodedPrefixes: registry.EncodedPrefixes})
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.dataDir, s.cfg.Storage = d, d
	case cfg.Etcd != nil:
		client, err := etcdstore.NewClient(etcdstore.ClientConfig{Servers: cfg.Etcd.Servers, CAFile: cfg.Etcd.CAFile, CertFile: cfg.Etcd.CertFile, KeyFile: cfg.Etcd.KeyFile})
		if err != nil {
			ln.Close()
			return nil, err
		}
		interval := cfg.CompactionInterval
		if interval == 0 {
			interval = etcdstore.DefaultCompactionInterval
		}
		e, err := etcdstore.New(etcdstore.Config{Client: client, Prefix: cfg.Etcd.Prefix, CompactionInterval: interval, Clock: cfg.Clock})
		if err != nil {
			client.Close()
			ln.Close()
			return nil, err
		}
		s.etcd, s.etcdClient, s.cfg.Storage = e, client, e
	default:
		codec, err := encoding.NewCodec()
		if err != nil {
			ln.Close()
			return nil, err
		}
		m, err := memory.New(memory.Config{Clock: cfg.Clock, CompactionInterval: cfg.CompactionInterval, Codec: codec, EncodedPrefixes: registry.EncodedPrefixes})
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.memory, s.cfg.Storage = m, m
	}
	s.listener = ln
	tr.Step("listener and storage")
	// The server's own clients (its informers, admission plugins and the
	// custom resource server) call its handler in-process and in protobuf,
	// as kube-apiserver's loopback client speaks protobuf. Over TLS, HTTP/2
	// and JSON, the informers' watch of every pod took 6% of the API
	// server's CPU in a scheduler experiment.
	if s.loopbackConfig, err = s.InProcessRESTConfig("system:apiserver", user.SystemPrivilegedGroup); err != nil {
		ln.Close()
		return nil, err
	}
	s.loopbackConfig.ContentType = "application/vnd.kubernetes.protobuf"
	s.loopbackConfig.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	// kube-apiserver's loopback client has client-go's default user agent,
	// which names its command: the field manager of what it writes.
	s.loopbackConfig.UserAgent = loopbackManager + userAgentVersion(rest.DefaultKubernetesUserAgent())
	// One informer factory over this server feeds the authorizer and the
	// admission plugins, as kube-apiserver's loopback informers do.
	loopback, err := kubernetes.NewForConfig(rest.CopyConfig(s.loopbackConfig))
	if err != nil {
		ln.Close()
		return nil, err
	}
	transform := cfg.InformerTransform
	if transform == nil {
		transform = kstransform.DropManagedFields
	}
	s.informers = informers.NewSharedInformerFactoryWithOptions(loopback, 0, informers.WithTransform(transform))
	s.loopback = loopback
	crdClient, err := apiextensionsclient.NewForConfig(rest.CopyConfig(s.loopbackConfig))
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.crdInformers = apiextensionsinformers.NewSharedInformerFactoryWithOptions(crdClient, 0, apiextensionsinformers.WithTransform(transform))
	tr.Step("loopback clients")
	s.newFlowControl(loopback)
	s.serviceResolver = newServiceResolver(s.informers.Core().V1().Services().Lister(), s.URL())
	s.webhookAuth = webhook.NewDefaultAuthenticationInfoResolverWrapper(webhookProxyTransport(), nil, s.RESTConfig(), tracing.NewNoopTracerProvider())
	if s.authorizer, s.ruleResolver, err = newAuthorizer(s.informers, s.cfg.AuthorizationModes); err != nil {
		ln.Close()
		return nil, err
	}
	// The admission chain's construction starts beside the rest of the
	// build and the bootstrap (Start finishes it).
	s.admissionStarted = s.startAdmission()
	kubeletConn, err := newKubeletConnection(s)
	if err != nil {
		ln.Close()
		return nil, err
	}
	// TokenReviews are answered by the same authenticator as requests; it
	// reads the registry, which is built before it is first called.
	reg, err := registry.New(registry.Config{
		Storage:      s.cfg.Storage,
		Clock:        cfg.Clock,
		Services:     cfg.Services,
		Authorizer:   s.authorizer,
		RuleResolver: s.ruleResolver,
		TokenAuthenticator: authenticator.RequestFunc(func(req *http.Request) (*authenticator.Response, bool, error) {
			return s.tokenReviewAuthenticator.AuthenticateRequest(req)
		}),
		APIAudiences:         s.serviceAccounts.audiences(),
		ServiceAccountTokens: s.serviceAccounts.tokens(),
		KubeletConn:          kubeletConn,
		ProxyTransport:       webhookProxyTransport(),
		PodDisruptionBudgets: loopback.PolicyV1(),
		Namespaces:           loopback.CoreV1().Namespaces(),
		EventTTL:             cfg.EventTTL,
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("unable to build registry: %w", err)
	}
	s.registry = reg
	tr.Step("registry")
	// The bootstrap objects are created beside the handler's build (the
	// rest of New) and the admission chain's: they need only the registry
	// and, for an object whose managed fields the process has not
	// computed yet, the endpoints' field managers (apiBuilt).
	s.apiBuilt = make(chan struct{})
	// In two parts: the handler's build is shorter than the bootstrap,
	// whose second part the second CPU then takes.
	s.startBootstrap(bootstrapClusterRoles)
	s.startBootstrap(s.bootstrapOthers)
	defer func() {
		if err != nil {
			s.bootstrapping.cancel()
			closeOnce(s.apiBuilt)
			s.bootstrapping.wait()
		}
	}()
	saTokens, err := s.serviceAccounts.authenticators(reg.TokenGetter(), loopback.CoreV1())
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.tokens = tokenAuthenticator(s.serviceAccounts.audiences(), adminTokenAuthenticator(s.adminToken), saTokens...)
	s.tokenReviewAuthenticator = newTokenAuthenticator(s.tokens)
	if s.handler, err = s.buildHandler(); err != nil {
		ln.Close()
		return nil, err
	}
	tr.Step("handler")
	if s.aggregator, err = newAggregator(s, s.loopbackConfig); err != nil {
		ln.Close()
		return nil, err
	}
	s.startBootstrap(s.apiServiceObjects)
	return s, nil
}

func (s *Server) initPKI(bindIP net.IP) error {
	var err error
	if s.ca, err = pki.LoadOrCreateCA(s.pkiDir, "ca", "kubesim-ca"); err != nil {
		return err
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	if !bindIP.IsUnspecified() && !bindIP.IsLoopback() {
		ips = append(ips, bindIP)
	}
	// The kubernetes Service's ClusterIP, as kube-apiserver adds it: pods
	// on real nodes reach the API there.
	if _, cidr, err := netutils.ParseCIDRSloppy(s.cfg.Services.ClusterIPRange); err == nil {
		if ip, err := netutils.GetIndexedIP(cidr, 1); err == nil {
			ips = append(ips, ip)
		}
	}
	serving, err := s.ca.Issue(pki.CertOptions{CommonName: "kube-apiserver", DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}, IPs: ips, Server: true})
	if err != nil {
		return err
	}
	if s.serving, err = tls.X509KeyPair(serving.CertPEM, serving.KeyPEM); err != nil {
		return err
	}
	if s.admin, err = s.ca.Issue(pki.CertOptions{CommonName: "kubesim-admin", Organization: []string{"system:masters"}}); err != nil {
		return err
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	s.adminToken = hex.EncodeToString(b)
	return nil
}

// typeConverterKinds are the kinds whose OpenAPI models managed fields need.
func (s *Server) kinds() []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for _, g := range append([]*registry.Group{s.registry.Core}, s.registry.Groups...) {
		for _, gv := range g.Versions {
			for _, ep := range gv.Endpoints {
				if ep.Storage != nil && legacyscheme.Scheme.Recognizes(ep.Kind) {
					out = append(out, ep.Kind)
				}
			}
		}
	}
	return out
}

// routesKey names the served endpoints: servers with the same share their
// built-in OpenAPI documents.
func (s *Server) routesKey() string {
	var b strings.Builder
	for _, g := range append([]*registry.Group{s.registry.Core}, s.registry.Groups...) {
		for _, gv := range g.Versions {
			for _, ep := range gv.Endpoints {
				if ep.Storage != nil {
					fmt.Fprintf(&b, "%s/%s/%s;", ep.GroupVersion, ep.Resource, ep.Subresource)
				}
			}
		}
	}
	return b.String()
}

// openAPIPaths are the paths of the group versions whose OpenAPI v3
// documents are built from the routes (api/v1, apis/<group>/<version>).
func (s *Server) openAPIPaths() []string {
	var out []string
	for _, g := range append([]*registry.Group{s.registry.Core}, s.registry.Groups...) {
		if g.Name == openapi.EmbeddedGroup {
			continue
		}
		for _, gv := range g.Versions {
			for _, ep := range gv.Endpoints {
				if ep.Storage != nil {
					if g.Name == "" {
						out = append(out, "api/"+gv.GroupVersion.Version)
					} else {
						out = append(out, "apis/"+gv.GroupVersion.String())
					}
					break
				}
			}
		}
	}
	return out
}

func (s *Server) buildHandler() (http.Handler, error) {
	tr := s.trace
	typeConverter := openapi.TypeConverterInBackground(legacyscheme.Scheme, s.kinds())
	tr.Step("handler: type converter")
	// Built before the admission chain, which reads its discovery.
	s.openapi = openapi.New(func() (*restful.Container, error) { return s.restfulRoutes(typeConverter) }, openAPIVersion(), s.routesKey(), s.openAPIPaths())
	// The admission chain is built once the server's informers have
	// synced (buildAdmission, from Start); requests wait for it.
	admitting := &trackedAdmission{inflight: &s.admitting, built: make(chan struct{})}
	s.admission = admitting
	enabledAdmission, err := admissionPlugins(s.cfg.DisableAdmissionPlugins)
	if err != nil {
		return nil, err
	}
	preRegisterAdmissionInformers(s.informers, enabledAdmission)
	admit := admitting
	api, err := newAPIHandler(s.registry, typeConverter, admit, s.authorizer, s.cfg, noAdmissionHooks(s.informers))
	if err != nil {
		return nil, err
	}
	s.api = api
	close(s.apiBuilt)
	tr.Step("handler: API endpoints")

	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(http.NotFound)
	s.installHealth(r)
	r.HandleFunc("/version", s.version)
	r.Handle("/metrics", metricsHandler(s.registry))
	for prefix, h := range s.cfg.NonResourceHandlers {
		r.PathPrefix(prefix).Handler(h)
	}
	// Profiling, as kube-apiserver's default --profiling=true serves it.
	// (gorilla/mux takes the first route that matches: the named handlers
	// before the index's prefix.)
	// (No cmdline: kube-apiserver's index answers it, 404.)
	r.Handle("/debug/pprof", http.RedirectHandler("/debug/pprof/", http.StatusFound))
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.PathPrefix("/debug/pprof/").HandlerFunc(pprof.Index)
	if err := s.installDiscovery(r); err != nil {
		return nil, err
	}
	tr.Step("handler: discovery")
	crdClient, err := apiextensionsclient.NewForConfig(rest.CopyConfig(s.loopbackConfig))
	if err != nil {
		return nil, err
	}
	if s.crd, err = crdserver.New(crdserver.Config{
		Storage:             s.cfg.Storage,
		Client:              crdClient,
		Informers:           s.crdInformers,
		Admission:           admit,
		Authorizer:          s.authorizer,
		ServiceResolver:     s.serviceResolver,
		AuthResolverWrapper: s.webhookAuth,
		StaticModels:        openapi.CRDStaticModels,
		Aggregated:          s.aggregated,
		Root:                s.root,
		Clock:               s.cfg.Clock,
		MinRequestTimeout:   s.cfg.MinRequestTimeout,
		MaxRequestBodyBytes: s.cfg.MaxRequestBodyBytes,
	}); err != nil {
		return nil, err
	}
	api.crd = s.crd
	tr.Step("handler: custom resource server")
	api.remote = func(req *http.Request) http.Handler {
		if s.aggregator == nil {
			return nil
		}
		return s.aggregator.remote.handler(req)
	}
	openid := restful.NewContainer()
	if err := s.serviceAccounts.installOpenIDMetadata(openid, s.listener.Addr().String()); err != nil {
		return nil, err
	}
	r.Handle(serviceaccount.OpenIDConfigPath, openid)
	r.Handle(serviceaccount.JWKSPath, openid)
	crdLister := s.crdInformers.Apiextensions().V1().CustomResourceDefinitions().Lister()
	s.openapi.SetCRDs(func() ([]*apiextensionsv1.CustomResourceDefinition, error) {
		return crdLister.List(labels.Everything())
	})
	s.openapi.SetRemote(func() map[string]http.Handler {
		if s.aggregator == nil {
			return nil
		}
		return s.aggregator.remote.openAPIPaths()
	})
	s.openapi.Install(muxAdapter{r})
	r.PathPrefix("/api/").Handler(api)
	r.PathPrefix("/apis/").Handler(api)

	resolver := &request.RequestInfoFactory{
		APIPrefixes:          sets.NewString("api", "apis"),
		GrouplessAPIPrefixes: sets.NewString("api"),
	}
	// kube-apiserver's filters (k8s.io/apiserver's DefaultBuildHandlerChain),
	// in its order, for those kubesim has.
	var h http.Handler = apiFirst{api: api, router: r}
	h = genericfilters.WithAuthorization(h, s.authorizer, legacyscheme.Codecs)
	h = s.withFlowControl(h)
	h = impersonation.WithImpersonation(h, s.authorizer, legacyscheme.Codecs)
	h = genericfilters.WithAudit(h, s.audit.backend, s.audit.evaluator, isLongRunning)
	failed := genericfilters.WithFailedAuthenticationAudit(genericfilters.Unauthorized(legacyscheme.Codecs), s.audit.backend, s.audit.evaluator)
	h = genericfilters.WithAuthentication(h, newAuthenticator(s.ca.Cert, s.tokens), failed, nil, nil)
	// The warning recorder must be inside the timeout filter, which makes
	// adding warnings safe from its goroutine.
	h = genericfilters.WithWarningRecorder(h)
	// The timeout filter serves a request in a goroutine of its own, which
	// hands it to a kept one (see onWorkers) whose stack has grown already.
	h = onWorkers(h, s.chainWorkers)
	h = serverfilters.WithTimeoutForNonLongRunningRequests(h, isLongRunning)
	h = genericfilters.WithRequestDeadline(h, s.audit.backend, s.audit.evaluator, isLongRunning, legacyscheme.Codecs, s.cfg.RequestTimeout)
	h = s.trackRequests(h, isLongRunning)
	h = genericfilters.WithRequestInfo(h, resolver)
	h = genericfilters.WithRequestReceivedTimestamp(h)
	h = serverfilters.WithPanicRecovery(h, resolver)
	h = genericfilters.WithAuditInit(h)
	return h, nil
}

// apiFirst hands the requests for API resources (paths below a group
// version: /api/v1/..., /apis/<group>/<version>/...) straight to the API
// handler, which the router would hand them to only after trying each of
// its routes, two for every group and group version's discovery document
// among them, and finding none matches: on 5,000 idle nodes that matching
// took 4% of the process's CPU. No other route of the router matches such a
// path. The other requests, and paths the router would clean (and redirect
// to their clean form), go through the router.
type apiFirst struct{ api, router http.Handler }

func (a apiFirst) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if isResourcePath(req.URL.Path) {
		a.api.ServeHTTP(w, req)
		return
	}
	a.router.ServeHTTP(w, req)
}

// isResourcePath reports whether p, clean, has a segment after an API group
// version's: /api/<version>/<more> or /apis/<group>/<version>/<more>.
func isResourcePath(p string) bool {
	var rest string
	var versionSegments int
	switch {
	case strings.HasPrefix(p, "/api/"):
		rest, versionSegments = p[len("/api/"):], 1
	case strings.HasPrefix(p, "/apis/"):
		rest, versionSegments = p[len("/apis/"):], 2
	default:
		return false
	}
	for range versionSegments {
		i := strings.IndexByte(rest, '/')
		if i <= 0 {
			return false
		}
		rest = rest[i+1:]
	}
	if rest == "" {
		return false
	}
	// As gorilla/mux cleans a path: path.Clean, keeping a trailing slash.
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") {
		clean += "/"
	}
	return clean == p
}

// userAgentVersion is what follows the command in a user agent of client-go
// ("/v1.37.2 (linux/amd64) kubernetes/$Format").
func userAgentVersion(ua string) string {
	if i := strings.Index(ua, "/"); i >= 0 {
		return ua[i:]
	}
	return ""
}

// Version is the Kubernetes version kubesim serves: the pinned
// k8s.io/kubernetes module's.
func Version() version.Info { return versionInfo() }

// versionInfo reads the build information once: reading it parses the
// binary's module list, and each start of a server asked for it once per
// resource (4 ms).
var versionInfo = sync.OnceValue(func() version.Info {
	v := "v1.37.2"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/kubernetes" {
				v = d.Version
			}
		}
	}
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	info := version.Info{GitVersion: v, GitTreeState: "clean", GoVersion: goruntime.Version(), Compiler: goruntime.Compiler, Platform: goruntime.GOOS + "/" + goruntime.GOARCH, BuildDate: "1970-01-01T00:00:00Z"}
	if len(parts) >= 2 {
		info.Major, info.Minor = parts[0], parts[1]
	}
	return info
})

func (s *Server) version(w http.ResponseWriter, req *http.Request) {
	responsewriters.WriteRawJSON(http.StatusOK, Version(), w)
}

// muxAdapter lets kube-openapi's handlers register on a gorilla/mux router.
type muxAdapter struct{ r *mux.Router }

func (m muxAdapter) Handle(path string, h http.Handler)       { m.r.Handle(path, h) }
func (m muxAdapter) HandlePrefix(path string, h http.Handler) { m.r.PathPrefix(path).Handler(h) }
