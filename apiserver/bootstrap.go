package apiserver

import (
	"context"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	apfbootstrap "k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	schedulingapiv1 "k8s.io/kubernetes/pkg/apis/scheduling/v1"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"
)

// bootstrapObject is an object kube-apiserver creates at start.
type bootstrapObject struct {
	resource  schema.GroupResource
	namespace string
	obj       runtime.Object
}

// bootstrapObjects are what kube-apiserver creates at start, from the same
// upstream data: the system namespaces, the RBAC bootstrap policy, the
// system priority classes, the API priority and fairness configuration,
// the legacy token tracking ConfigMap and the kubernetes Service.
func (s *Server) bootstrapObjects() []bootstrapObject {
	var out []bootstrapObject
	add := func(group, resource, namespace string, obj runtime.Object) {
		out = append(out, bootstrapObject{schema.GroupResource{Group: group, Resource: resource}, namespace, obj})
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
		if err := s.createVersioned(ctx, b.resource, b.namespace, b.obj); err != nil {
			return err
		}
	}
	return nil
}

// createVersioned creates a versioned object in-process as a request
// would: defaulted, converted to the internal version, through the store.
func (s *Server) createVersioned(ctx context.Context, gr schema.GroupResource, namespace string, obj runtime.Object) error {
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
	_, err = store.Create(requestContext(ctx, "create", gvks[0].Group, gvks[0].Version, gr.Resource, namespace), internal, nil, &metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("unable to bootstrap %s %s: %w", gr, namespace, err)
	}
	return nil
}
