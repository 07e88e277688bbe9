// Package openapi builds kube-apiserver's OpenAPI models from the
// definitions generated in k8s.io/kubernetes/pkg/generated/openapi. The
// server uses them for managed fields (server-side apply) as kube-apiserver
// does, through a type converter that gives the field manager what
// upstream's gives it but leaves out the schema validation walk of typed
// objects where that walk cannot fail (see typeconverter.go).
package openapi
