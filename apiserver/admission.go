package apiserver

import (
	"fmt"
	"io"
	"strings"

	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/initializer"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapiserver "k8s.io/apiserver/pkg/server"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/component-base/compatibility"
	controlplaneadmission "k8s.io/kubernetes/pkg/controlplane/apiserver/admission"
	kubeapiserveradmission "k8s.io/kubernetes/pkg/kubeapiserver/admission"
	"k8s.io/kubernetes/pkg/kubeapiserver/admission/exclusion"
	kubeoptions "k8s.io/kubernetes/pkg/kubeapiserver/options"
	quotainstall "k8s.io/kubernetes/pkg/quota/v1/install"
)

// deferredPlugins are default-on in kube-apiserver but not run by kubesim
// yet: they need webhook clients or CEL policy machinery (see the
// operator-fixture issue).
var deferredPlugins = map[string]bool{
	"MutatingAdmissionPolicy":    true,
	"MutatingAdmissionWebhook":   true,
	"ValidatingAdmissionPolicy":  true,
	"ValidatingAdmissionWebhook": true,
}

// admissionPlugins returns kube-apiserver's default-on admission plugins,
// in its order, less the deferred ones.
func admissionPlugins() []string {
	off := kubeoptions.DefaultOffAdmissionPlugins()
	var names []string
	for _, n := range kubeoptions.AllOrderedPlugins {
		if !off.Has(n) && !deferredPlugins[n] {
			names = append(names, n)
		}
	}
	return names
}

// newAdmission builds kube-apiserver's own admission plugins the way
// kube-apiserver builds them: registered by k8s.io/kubernetes, initialized
// with a loopback client and a shared informer factory over this server.
// The factory is started once the server serves.
func newAdmission(loopback *rest.Config, factory informers.SharedInformerFactory, authz authorizer.Authorizer, stop <-chan struct{}) (admission.Interface, error) {
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
	quotaConfiguration, err := quotainstall.NewQuotaConfigurationForAdmission(factory, nil)
	if err != nil {
		return nil, err
	}
	initializers := admission.PluginInitializers{
		initializer.New(client, dyn, factory, authz, utilfeature.DefaultFeatureGate, effective, stop, nil),
		kubeapiserveradmission.NewPluginInitializer(),
		controlplaneadmission.NewPluginInitializer(quotaConfiguration, exclusion.Excluded()),
	}
	chain, err := plugins.NewFromPlugins(admissionPlugins(), noPluginConfig{}, initializers, nil)
	if err != nil {
		return nil, fmt.Errorf("unable to build admission plugins: %w", err)
	}
	return chain, nil
}

// noPluginConfig gives every plugin its default configuration.
type noPluginConfig struct{}

func (noPluginConfig) ConfigFor(string) (io.Reader, error) { return nil, nil }
