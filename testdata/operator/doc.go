// Package operator is an example operator built with controller-runtime, as
// kubebuilder lays one out: a Website custom resource (api/v1, its CRD in
// config/crd), a reconciler that runs each Website as a Deployment and a
// Service it owns (internal/controller), and a defaulting and a validating
// webhook (internal/webhook, registered by config/webhook). Its suite
// (operator_suite_test.go) is the pattern operator authors copy: it runs
// against a kubesim cluster started in the test binary by sim.Start, or,
// unchanged, against a running cluster through envtest with
// USE_EXISTING_CLUSTER=true and KUBECONFIG.
package operator
