// Package encoding turns the objects a storage backend holds into bytes and
// back, as kube-apiserver writes them to etcd: built-in kinds in protobuf
// (the "k8s\x00" envelope) at kube-apiserver's storage version of their
// resource, custom resources in JSON at their CRD's storage version. It also
// maps kubesim's keys to kube-apiserver's etcd keys.
//
// The codecs are kube-apiserver's own: its storage factory
// (k8s.io/kubernetes/pkg/kubeapiserver) chooses the storage version, the
// cohabitating resource and the key prefix of every group and resource.
// Durable backends (the data dir, etcd) share it, so that what one writes
// another reads.
package encoding
