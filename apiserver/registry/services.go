package registry

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"
	api "k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/kubernetes/pkg/registry/core/service/ipallocator"
	"k8s.io/kubernetes/pkg/registry/core/service/portallocator"
	netutils "k8s.io/utils/net"

	"github.com/kubesim/kubesim/apiserver/storage"
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

// storeHooks let a resource allocate on create, fix up an update and
// release on delete, as upstream stores' BeginCreate, BeginUpdate and
// AfterDelete do.
type storeHooks interface {
	beginCreate(ctx context.Context, obj runtime.Object, dryRun bool) (finish func(success bool), err error)
	// beginUpdate runs on an update of the resource itself (not of its
	// status), before the strategy's PrepareForUpdate and validation.
	beginUpdate(obj, old runtime.Object)
	// allocateUpdate runs on the same updates after validation, before the
	// write: it allocates what the new object needs that the old one did
	// not hold; finish(true) releases what the old one held that the new
	// one no longer does, finish(false) what was allocated.
	allocateUpdate(ctx context.Context, obj, old runtime.Object, dryRun bool) (finish func(success bool), err error)
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
	ip, err := a.allocateClusterIP(svc)
	if err != nil {
		return nil, err
	}
	if ip != nil {
		ips = append(ips, ip)
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

// beginUpdate is the start of upstream's Service REST beginUpdate: it keeps
// the allocated values a client left out (patchAllocatedValues) and makes
// clusterIP and clusterIPs agree (normalizeClusterIPs), so that validation
// judges what the client meant: a changed clusterIP is "may not change once
// set" on spec.clusterIPs[0], as kube-apiserver answers.
func (a *serviceAllocator) beginUpdate(obj, old runtime.Object) {
	newSvc, ok := obj.(*api.Service)
	oldSvc, ok2 := old.(*api.Service)
	if !ok || !ok2 {
		return
	}
	patchAllocatedValues(newSvc, oldSvc)
	normalizeClusterIPs(newSvc, oldSvc)
}

// patchAllocatedValues is upstream's (pkg/registry/core/service/storage):
// values allocated before that the update omits are kept, for idempotence.
func patchAllocatedValues(newSvc, oldSvc *api.Service) {
	if oldSvc.Spec.Type != api.ServiceTypeExternalName && newSvc.Spec.Type != api.ServiceTypeExternalName {
		if newSvc.Spec.ClusterIP == "" {
			newSvc.Spec.ClusterIP = oldSvc.Spec.ClusterIP
		}
		if len(newSvc.Spec.ClusterIPs) == 0 && len(oldSvc.Spec.ClusterIPs) > 0 {
			newSvc.Spec.ClusterIPs = slices.Clone(oldSvc.Spec.ClusterIPs)
		}
	}
	if needsNodePorts(oldSvc) && needsNodePorts(newSvc) {
		nodePortsUsed := func(svc *api.Service) sets.Set[int32] {
			used := sets.New[int32]()
			for _, p := range svc.Spec.Ports {
				if p.NodePort != 0 {
					used.Insert(p.NodePort)
				}
			}
			return used
		}
		// The old ports that the update keeps cannot be patched in.
		used := nodePortsUsed(oldSvc).Intersection(nodePortsUsed(newSvc))
		// By name: the port's other properties may have changed.
		byName := map[string]int32{}
		for _, p := range oldSvc.Spec.Ports {
			byName[p.Name] = p.NodePort
		}
		for i := range newSvc.Spec.Ports {
			p := &newSvc.Spec.Ports[i]
			if p.NodePort == 0 {
				if old := byName[p.Name]; !used.Has(old) {
					p.NodePort = old
				}
			}
		}
	}
	if needsHealthCheckNodePort(oldSvc) && needsHealthCheckNodePort(newSvc) && newSvc.Spec.HealthCheckNodePort == 0 {
		newSvc.Spec.HealthCheckNodePort = oldSvc.Spec.HealthCheckNodePort
	}
}

func needsHealthCheckNodePort(svc *api.Service) bool {
	return svc.Spec.Type == api.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == api.ServiceExternalTrafficPolicyLocal
}

// normalizeClusterIPs is upstream's for an update: clients that set only
// the singular clusterIP (old clients, merge patches) get clusterIPs
// derived from it.
func normalizeClusterIPs(newSvc, oldSvc *api.Service) {
	// Cleared by an old client that did not send clusterIPs.
	if len(oldSvc.Spec.ClusterIPs) > 0 && len(newSvc.Spec.ClusterIPs) == 0 && oldSvc.Spec.ClusterIP == newSvc.Spec.ClusterIP {
		newSvc.Spec.ClusterIPs = slices.Clone(oldSvc.Spec.ClusterIPs)
	}
	if oldSvc.Spec.ClusterIP == newSvc.Spec.ClusterIP {
		return
	}
	if len(oldSvc.Spec.ClusterIP) > 0 && len(newSvc.Spec.ClusterIP) == 0 {
		// Cleared: clear the plural too if it was left as it was (a
		// changed plural is validation's to refuse).
		if slices.Equal(oldSvc.Spec.ClusterIPs, newSvc.Spec.ClusterIPs) {
			newSvc.Spec.ClusterIPs = nil
		}
		return
	}
	// Changed, with the plural left as it was: the plural follows.
	if slices.Equal(oldSvc.Spec.ClusterIPs, newSvc.Spec.ClusterIPs) {
		newSvc.Spec.ClusterIPs = []string{newSvc.Spec.ClusterIP}
	}
}

// allocateClusterIP defaults a Service's IP families and allocates its
// ClusterIP (the next free one, or the one it asks for), as upstream's
// allocator does on create; it returns the IP it allocated, if any. Called
// with a.mu held.
func (a *serviceAllocator) allocateClusterIP(svc *api.Service) (net.IP, error) {
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
	switch svc.Spec.ClusterIP {
	case api.ClusterIPNone:
		svc.Spec.ClusterIPs = []string{api.ClusterIPNone}
	case "":
		ip, err := a.ips.AllocateNext()
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP for Service %q: %w", svc.Name, err))
		}
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip.String(), []string{ip.String()}
		return ip, nil
	default:
		if len(svc.Spec.ClusterIPs) == 0 {
			svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		}
		if ip := net.ParseIP(svc.Spec.ClusterIP); ip != nil {
			if err := a.ips.Allocate(ip); err != nil {
				el := field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs"), []string{svc.Spec.ClusterIP}, fmt.Sprintf("failed to allocate IP %v: %v", ip, err))}
				return nil, apierrors.NewInvalid(api.Kind("Service"), svc.Name, el)
			}
			return ip, nil
		}
	}
	return nil, nil
}

// allocateUpdate is upstream's allocateUpdate (txnUpdateClusterIPs and
// txnUpdateNodePorts) for the transitions a type change makes: a Service
// that becomes ClusterIP, NodePort or LoadBalancer from ExternalName gets
// ClusterIPs; one that needs node ports gets those it has not got; an
// ExternalName Service gives its ClusterIPs back, a ClusterIP Service its
// node ports, once the update is written.
func (a *serviceAllocator) allocateUpdate(_ context.Context, obj, old runtime.Object, dryRun bool) (func(bool), error) {
	newSvc, ok := obj.(*api.Service)
	oldSvc, ok2 := old.(*api.Service)
	if !ok || !ok2 {
		return func(bool) {}, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
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

	oldIPs, newIPs := sets.New(oldSvc.Spec.ClusterIPs...), sets.New(newSvc.Spec.ClusterIPs...)
	if oldSvc.Spec.Type == api.ServiceTypeExternalName && newSvc.Spec.Type != api.ServiceTypeExternalName {
		ip, err := a.allocateClusterIP(newSvc)
		if err != nil {
			return nil, err
		}
		if ip != nil {
			ips = append(ips, ip)
		}
		newIPs = sets.New(newSvc.Spec.ClusterIPs...)
	}

	oldPorts := sets.New[int]()
	for _, p := range oldSvc.Spec.Ports {
		if p.NodePort != 0 {
			oldPorts.Insert(int(p.NodePort))
		}
	}
	newPorts := sets.New[int]()
	for i := range newSvc.Spec.Ports {
		p := &newSvc.Spec.Ports[i]
		switch {
		case p.NodePort != 0 && !oldPorts.Has(int(p.NodePort)) && !newPorts.Has(int(p.NodePort)):
			if err := a.ports.Allocate(int(p.NodePort)); err != nil {
				release()
				el := field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort, err.Error())}
				return nil, apierrors.NewInvalid(api.Kind("Service"), newSvc.Name, el)
			}
			ports = append(ports, int(p.NodePort))
		case p.NodePort == 0 && needsNodePorts(newSvc):
			n, err := a.ports.AllocateNext()
			if err != nil {
				release()
				return nil, apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %w", err))
			}
			ports = append(ports, n)
			p.NodePort = int32(n)
		}
		if p.NodePort != 0 {
			newPorts.Insert(int(p.NodePort))
		}
	}

	return func(success bool) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if !success || dryRun {
			release()
			return
		}
		for s := range oldIPs.Difference(newIPs) {
			if ip := net.ParseIP(s); ip != nil {
				_ = a.ips.Release(ip)
			}
		}
		for p := range oldPorts.Difference(newPorts) {
			_ = a.ports.Release(p)
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

// servicesKey is where Services are stored.
const servicesKey = "/registry/core/services/"

// mark records svc's ClusterIPs and NodePorts as allocated (ones already
// marked stay so).
func (a *serviceAllocator) mark(svc *api.Service) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range svc.Spec.ClusterIPs {
		if ip := net.ParseIP(s); ip != nil && a.cidr.Contains(ip) {
			_ = a.ips.Allocate(ip)
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			_ = a.ports.Allocate(int(p.NodePort))
		}
	}
}

// restore marks what the stored Services hold, as kube-apiserver's repair
// controllers rebuild its allocations at start: after a restart over
// durable storage, a new Service gets no address an old one has. It
// returns the revision it read at.
func (a *serviceAllocator) restore(ctx context.Context, st storage.Interface) (int64, error) {
	res, err := st.List(ctx, servicesKey, storage.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("unable to read the Services to restore their allocations: %w", err)
	}
	for _, obj := range res.Items {
		if svc, ok := obj.(*api.Service); ok {
			a.mark(svc)
		}
	}
	return res.Revision, nil
}

// follow keeps the allocations in step with Services written by other API
// servers on the same storage, from revision rev until ctx is done.
func (a *serviceAllocator) follow(ctx context.Context, st storage.Interface, rev int64) {
	logger := klog.FromContext(ctx)
	for ctx.Err() == nil {
		w, err := st.Watch(ctx, servicesKey, storage.WatchOptions{Revision: rev})
		if err != nil {
			// Compacted, or the storage is away: read again.
			if rev, err = a.restore(ctx, st); err != nil {
				logger.V(2).Info("Unable to follow the Services' allocations", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		for e := range w.ResultChan() {
			if p, ok := e.Object.(*storage.Progress); ok {
				rev = max(rev, p.Revision) // nothing of ours before it
				continue
			}
			svc, ok := e.Object.(*api.Service)
			if !ok {
				break // an error: watch again
			}
			if r, err := strconv.ParseInt(svc.ResourceVersion, 10, 64); err == nil {
				rev = r
			}
			// What others delete is not released here: this server
			// may have released and handed out the same address since
			// (its own deletions release at once). Those addresses stay
			// taken here until a restart.
			if e.Type == watch.Added || e.Type == watch.Modified {
				a.mark(svc)
			}
		}
		w.Stop()
	}
}

// RunAllocators keeps the ClusterIP and NodePort allocations in step with
// the stored Services (several API servers on one etcd) until ctx is done.
func (r *Registry) RunAllocators(ctx context.Context) {
	r.alloc.follow(ctx, r.storage, r.allocRev)
}
