package apiserver

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/initializer"
	admissionmetrics "k8s.io/apiserver/pkg/admission/metrics"
	webhookinit "k8s.io/apiserver/pkg/admission/plugin/webhook/initializer"
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
	"k8s.io/component-base/compatibility"
	controlplaneadmission "k8s.io/kubernetes/pkg/controlplane/apiserver/admission"
	kubeapiserveradmission "k8s.io/kubernetes/pkg/kubeapiserver/admission"
	"k8s.io/kubernetes/pkg/kubeapiserver/admission/exclusion"
	kubeoptions "k8s.io/kubernetes/pkg/kubeapiserver/options"
	quotainstall "k8s.io/kubernetes/pkg/quota/v1/install"
)

// admissionPlugins returns kube-apiserver's default-on admission plugins,
// in its order: the built-in ones, MutatingAdmissionPolicy,
// MutatingAdmissionWebhook, ValidatingAdmissionPolicy,
// ValidatingAdmissionWebhook and ResourceQuota.
func admissionPlugins() []string {
	off := kubeoptions.DefaultOffAdmissionPlugins()
	var names []string
	for _, n := range kubeoptions.AllOrderedPlugins {
		if !off.Has(n) {
			names = append(names, n)
		}
	}
	return names
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
	// ready is closed once the server is ready: the plugins' requests for
	// the OpenAPI documents wait for it.
	ready <-chan struct{}
}

// newAdmission builds kube-apiserver's admission chain the way
// kube-apiserver builds it (k8s.io/apiserver's AdmissionOptions.ApplyTo and
// kube-apiserver's plugin initializers): the plugins registered by
// k8s.io/kubernetes, initialized with a loopback client, a shared informer
// factory over this server (started once the server serves), a discovery
// REST mapper (reset every 30 s, as kube-apiserver's), and the webhook
// initializer's service resolver and credentials. The returned function
// starts what runs beside the chain.
func newAdmission(cfg admissionConfig) (admission.Interface, func(), error) {
	// MutatingAdmissionPolicy polls /openapi/v3 from the moment it is built
	// (for the schemas its apply configurations need); building the
	// documents takes a quarter of a second, which would otherwise land in
	// the middle of the server's start.
	loopback := rest.CopyConfig(cfg.loopback)
	loopback.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if strings.HasPrefix(req.URL.Path, "/openapi/") {
				select {
				case <-cfg.ready:
				case <-req.Context().Done():
					return nil, req.Context().Err()
				}
			}
			return rt.RoundTrip(req)
		})
	})
	client, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(loopback)
	if err != nil {
		return nil, nil, err
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
		return nil, nil, err
	}
	// The admission policies' param kinds are mapped through discovery.
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cacheddiscovery.NewMemCacheClient(client.Discovery()))
	initializers := admission.PluginInitializers{
		initializer.NewAPIServerIDInitializer(cfg.apiServerID),
		initializer.New(client, dyn, cfg.factory, cfg.authz, utilfeature.DefaultFeatureGate, effective, cfg.stop, mapper),
		webhookinit.NewPluginInitializer(cfg.webhookAuth, cfg.serviceResolver),
		kubeapiserveradmission.NewPluginInitializer(),
		controlplaneadmission.NewPluginInitializer(quotaConfiguration, exclusion.Excluded()),
	}
	chain, err := plugins.NewFromPlugins(admissionPlugins(), noPluginConfig{}, initializers,
		admission.Decorators{admission.DecoratorFunc(admissionmetrics.WithControllerMetrics)})
	if err != nil {
		return nil, nil, fmt.Errorf("unable to build admission plugins: %w", err)
	}
	start := func() {
		mapper.Reset()
		go wait.Until(mapper.Reset, 30*time.Second, cfg.stop)
	}
	return admissionmetrics.WithStepMetrics(chain), start, nil
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// noPluginConfig gives every plugin its default configuration, as
// kube-apiserver without --admission-control-config-file.
type noPluginConfig struct{}

func (noPluginConfig) ConfigFor(string) (io.Reader, error) { return nil, nil }
