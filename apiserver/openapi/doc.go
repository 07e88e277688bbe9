// Package openapi builds kube-apiserver's OpenAPI models from the
// definitions generated in k8s.io/kubernetes/pkg/generated/openapi. The
// server uses them for managed fields (server-side apply) as kube-apiserver
// does, through a type converter that gives the field manager what
// upstream's gives it but leaves out the schema validation walk of typed
// objects where that walk cannot fail (see typeconverter.go).
//
// The converter's schema for legacyscheme's kinds is generated into
// zz_generated.schema.go (make generate; TestGeneratedSchema fails when it
// is stale), so that a process's first API server does not spend 45 ms of
// CPU building it from the OpenAPI definitions.
package openapi
