package apiserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// systemNamespaces are the namespaces kube-apiserver creates, which Reset
// keeps with what is in them.
var systemNamespaces = map[string]bool{
	metav1.NamespaceSystem:    true,
	metav1.NamespacePublic:    true,
	corev1.NamespaceNodeLease: true,
}

// defaultNamespaceObjects are what the control plane keeps in the default
// namespace: the kubernetes Service and its endpoints, the default
// ServiceAccount, the cluster CA bundle.
var defaultNamespaceObjects = map[schema.GroupResource]string{
	{Resource: "services"}:                                  "kubernetes",
	{Resource: "endpoints"}:                                 "kubernetes",
	{Group: "discovery.k8s.io", Resource: "endpointslices"}: "kubernetes",
	{Resource: "serviceaccounts"}:                           "default",
	{Resource: "configmaps"}:                                "kube-root-ca.crt",
}

// Reset deletes, straight from storage, what tests leave behind: every
// namespace but the system ones (and default) with everything in them, what
// is in default but the control plane's own objects, and every custom
// resource. Cluster-scoped built-in objects (nodes, RBAC, webhook
// configurations, CRDs, ...) stay. No finalizer, grace period or admission
// runs: it is a cheap reset between the specs of a suite, like wiping their
// etcd keys. It returns once the objects are gone; watchers see them
// deleted.
func (s *Server) Reset(ctx context.Context) error {
	namespaces := schema.GroupResource{Resource: "namespaces"}
	keep := func(gr schema.GroupResource, namespace, name string) bool {
		switch {
		case gr == namespaces:
			return name == metav1.NamespaceDefault || systemNamespaces[name]
		case namespace == "":
			return true // cluster-scoped
		case systemNamespaces[namespace]:
			return true
		case namespace == metav1.NamespaceDefault:
			return defaultNamespaceObjects[gr] == name
		}
		return false
	}
	// A controller may still write into a namespace the first pass
	// removed, until its informers see it gone: a second pass takes what
	// it wrote.
	for pass := 0; pass < 3; pass++ {
		n, err := s.registry.Purge(ctx, keep)
		if err != nil {
			return fmt.Errorf("unable to reset: %w", err)
		}
		if n == 0 {
			break
		}
	}
	if _, err := s.crd.PurgeCustomResources(ctx); err != nil {
		return fmt.Errorf("unable to reset custom resources: %w", err)
	}
	return nil
}
