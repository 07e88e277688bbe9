package apiserver

import (
	"context"
	"fmt"
	"io"

	"k8s.io/apiserver/pkg/admission/initializer"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/kubernetes/plugin/pkg/admission/defaulttolerationseconds"
	"k8s.io/kubernetes/plugin/pkg/admission/nodetaint"
	"k8s.io/kubernetes/plugin/pkg/admission/storage/storageobjectinuseprotection"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	api "k8s.io/kubernetes/pkg/apis/core"

	"github.com/kubesim/kubesim/apiserver/registry"
)

// immortalNamespaces may not be deleted, as in kube-apiserver.
var immortalNamespaces = map[string]bool{metav1.NamespaceDefault: true, metav1.NamespaceSystem: true, metav1.NamespacePublic: true}

// namespaceLifecycle is the NamespaceLifecycle admission plugin: no new
// objects in a missing or terminating namespace, and no deletion of the
// immortal namespaces. It reads namespaces from the registry directly.
type namespaceLifecycle struct {
	namespaces *registry.Store
}

var _ admission.ValidationInterface = (*namespaceLifecycle)(nil)

func (l *namespaceLifecycle) Handles(op admission.Operation) bool { return true }

func (l *namespaceLifecycle) Validate(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	nsResource := schema.GroupResource{Resource: "namespaces"}
	if a.GetKind().GroupKind() == api.Kind("Namespace") || a.GetResource().GroupResource() == nsResource && a.GetSubresource() == "" {
		if a.GetOperation() == admission.Delete && immortalNamespaces[a.GetName()] {
			return apierrors.NewForbidden(a.GetResource().GroupResource(), a.GetName(), fmt.Errorf("this namespace may not be deleted"))
		}
		return nil
	}
	if a.GetOperation() != admission.Create || a.GetNamespace() == "" {
		return nil
	}
	// Subresources such as pods/binding and serviceaccounts/token act on
	// existing objects; kube-apiserver lets them through.
	if a.GetSubresource() != "" {
		return nil
	}
	nsCtx := genericapirequest.WithNamespace(ctx, "")
	obj, err := l.namespaces.Get(nsCtx, a.GetNamespace(), &metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return apierrors.NewNotFound(corev1.Resource("namespaces"), a.GetNamespace())
	}
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if ns, ok := obj.(*api.Namespace); ok && ns.Status.Phase == api.NamespaceTerminating {
		err := apierrors.NewForbidden(a.GetResource().GroupResource(), a.GetName(),
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", a.GetNamespace()))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type:    corev1.NamespaceTerminatingCause,
			Message: fmt.Sprintf("namespace %s is being terminated", a.GetNamespace()),
			Field:   "metadata.namespace",
		})
		return err
	}
	return nil
}

// builtinPlugins are kube-apiserver's default-enabled admission plugins
// that kubesim runs, in kube-apiserver's order. They are upstream's own
// (k8s.io/kubernetes/plugin/pkg/admission), registered and built the way
// kube-apiserver builds them.
var builtinPlugins = []string{
	nodetaint.PluginName,                    // TaintNodesByCondition
	defaulttolerationseconds.PluginName,     // DefaultTolerationSeconds
	storageobjectinuseprotection.PluginName, // StorageObjectInUseProtection
}

// newAdmission returns the admission chain: namespace lifecycle, then the
// built-in plugins.
func newAdmission(namespaces *registry.Store) (admission.Interface, error) {
	plugins := admission.NewPlugins()
	nodetaint.Register(plugins)
	defaulttolerationseconds.Register(plugins)
	storageobjectinuseprotection.Register(plugins)
	builtins, err := plugins.NewFromPlugins(builtinPlugins, noPluginConfig{}, featureInitializer{}, nil)
	if err != nil {
		return nil, fmt.Errorf("unable to build admission plugins: %w", err)
	}
	return admission.NewChainHandler(&namespaceLifecycle{namespaces: namespaces}, builtins), nil
}

// noPluginConfig gives every plugin its default configuration.
type noPluginConfig struct{}

func (noPluginConfig) ConfigFor(string) (io.Reader, error) { return nil, nil }

// featureInitializer hands plugins the feature gates, as kube-apiserver's
// generic initializer does.
type featureInitializer struct{}

func (featureInitializer) Initialize(p admission.Interface) {
	if w, ok := p.(initializer.WantsFeatures); ok {
		w.InspectFeatureGates(utilfeature.DefaultFeatureGate)
	}
}
