// Package realnode will run real nodes: the genuine kubelet and kube-proxy
// over containerd. It is not built yet.
package realnode
