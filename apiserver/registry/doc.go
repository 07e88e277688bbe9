// Package registry holds kubesim's resources: one entry per built-in
// resource, each a Store that implements the k8s.io/apiserver rest
// interfaces over a storage.Interface with the strategy kube-apiserver
// itself uses for that resource (k8s.io/kubernetes/pkg/registry/...).
//
// The registry is data: names, kinds, scopes, verbs, short names and
// categories come from kube-apiserver's own discovery documents for the
// pinned version (discovery/, refreshed by hack/update-discovery.sh), and
// the semantics from upstream strategies named in resources.go.
package registry
