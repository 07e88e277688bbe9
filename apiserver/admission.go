package apiserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/initializer"
	admissionmetrics "k8s.io/apiserver/pkg/admission/metrics"
	mutatingadmissionpolicy "k8s.io/apiserver/pkg/admission/plugin/policy/mutating"
	validatingadmissionpolicy "k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	webhookinit "k8s.io/apiserver/pkg/admission/plugin/webhook/initializer"
	mutatingwebhook "k8s.io/apiserver/pkg/admission/plugin/webhook/mutating"
	validatingwebhook "k8s.io/apiserver/pkg/admission/plugin/webhook/validating"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapiserver "k8s.io/apiserver/pkg/server"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/apiserver/pkg/util/webhook"
	cacheddiscovery "k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/compatibility"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/handler3"
	controlplaneadmission "k8s.io/kubernetes/pkg/controlplane/apiserver/admission"
	kubeapiserveradmission "k8s.io/kubernetes/pkg/kubeapiserver/admission"
	"k8s.io/kubernetes/pkg/kubeapiserver/admission/exclusion"
	kubeoptions "k8s.io/kubernetes/pkg/kubeapiserver/options"
	quotainstall "k8s.io/kubernetes/pkg/quota/v1/install"
	"k8s.io/kubernetes/plugin/pkg/admission/noderestriction"
)

// admissionPlugins returns kube-apiserver's default-on admission plugins
// and NodeRestriction (on in every kubeadm cluster, with the Node
// authorizer), in its order: the built-in ones, MutatingAdmissionPolicy,
// MutatingAdmissionWebhook, ValidatingAdmissionPolicy,
// ValidatingAdmissionWebhook and ResourceQuota; less those disabled, as
// --disable-admission-plugins. A disabled name that is not a plugin is an
// error, as kube-apiserver's.
func admissionPlugins(disabled []string) ([]string, error) {
	off := kubeoptions.DefaultOffAdmissionPlugins()
	known := sets.New(kubeoptions.AllOrderedPlugins...)
	for _, n := range disabled {
		if !known.Has(n) {
			return nil, fmt.Errorf("DisableAdmissionPlugins: %q is not an admission plugin; known: %s", n, strings.Join(kubeoptions.AllOrderedPlugins, ", "))
		}
	}
	var names []string
	for _, n := range kubeoptions.AllOrderedPlugins {
		if (!off.Has(n) || n == noderestriction.PluginName) && !slices.Contains(disabled, n) {
			names = append(names, n)
		}
	}
	return names, nil
}

// admissionConfig is what the admission chain is built from.
type admissionConfig struct {
	loopback *rest.Config
	factory  informers.SharedInformerFactory
	authz    authorizer.Authorizer
	// serviceResolver and webhookAuth reach the webhooks.
	serviceResolver webhook.ServiceResolver
	webhookAuth     webhook.AuthenticationInfoResolverWrapper
	// apiServerID labels the plugins' metrics.
	apiServerID string
	stop        <-chan struct{}
	// openAPIPaths lists the group versions of /openapi/v3 without
	// building their documents.
	openAPIPaths func() (map[string]string, error)
	// disabled are plugins turned off (Config.DisableAdmissionPlugins).
	disabled []string
}

// earlyPlugins are the plugins an admissionBuilder builds while the
// server is built and bootstraps: the webhook plugins, whose construction
// (it compiles their CEL environments for match conditions) is most of the
// chain's, and which start nothing that runs until a request comes. The
// others are built once the server's informers have synced: the admission
// policy plugins start their policy sources as they are built, which poll
// every 100 ms until their informers have synced; and building the others
// early, the informers they ask for with the server's, measured slower
// (median start-to-ready 124 ms against 109 ms, 30 starts each).
var earlyPlugins = sets.New(mutatingwebhook.PluginName, validatingwebhook.PluginName)

// admissionBuilder builds the admission chain in two parts: the early
// plugins (buildEarly), while the server is built and bootstraps, then the
// others and the chain, once its informers have synced (build).
type admissionBuilder struct {
	cfg          admissionConfig
	plugins      *admission.Plugins
	initializers admission.PluginInitializers
	decorators   admission.Decorators
	mapper       *restmapper.DeferredDiscoveryRESTMapper
	enabled      []string
	// built are the plugins built so far, initialized and validated.
	built map[string]admission.Interface
}

// newAdmissionBuilder prepares kube-apiserver's admission chain the way
// kube-apiserver builds it (k8s.io/apiserver's AdmissionOptions.ApplyTo and
// kube-apiserver's plugin initializers): the plugins registered by
// k8s.io/kubernetes, initialized with a loopback client, a shared informer
// factory over this server (started once the server serves), a discovery
// REST mapper (reset every 30 s, as kube-apiserver's), and the webhook
// initializer's service resolver and credentials.
func newAdmissionBuilder(cfg admissionConfig) (*admissionBuilder, error) {
	// MutatingAdmissionPolicy polls /openapi/v3 every five seconds from the
	// moment it is built, for the schemas its apply configurations need.
	// Building the documents takes most of a second of CPU and 80 MB, so
	// its discovery document is answered from the list of group versions,
	// and a document is built only when a policy needs one.
	loopback := rest.CopyConfig(cfg.loopback)
	loopback.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &lazyOpenAPI{delegate: rt, paths: cfg.openAPIPaths}
	})
	client, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(loopback)
	if err != nil {
		return nil, err
	}
	plugins := admission.NewPlugins()
	genericapiserver.RegisterAllAdmissionPlugins(plugins)
	kubeoptions.RegisterAllAdmissionPlugins(plugins)
	v := Version()
	effective := compatibility.NewEffectiveVersionFromString(strings.TrimPrefix(v.GitVersion, "v"), "", "")
	// ResourceQuota evaluates usage with kube-apiserver's quota
	// configuration (the core evaluators over the shared informers).
	quotaConfiguration, err := quotainstall.NewQuotaConfigurationForAdmission(cfg.factory, nil)
	if err != nil {
		return nil, err
	}
	// The admission policies' param kinds are mapped through discovery.
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cacheddiscovery.NewMemCacheClient(client.Discovery()))
	enabled, err := admissionPlugins(cfg.disabled)
	if err != nil {
		return nil, err
	}
	return &admissionBuilder{
		cfg:     cfg,
		plugins: plugins,
		initializers: admission.PluginInitializers{
			initializer.NewAPIServerIDInitializer(cfg.apiServerID),
			initializer.New(client, dyn, cfg.factory, cfg.authz, utilfeature.DefaultFeatureGate, effective, cfg.stop, mapper),
			webhookinit.NewPluginInitializer(cfg.webhookAuth, cfg.serviceResolver),
			kubeapiserveradmission.NewPluginInitializer(),
			controlplaneadmission.NewPluginInitializer(quotaConfiguration, exclusion.Excluded()),
		},
		decorators: admission.Decorators{skipUnconfigured(cfg.factory), admission.DecoratorFunc(admissionmetrics.WithControllerMetrics)},
		mapper:     mapper,
		enabled:    enabled,
		built:      map[string]admission.Interface{},
	}, nil
}

// buildEarly builds the enabled early plugins, each as NewFromPlugins
// builds it (initialized and validated).
func (b *admissionBuilder) buildEarly() error {
	for _, name := range b.enabled {
		if earlyPlugins.Has(name) {
			if err := b.init(name); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *admissionBuilder) init(name string) error {
	p, err := b.plugins.InitPlugin(name, nil, b.initializers)
	if err != nil {
		return fmt.Errorf("unable to build admission plugins: %w", err)
	}
	b.built[name] = p
	return nil
}

// build builds the other plugins, once buildEarly has returned, and
// returns the chain: NewFromPlugins's, over plugins that are those built,
// so that it is kube-apiserver's, one chain in its order, decorated, in
// one reinvocation handler (which runs the whole chain again when a
// mutating webhook asks for it).
func (b *admissionBuilder) build() (admission.Interface, func(), error) {
	built := admission.NewPlugins()
	for _, name := range b.enabled {
		if _, ok := b.built[name]; !ok {
			if err := b.init(name); err != nil {
				return nil, nil, err
			}
		}
		p := builtPlugin(b.built[name])
		built.Register(name, func(io.Reader) (admission.Interface, error) { return p, nil })
	}
	chain, err := built.NewFromPlugins(b.enabled, noPluginConfig{}, admission.PluginInitializers{}, b.decorators)
	if err != nil {
		return nil, nil, fmt.Errorf("unable to build admission plugins: %w", err)
	}
	start := func() {
		b.mapper.Reset()
		go wait.Until(b.mapper.Reset, 30*time.Second, b.cfg.stop)
	}
	return admissionmetrics.WithStepMetrics(chain), start, nil
}

// builtPlugin is p as the chain calls it, and nothing more: the
// interfaces by which plugins are initialized and validated are hidden,
// which were called as p was built.
func builtPlugin(p admission.Interface) admission.Interface {
	m, mutates := p.(admission.MutationInterface)
	v, validates := p.(admission.ValidationInterface)
	switch {
	case mutates && validates:
		return mutatingAndValidating{m, v}
	case mutates:
		return mutating{m}
	case validates:
		return validating{v}
	}
	return handles{p}
}

type (
	handles               struct{ admission.Interface }
	mutating              struct{ admission.MutationInterface }
	validating            struct{ admission.ValidationInterface }
	mutatingAndValidating struct {
		admission.MutationInterface
		validate admission.ValidationInterface
	}
)

func (p mutatingAndValidating) Validate(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	return p.validate.Validate(ctx, a, o)
}

// lazyOpenAPI answers a client's GET /openapi/v3 from the list of group
// versions, with keys for hashes, and fetches the documents it then asks
// for without those keys.
type lazyOpenAPI struct {
	delegate http.RoundTripper
	paths    func() (map[string]string, error)
}

func (l *lazyOpenAPI) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case req.URL.Path == "/openapi/v3" && req.Method == http.MethodGet:
		paths, err := l.paths()
		if err != nil {
			return nil, err
		}
		doc := handler3.OpenAPIV3Discovery{Paths: map[string]handler3.OpenAPIV3DiscoveryGroupVersion{}}
		for p, key := range paths {
			u := url.URL{Path: "/openapi/v3/" + p, RawQuery: url.Values{"hash": {fmt.Sprintf("%x", sha256.Sum256([]byte(key)))}}.Encode()}
			doc.Paths[p] = handler3.OpenAPIV3DiscoveryGroupVersion{ServerRelativeURL: u.String()}
		}
		b, err := json.Marshal(doc)
		if err != nil {
			return nil, err
		}
		return &http.Response{
			StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"application/json"}},
			Body:          io.NopCloser(bytes.NewReader(b)),
			ContentLength: int64(len(b)),
			Request:       req,
		}, nil
	case strings.HasPrefix(req.URL.Path, "/openapi/v3/") && req.URL.Query().Has("hash"):
		req = req.Clone(req.Context())
		q := req.URL.Query()
		q.Del("hash")
		req.URL.RawQuery = q.Encode()
	}
	return l.delegate.RoundTrip(req)
}

// noPluginConfig gives every plugin its default configuration, as
// kube-apiserver without --admission-control-config-file.
type noPluginConfig struct{}

func (noPluginConfig) ConfigFor(string) (io.Reader, error) { return nil, nil }

// trackedAdmission counts the admission calls in flight, so that shutdown
// stops the plugins' workers once none is left: a request's handler may
// return (its client gone) while the request goes on in the background,
// in admission.
type trackedAdmission struct {
	inflight *requestTracker
	// built is closed once delegate is set (Server.buildAdmission).
	built    chan struct{}
	delegate admission.Interface
}

var (
	_ admission.MutationInterface   = (*trackedAdmission)(nil)
	_ admission.ValidationInterface = (*trackedAdmission)(nil)
)

// chain waits until the chain is built.
func (a *trackedAdmission) chain(ctx context.Context) (admission.Interface, error) {
	select {
	case <-a.built:
		return a.delegate, nil
	case <-ctx.Done():
		return nil, apierrors.NewServiceUnavailable("the admission chain is not built yet")
	}
}

func (a *trackedAdmission) Handles(op admission.Operation) bool {
	<-a.built
	return a.delegate.Handles(op)
}

func (a *trackedAdmission) Admit(ctx context.Context, attr admission.Attributes, o admission.ObjectInterfaces) error {
	chain, err := a.chain(ctx)
	if err != nil {
		return err
	}
	m, ok := chain.(admission.MutationInterface)
	if !ok {
		return nil
	}
	a.inflight.begin()
	defer a.inflight.end()
	return m.Admit(ctx, attr, o)
}

func (a *trackedAdmission) Validate(ctx context.Context, attr admission.Attributes, o admission.ObjectInterfaces) error {
	chain, err := a.chain(ctx)
	if err != nil {
		return err
	}
	v, ok := chain.(admission.ValidationInterface)
	if !ok {
		return nil
	}
	a.inflight.begin()
	defer a.inflight.end()
	return v.Validate(ctx, attr, o)
}

// skipUnconfigured leaves out the webhook and policy admission plugins
// while nothing configures them: with no webhook configuration or policy,
// kube-apiserver's plugins do nothing but cost (the mutating webhook
// plugin copies every object it is shown; 3% of the API server's CPU in a
// scheduler experiment; the mutating policy plugin's dispatch 0.8% of a
// ConfigMap create's and 0.5% of 5,000 idle nodes'). The plugins still
// run, and answer as they do, until their informers have synced, and as
// soon as a configuration exists.
func skipUnconfigured(factory informers.SharedInformerFactory) admission.Decorator {
	return admission.DecoratorFunc(func(handler admission.Interface, name string) admission.Interface {
		var informer cache.SharedIndexInformer
		switch name {
		case mutatingwebhook.PluginName:
			informer = factory.Admissionregistration().V1().MutatingWebhookConfigurations().Informer()
		case validatingwebhook.PluginName:
			informer = factory.Admissionregistration().V1().ValidatingWebhookConfigurations().Informer()
		case validatingadmissionpolicy.PluginName:
			informer = factory.Admissionregistration().V1().ValidatingAdmissionPolicies().Informer()
		case mutatingadmissionpolicy.PluginName:
			informer = factory.Admissionregistration().V1().MutatingAdmissionPolicies().Informer()
		default:
			return handler
		}
		unconfigured := syncedAndEmpty(informer)
		switch h := handler.(type) {
		case admission.MutationInterface:
			if _, ok := handler.(admission.ValidationInterface); ok {
				return handler // both: not one of the plugins above
			}
			return &skippedMutation{MutationInterface: h, unconfigured: unconfigured}
		case admission.ValidationInterface:
			return &skippedValidation{ValidationInterface: h, unconfigured: unconfigured}
		}
		return handler
	})
}

type skippedMutation struct {
	admission.MutationInterface
	unconfigured func() bool
}

func (s *skippedMutation) Admit(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	if s.unconfigured() {
		return nil
	}
	return s.MutationInterface.Admit(ctx, a, o)
}

type skippedValidation struct {
	admission.ValidationInterface
	unconfigured func() bool
}

func (s *skippedValidation) Validate(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	if s.unconfigured() {
		return nil
	}
	return s.ValidationInterface.Validate(ctx, a, o)
}

// noAdmissionHooks reports whether no admission webhook or policy exists
// (their informers synced and empty): then nothing outside the server sees
// the objects admission is shown.
func noAdmissionHooks(factory informers.SharedInformerFactory) func() bool {
	ar := factory.Admissionregistration().V1()
	return syncedAndEmpty(
		ar.MutatingWebhookConfigurations().Informer(),
		ar.ValidatingWebhookConfigurations().Informer(),
		ar.ValidatingAdmissionPolicies().Informer(),
		ar.MutatingAdmissionPolicies().Informer(),
	)
}

// syncedAndEmpty reports whether every informer has synced and holds
// nothing.
func syncedAndEmpty(informers ...cache.SharedIndexInformer) func() bool {
	return func() bool {
		for _, i := range informers {
			if !i.HasSynced() || len(i.GetStore().ListKeys()) > 0 {
				return false
			}
		}
		return true
	}
}

// startAdmission starts building the admission chain (the early plugins)
// in the background, while the server's handler is built and it
// bootstraps; buildAdmission finishes it. Those plugins start nothing that
// runs: if the server is not started, what was built is dropped.
func (s *Server) startAdmission() <-chan admissionStart {
	done := make(chan admissionStart, 1)
	go func() {
		b, err := newAdmissionBuilder(admissionConfig{
			loopback:        rest.CopyConfig(s.loopbackConfig),
			factory:         s.informers,
			authz:           s.authorizer,
			serviceResolver: s.serviceResolver,
			webhookAuth:     s.webhookAuth,
			apiServerID:     "kube-apiserver-" + string(uuid.NewUUID()),
			stop:            s.drained.Done(),
			openAPIPaths:    func() (map[string]string, error) { return s.openapi.DiscoveryPaths() },
			disabled:        s.cfg.DisableAdmissionPlugins,
		})
		if err == nil {
			err = b.buildEarly()
		}
		done <- admissionStart{b, err}
	}()
	return done
}

// admissionStart is what startAdmission built.
type admissionStart struct {
	builder *admissionBuilder
	err     error
}

// buildAdmission builds the rest of the admission chain (b, from
// startAdmission), once the server's informers have synced, and lets the
// requests waiting for it through. Built then, the plugins that wait for
// their informers by polling every 100 ms (the admission policies'
// sources) find them synced at their first look, and the first requests
// are not held a tenth of a second.
func (s *Server) buildAdmission(ctx context.Context, b *admissionBuilder) error {
	// The informers started so far, all synced.
	started := s.informers.WaitForCacheSync(ctx.Done())
	chain, start, err := b.build()
	if err != nil {
		return err
	}
	// Informers a plugin asked for that preRegisterAdmissionInformers did
	// not: started and synced now, before any request reaches the plugin.
	s.informers.Start(s.lifetime.Done())
	for typ, ok := range s.informers.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("the admission chain's %v informer did not sync: %w", typ, ctx.Err())
		}
		if _, ok := started[typ]; !ok {
			s.lateAdmissionInformers = append(s.lateAdmissionInformers, typ)
		}
	}
	if len(s.lateAdmissionInformers) > 0 {
		klog.FromContext(ctx).V(2).Info("Admission plugins' informers started after the server's", "types", s.lateAdmissionInformers)
	}
	s.admission.delegate = chain
	close(s.admission.built)
	start()
	return nil
}

// preRegisterAdmissionInformers asks the factory for the informers the
// enabled admission plugins ask for when the chain is built (build), so
// that they start and sync with the server's others: the admission
// policies' sources then find theirs synced at their first look (which
// otherwise costs them, and the first requests, 100 ms), and buildAdmission
// has none left to start and wait for (ten informers, a second round of
// lists before the server is ready). TestAdmissionInformersPreRegistered
// fails when a plugin asks for one not here.
func preRegisterAdmissionInformers(f informers.SharedInformerFactory, enabled []string) {
	f.Core().V1().Namespaces().Informer()
	f.Admissionregistration().V1().ValidatingAdmissionPolicies().Informer()
	f.Admissionregistration().V1().ValidatingAdmissionPolicyBindings().Informer()
	f.Admissionregistration().V1().MutatingAdmissionPolicies().Informer()
	f.Admissionregistration().V1().MutatingAdmissionPolicyBindings().Informer()
	for _, name := range enabled {
		for _, informer := range admissionPluginInformers[name] {
			informer(f)
		}
	}
}

// admissionPluginInformers are the informers each admission plugin asks
// for (its SetExternalKubeInformerFactory) but those of every server.
var admissionPluginInformers = map[string][]func(informers.SharedInformerFactory){
	"LimitRanger":    {func(f informers.SharedInformerFactory) { f.Core().V1().LimitRanges().Informer() }},
	"ServiceAccount": {func(f informers.SharedInformerFactory) { f.Core().V1().ServiceAccounts().Informer() }},
	"NodeRestriction": {
		func(f informers.SharedInformerFactory) { f.Core().V1().Nodes().Informer() },
		func(f informers.SharedInformerFactory) { f.Core().V1().ServiceAccounts().Informer() },
		func(f informers.SharedInformerFactory) { f.Core().V1().PersistentVolumeClaims().Informer() },
		func(f informers.SharedInformerFactory) { f.Storage().V1().CSIDrivers().Informer() },
	},
	"PodTopologyLabels":            {func(f informers.SharedInformerFactory) { f.Core().V1().Nodes().Informer() }},
	"NodeDeclaredFeatureValidator": {func(f informers.SharedInformerFactory) { f.Core().V1().Nodes().Informer() }},
	"PodResizeValidator":           {func(f informers.SharedInformerFactory) { f.Core().V1().Nodes().Informer() }},
	"DefaultIngressClass":          {func(f informers.SharedInformerFactory) { f.Networking().V1().IngressClasses().Informer() }},
	"DefaultStorageClass":          {func(f informers.SharedInformerFactory) { f.Storage().V1().StorageClasses().Informer() }},
	"PersistentVolumeClaimResize":  {func(f informers.SharedInformerFactory) { f.Storage().V1().StorageClasses().Informer() }},
	"RuntimeClass":                 {func(f informers.SharedInformerFactory) { f.Node().V1().RuntimeClasses().Informer() }},
	"ResourceQuota":                {func(f informers.SharedInformerFactory) { f.Core().V1().ResourceQuotas().Informer() }},
	"Priority":                     {func(f informers.SharedInformerFactory) { f.Scheduling().V1().PriorityClasses().Informer() }},
}
