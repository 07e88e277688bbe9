// Package apiserver is kubesim's Kubernetes API server.
//
// Requests pass kube-apiserver's own filters (panic recovery, request info,
// authentication, authorization, warnings), are routed with gorilla/mux to
// the resource the registry serves, and are handled by k8s.io/apiserver's
// REST handlers over kubesim's stores, so status codes, Status bodies,
// content negotiation, dry runs and watch streams are kube-apiserver's.
//
// Clients reach it over HTTPS (HTTP/2 or HTTP/1.1). Components in the
// server's process (the scheduler, the controllers, kubeletsim) can instead
// use InProcessRESTConfig, whose transport calls the same handler directly
// with the request the network would have delivered: same identity, same
// filters, same responses, without TLS, HTTP/2 framing or a socket.
package apiserver
