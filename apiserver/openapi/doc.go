// Package openapi builds kube-apiserver's OpenAPI models from the
// definitions generated in k8s.io/kubernetes/pkg/generated/openapi. The
// server uses them for managed fields (server-side apply) as kube-apiserver
// does.
package openapi
