package apiserver

import (
	"context"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	apfbootstrap "k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	schedulingapiv1 "k8s.io/kubernetes/pkg/apis/scheduling/v1"
	"k8s.io/kubernetes/pkg/controlplane/controller/defaultservicecidr"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"

	"github.com/kubesim/kubesim/apiserver/registry"
)

// bootstrapObject is an object kube-apiserver creates at start.
type bootstrapObject struct {
	resource  schema.GroupResource
	namespace string
	obj       runtime.Object
	// status: obj's status is written (through the status subresource)
	// after it is created, as the controller that creates it does.
	status bool
}

// bootstrapObjects are what kube-apiserver creates at start, from the same
// upstream data: the system namespaces, the RBAC bootstrap policy, the
// system priority classes, the API priority and fairness configuration,
// the legacy token tracking ConfigMap and the kubernetes Service.
func (s *Server) bootstrapObjects() []bootstrapObject {
	var out []bootstrapObject
	add := func(group, resource, namespace string, obj runtime.Object) {
		out = append(out, bootstrapObject{resource: schema.GroupResource{Group: group, Resource: resource}, namespace: namespace, obj: obj})
	}
	for _, name := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease} {
		add("", "namespaces", "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}

	const rbac = "rbac.authorization.k8s.io"
	// As kube-apiserver's RBAC post-start hook: the cluster policy and the
	// controllers' roles.
	clusterRoles := append(bootstrappolicy.ClusterRoles(), bootstrappolicy.ControllerRoles()...)
	for i := range clusterRoles {
		add(rbac, "clusterroles", "", &clusterRoles[i])
	}
	clusterRoleBindings := append(bootstrappolicy.ClusterRoleBindings(), bootstrappolicy.ControllerRoleBindings()...)
	for i := range clusterRoleBindings {
		add(rbac, "clusterrolebindings", "", &clusterRoleBindings[i])
	}
	for ns, roles := range bootstrappolicy.NamespaceRoles() {
		for i := range roles {
			add(rbac, "roles", ns, &roles[i])
		}
	}
	for ns, bindings := range bootstrappolicy.NamespaceRoleBindings() {
		for i := range bindings {
			add(rbac, "rolebindings", ns, &bindings[i])
		}
	}

	for _, pc := range schedulingapiv1.SystemPriorityClasses() {
		add("scheduling.k8s.io", "priorityclasses", "", pc)
	}

	const apf = "flowcontrol.apiserver.k8s.io"
	for _, plc := range append(apfbootstrap.MandatoryPriorityLevelConfigurations, apfbootstrap.SuggestedPriorityLevelConfigurations...) {
		add(apf, "prioritylevelconfigurations", "", plc.DeepCopy())
	}
	for _, fs := range append(apfbootstrap.MandatoryFlowSchemas, apfbootstrap.SuggestedFlowSchemas...) {
		add(apf, "flowschemas", "", fs.DeepCopy())
	}

	add("", "configmaps", metav1.NamespaceSystem, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-legacy-service-account-token-tracking", Namespace: metav1.NamespaceSystem},
		Data:       map[string]string{"since": s.cfg.Clock.Now().UTC().Format("2006-01-02")},
	})

	// The default ServiceCIDR, as kube-apiserver's default ServiceCIDR
	// controller creates it and sets it Ready before the server is ready.
	if _, cidr, err := net.ParseCIDR(s.cfg.Services.ClusterIPRange); err == nil {
		out = append(out, bootstrapObject{resource: schema.GroupResource{Group: "networking.k8s.io", Resource: "servicecidrs"}, status: true, obj: &networkingv1.ServiceCIDR{
			ObjectMeta: metav1.ObjectMeta{Name: defaultservicecidr.DefaultServiceCIDRName},
			Spec:       networkingv1.ServiceCIDRSpec{CIDRs: []string{cidr.String()}},
			Status: networkingv1.ServiceCIDRStatus{Conditions: []metav1.Condition{{
				Type: networkingv1.ServiceCIDRConditionReady, Status: metav1.ConditionTrue,
				Message:            "Kubernetes default Service CIDR is ready",
				LastTransitionTime: metav1.NewTime(s.cfg.Clock.Now()),
			}}},
		}})
	}

	_, port, _ := net.SplitHostPort(s.Address())
	p, _ := strconv.Atoi(port)
	add("", "services", metav1.NamespaceDefault, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault, Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: s.registry.KubernetesServiceIP(),
			Ports:     []corev1.ServicePort{{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(int32(p))}},
		},
	})
	return out
}

// bootstrap creates the bootstrap objects that do not exist yet.
func (s *Server) bootstrap(ctx context.Context) error {
	for _, b := range s.bootstrapObjects() {
		if err := s.createVersioned(ctx, b.resource, b.namespace, b.obj, b.status); err != nil {
			return err
		}
	}
	return nil
}

// statusStorage is the status subresource of gr.
func (s *Server) statusStorage(gr schema.GroupResource) rest.Updater {
	for _, g := range append([]*registry.Group{s.registry.Core}, s.registry.Groups...) {
		if g.Name != gr.Group {
			continue
		}
		for _, gv := range g.Versions {
			for _, ep := range gv.Endpoints {
				if ep.Resource == gr.Resource && ep.Subresource == "status" {
					if u, ok := ep.Storage.(rest.Updater); ok {
						return u
					}
				}
			}
		}
	}
	return nil
}

// createVersioned creates a versioned object in-process as a request
// would: defaulted, converted to the internal version, through the store.
func (s *Server) createVersioned(ctx context.Context, gr schema.GroupResource, namespace string, obj runtime.Object, withStatus bool) error {
	gvks, _, err := legacyscheme.Scheme.ObjectKinds(obj)
	if err != nil {
		return err
	}
	legacyscheme.Scheme.Default(obj)
	internal, err := legacyscheme.Scheme.ConvertToVersion(obj, schema.GroupVersion{Group: gvks[0].Group, Version: runtime.APIVersionInternal})
	if err != nil {
		return err
	}
	store := s.registry.Stores[gr]
	if store == nil {
		return fmt.Errorf("unable to bootstrap %s: not served", gr)
	}
	// Kept from an earlier start (durable storage) or made by another API
	// server on the same etcd: left as it is, as kube-apiserver's
	// bootstrap controllers leave what exists.
	if a, err := meta.Accessor(internal); err == nil {
		if _, err := store.Get(requestContext(ctx, "get", gvks[0].Group, gvks[0].Version, gr.Resource, namespace), a.GetName(), &metav1.GetOptions{}); err == nil {
			return nil
		}
	}
	created, err := store.Create(requestContext(ctx, "create", gvks[0].Group, gvks[0].Version, gr.Resource, namespace), internal.DeepCopyObject(), nil, &metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unable to bootstrap %s %s: %w", gr, namespace, err)
	}
	if !withStatus {
		return nil
	}
	status := s.statusStorage(gr)
	if status == nil {
		return fmt.Errorf("unable to bootstrap %s: no status subresource", gr)
	}
	// The status as given, on the object as created.
	createdMeta, err := meta.Accessor(created)
	if err != nil {
		return err
	}
	withMeta, err := meta.Accessor(internal)
	if err != nil {
		return err
	}
	withMeta.SetUID(createdMeta.GetUID())
	withMeta.SetResourceVersion(createdMeta.GetResourceVersion())
	withMeta.SetCreationTimestamp(createdMeta.GetCreationTimestamp())
	if _, _, err := status.Update(requestContext(ctx, "update", gvks[0].Group, gvks[0].Version, gr.Resource, namespace), withMeta.GetName(),
		rest.DefaultUpdatedObjectInfo(internal), nil, nil, false, &metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("unable to bootstrap the status of %s %s: %w", gr, withMeta.GetName(), err)
	}
	return nil
}
