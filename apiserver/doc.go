// Package apiserver is kubesim's Kubernetes API server.
//
// Requests pass kube-apiserver's own filters (panic recovery, request info,
// authentication, authorization, warnings), are routed with gorilla/mux to
// the resource the registry serves, and are handled by k8s.io/apiserver's
// REST handlers over kubesim's stores, so status codes, Status bodies,
// content negotiation, dry runs and watch streams are kube-apiserver's.
package apiserver
