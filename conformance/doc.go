// Package conformance is kubesim's API behaviour suite (ginkgo/gomega). It
// runs against the target named by the environment:
//
//	KUBESIM_TARGET=kubesim (default)  starts `kubesim up` (KUBESIM_BIN, or bin/kubesim)
//	KUBESIM_TARGET=reference          uses KUBECONFIG: the genuine kube-apiserver
//
// Every spec must pass against the genuine kube-apiserver too; a spec that
// fails there is a wrong spec.
package conformance
