// Command kubesim runs a Kubernetes-compatible cluster in one process.
//
//	kubesim up --kubeconfig FILE [--port N]
//
// serves the Kubernetes API over HTTPS on loopback and writes a
// cluster-admin kubeconfig once it is ready. See package app.
package main
