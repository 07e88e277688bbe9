package sim

import (
	"context"
	"fmt"
	"sync"

	apiextensionsscheme "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/scheme"
	pluginvalidatingadmissionpolicy "k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	k8sscheme "k8s.io/client-go/kubernetes/scheme"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	"k8s.io/kubernetes/cmd/kube-controller-manager/names"
	"k8s.io/kubernetes/pkg/controller/validatingadmissionpolicystatus"
	"k8s.io/kubernetes/pkg/generated/openapi"
)

// builtinSchemas resolves the built-in kinds' schemas for the
// ValidatingAdmissionPolicy status controller's type checks. Building it
// calls k8s.io/kubernetes's GetOpenAPIDefinitions, 20 ms of CPU and 10 MB
// that kube-controller-manager spends once per process: the controller
// manager of every cluster a process starts (an operator's suite starts
// one per spec) shares it. It is read-only once built (ResolveSchema
// copies what it returns).
var builtinSchemas = sync.OnceValue(func() *resolver.DefinitionsSchemaResolver {
	return resolver.NewDefinitionsSchemaResolver(openapi.GetOpenAPIDefinitions, k8sscheme.Scheme, apiextensionsscheme.Scheme)
})

// newValidatingAdmissionPolicyStatusController is kube-controller-manager's
// validatingadmissionpolicy-status-controller, built as its descriptor
// builds it (cmd/kube-controller-manager/app/validatingadmissionpolicystatus.go),
// over the process's builtinSchemas.
func newValidatingAdmissionPolicyStatusController(controllerContext kcm.ControllerContext) (kcm.Controller, error) {
	name := names.ValidatingAdmissionPolicyStatusController
	discoveryClient, err := controllerContext.ClientBuilder.DiscoveryClient(name)
	if err != nil {
		return nil, fmt.Errorf("failed to create discovery client for %s: %w", name, err)
	}
	typeChecker := &pluginvalidatingadmissionpolicy.TypeChecker{
		SchemaResolver: builtinSchemas().Combine(&resolver.ClientDiscoveryResolver{Discovery: discoveryClient}),
		RestMapper:     controllerContext.RESTMapper,
	}
	client, err := controllerContext.NewClient(name)
	if err != nil {
		return nil, err
	}
	c, err := validatingadmissionpolicystatus.NewController(
		controllerContext.InformerFactory.Admissionregistration().V1().ValidatingAdmissionPolicies(),
		client.AdmissionregistrationV1().ValidatingAdmissionPolicies(),
		typeChecker,
	)
	if err != nil {
		return nil, err
	}
	workers := int(controllerContext.ComponentConfig.ValidatingAdmissionPolicyStatusController.ConcurrentPolicySyncs)
	return controllerLoop{name: name, run: func(ctx context.Context) { c.Run(ctx, workers) }}, nil
}
