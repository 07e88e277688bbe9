// Package sim assembles a kubesim cluster and is the Go API tests use:
// Start runs the API server, then the genuine kube-scheduler
// (k8s.io/kubernetes/pkg/scheduler, default profile or a
// KubeSchedulerConfiguration file) and the genuine kube-controller-manager
// controllers (k8s.io/kubernetes/cmd/kube-controller-manager/app, selected
// as --controllers selects them), all in one process, talking to the API
// server through client-go; Stop shuts them all down.
package sim
