// Package realnode runs real nodes: the genuine kubelet and kube-proxy of
// the pinned Kubernetes over Debian's containerd, runc, iptables and CNI
// plugins, running actual containers, in the same cluster as simulated
// nodes. It is an API client: it joins any API server (kubesim's or the
// genuine kube-apiserver) given a REST config and the cluster's CA.
//
// Each node is a process of its own (this binary re-executed with
// ExecCommand, as k3s does) in a network namespace and a mount namespace
// that realnode creates; the network has no route off the machine. The
// kubelet cannot be a goroutine of the main process: network namespaces
// are per thread, and the kubelet sets process-wide feature gates and
// registers process-global metrics. Package nodeexec is what runs in those
// processes (it imports the kubelet, kube-proxy and CoreDNS; this package
// does not, so that importing sim stays light).
package realnode
