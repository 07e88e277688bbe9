// Package loadbalancer gives LoadBalancer Services an address from a pool,
// as cloud-provider-kind or MetalLB give one: a cloud provider whose only
// part is a LoadBalancer that hands out addresses of a CIDR, run by the
// genuine service controller of k8s.io/cloud-provider (the one every
// cloud-controller-manager runs), which adds its finalizer, writes
// status.loadBalancer.ingress and records its events
// (EnsuringLoadBalancer, EnsuredLoadBalancer, DeletedLoadBalancer).
//
// Services with a spec.loadBalancerClass are left to the controller of
// that class, as the service controller leaves them. A Service keeps its
// address across restarts of the controller: the pool is rebuilt from the
// addresses Services already show.
package loadbalancer
