package registry

import (
	"context"
	"fmt"
	"net"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/validation/field"
	api "k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/kubernetes/pkg/registry/core/service/ipallocator"
	"k8s.io/kubernetes/pkg/registry/core/service/portallocator"
	netutils "k8s.io/utils/net"
)

// ServiceAllocatorConfig configures Service ClusterIP and NodePort allocation.
type ServiceAllocatorConfig struct {
	// ClusterIPRange is the service CIDR. Default: 10.96.0.0/16. Its first
	// address is the kubernetes Service's.
	ClusterIPRange string
	// NodePortRange is the NodePort range. Default: 30000-32767, as
	// kube-apiserver's --service-node-port-range.
	NodePortRange string
}

// storeHooks let a resource allocate on create and release on delete, as
// upstream stores' BeginCreate and AfterDelete do.
type storeHooks interface {
	beginCreate(ctx context.Context, obj runtime.Object, dryRun bool) (finish func(success bool), err error)
	afterDelete(obj runtime.Object)
}

// serviceAllocator allocates ClusterIPs and NodePorts with upstream's
// bitmap allocators.
type serviceAllocator struct {
	mu    sync.Mutex // guards ips and ports across a create
	ips   *ipallocator.Range
	ports *portallocator.PortAllocator
	cidr  *net.IPNet
}

func newServiceAllocator(cfg ServiceAllocatorConfig) (*serviceAllocator, error) {
	if cfg.ClusterIPRange == "" {
		cfg.ClusterIPRange = "10.96.0.0/16"
	}
	if cfg.NodePortRange == "" {
		cfg.NodePortRange = "30000-32767"
	}
	_, cidr, err := net.ParseCIDR(cfg.ClusterIPRange)
	if err != nil {
		return nil, fmt.Errorf("unable to parse service cluster IP range %q: %w", cfg.ClusterIPRange, err)
	}
	ips, err := ipallocator.NewInMemory(cidr)
	if err != nil {
		return nil, fmt.Errorf("unable to create ClusterIP allocator: %w", err)
	}
	pr, err := utilnet.ParsePortRange(cfg.NodePortRange)
	if err != nil {
		return nil, fmt.Errorf("unable to parse node port range %q: %w", cfg.NodePortRange, err)
	}
	ports, err := portallocator.NewInMemory(*pr)
	if err != nil {
		return nil, fmt.Errorf("unable to create NodePort allocator: %w", err)
	}
	return &serviceAllocator{ips: ips, ports: ports, cidr: cidr}, nil
}

func needsNodePorts(svc *api.Service) bool {
	switch svc.Spec.Type {
	case api.ServiceTypeNodePort:
		return true
	case api.ServiceTypeLoadBalancer:
		return svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts
	}
	return false
}

func (a *serviceAllocator) beginCreate(ctx context.Context, obj runtime.Object, dryRun bool) (func(bool), error) {
	svc, ok := obj.(*api.Service)
	if !ok || svc.Spec.Type == api.ServiceTypeExternalName {
		return func(bool) {}, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(svc.Spec.IPFamilies) == 0 {
		svc.Spec.IPFamilies = []api.IPFamily{api.IPv4Protocol}
	}
	if svc.Spec.IPFamilyPolicy == nil {
		p := api.IPFamilyPolicySingleStack
		svc.Spec.IPFamilyPolicy = &p
	}
	if svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) > 0 {
		svc.Spec.ClusterIP = svc.Spec.ClusterIPs[0]
	}
	var ips []net.IP
	var ports []int
	release := func() {
		for _, ip := range ips {
			_ = a.ips.Release(ip)
		}
		for _, p := range ports {
			_ = a.ports.Release(p)
		}
	}
	switch svc.Spec.ClusterIP {
	case api.ClusterIPNone:
		svc.Spec.ClusterIPs = []string{api.ClusterIPNone}
	case "":
		ip, err := a.ips.AllocateNext()
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP for Service %q: %w", svc.Name, err))
		}
		ips = append(ips, ip)
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip.String(), []string{ip.String()}
	default:
		ip := net.ParseIP(svc.Spec.ClusterIP)
		if ip != nil {
			if err := a.ips.Allocate(ip); err != nil {
				el := field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs"), []string{svc.Spec.ClusterIP}, fmt.Sprintf("failed to allocate IP %v: %v", ip, err))}
				return nil, apierrors.NewInvalid(api.Kind("Service"), svc.Name, el)
			}
			ips = append(ips, ip)
		}
		if len(svc.Spec.ClusterIPs) == 0 {
			svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		}
	}
	if needsNodePorts(svc) {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if p.NodePort != 0 {
				if err := a.ports.Allocate(int(p.NodePort)); err != nil {
					release()
					el := field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort, err.Error())}
					return nil, apierrors.NewInvalid(api.Kind("Service"), svc.Name, el)
				}
				ports = append(ports, int(p.NodePort))
				continue
			}
			n, err := a.ports.AllocateNext()
			if err != nil {
				release()
				return nil, apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %w", err))
			}
			ports = append(ports, n)
			p.NodePort = int32(n)
		}
	}
	return func(success bool) {
		if !success || dryRun {
			a.mu.Lock()
			release()
			a.mu.Unlock()
		}
	}, nil
}

func (a *serviceAllocator) afterDelete(obj runtime.Object) {
	svc, ok := obj.(*api.Service)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range svc.Spec.ClusterIPs {
		if ip := net.ParseIP(s); ip != nil {
			_ = a.ips.Release(ip)
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			_ = a.ports.Release(int(p.NodePort))
		}
	}
}

// KubernetesServiceIP is the ClusterIP of the kubernetes Service: the first
// address of the range, as kube-apiserver reserves it.
func (r *Registry) KubernetesServiceIP() string {
	ip, err := netutils.GetIndexedIP(r.alloc.cidr, 1)
	if err != nil {
		return ""
	}
	return ip.String()
}
