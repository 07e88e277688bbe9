package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	cloudprovider "k8s.io/cloud-provider"
	servicecontroller "k8s.io/cloud-provider/controllers/service"
	controllersmetrics "k8s.io/component-base/metrics/prometheus/controllers"
	"k8s.io/klog/v2"
)

// DefaultCIDR is the pool LoadBalancer addresses come from by default: a
// range no other part of kubesim uses (Services 10.96.0.0/16, pods
// 10.244.0.0/16 or 10.128.0.0/10, real nodes 10.250.0.0/16).
const DefaultCIDR = "10.240.0.0/24"

// ProviderName is the cloud provider's name, as the service controller's
// events and logs show it.
const ProviderName = "kubesim"

// Config configures the load-balancer controller.
type Config struct {
	// Client writes Services' status and events. Required.
	Client kubernetes.Interface
	// Informers provide Services and Nodes; the controller starts the
	// informers it adds. Required.
	Informers informers.SharedInformerFactory
	// CIDR is the address pool (--load-balancer-cidr); its network and
	// broadcast addresses are never handed out. Default: DefaultCIDR.
	CIDR string
	// ClusterName is the cluster name the service controller passes to the
	// provider, as --cluster-name. Default: "kubesim".
	ClusterName string
	// Workers is the number of Services synced at once. Default: 2.
	Workers int
}

// Controller runs the service controller over the address pool.
type Controller struct {
	cfg  Config
	pool *Pool
}

// New validates and defaults cfg and builds the controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Informers == nil {
		return nil, errors.New("loadbalancer: Client and Informers are required")
	}
	if cfg.CIDR == "" {
		cfg.CIDR = DefaultCIDR
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "kubesim"
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	pool, err := NewPool(cfg.CIDR)
	if err != nil {
		return nil, err
	}
	// The informers the service controller reads, registered before the
	// factory starts; the controller itself is built by Start (its
	// queues' goroutines run from its construction until its Run ends).
	cfg.Informers.Core().V1().Services().Informer()
	cfg.Informers.Core().V1().Nodes().Informer()
	return &Controller{cfg: cfg, pool: pool}, nil
}

// Pool is the controller's address pool.
func (c *Controller) Pool() *Pool { return c.pool }

// Start runs the service controller until ctx is done.
func (c *Controller) Start(ctx context.Context) error {
	services := c.cfg.Informers.Core().V1().Services()
	informer := services.Informer()
	c.cfg.Informers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return nil
	}
	// The addresses Services show are taken before any is handed out, so
	// that a new Service cannot take the address of one not synced yet.
	list, err := services.Lister().List(labels.Everything())
	if err != nil {
		return err
	}
	for _, svc := range list {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.LoadBalancerClass != nil {
			continue
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(ing.IP); err == nil {
				c.pool.Allocate(cloudprovider.DefaultLoadBalancerName(svc), a, nil)
			}
		}
	}
	klog.FromContext(ctx).V(2).Info("Starting the load balancer controller", "cidr", c.cfg.CIDR)
	sc, err := servicecontroller.New(&cloud{pool: c.pool}, c.cfg.Client, services, c.cfg.Informers.Core().V1().Nodes(), c.cfg.ClusterName, utilfeature.DefaultFeatureGate)
	if err != nil {
		return fmt.Errorf("unable to build the service controller: %w", err)
	}
	sc.Run(ctx, c.cfg.Workers, controllersmetrics.NewControllerManagerMetrics("kubesim"))
	return nil
}

// Pool hands out the addresses of a prefix, lowest free first, one per
// load balancer name.
type Pool struct {
	prefix netip.Prefix

	mu sync.Mutex // guards byName and byAddr
	// byName is the address of each load balancer, byAddr the reverse.
	byName map[string]netip.Addr
	byAddr map[netip.Addr]string
}

// NewPool makes a pool of cidr's addresses (IPv4 or IPv6).
func NewPool(cidr string) (*Pool, error) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("invalid load balancer CIDR %q: %w", cidr, err)
	}
	if prefix.Masked() != prefix {
		return nil, fmt.Errorf("invalid load balancer CIDR %q: host bits set (the network is %s)", cidr, prefix.Masked())
	}
	if prefix.Addr().BitLen()-prefix.Bits() < 2 {
		return nil, fmt.Errorf("invalid load balancer CIDR %q: fewer than two usable addresses", cidr)
	}
	return &Pool{prefix: prefix, byName: map[string]netip.Addr{}, byAddr: map[netip.Addr]string{}}, nil
}

// Prefix is the pool's range.
func (p *Pool) Prefix() netip.Prefix { return p.prefix }

// usable says whether a is in the pool and neither its network nor (IPv4)
// its broadcast address.
func (p *Pool) usable(a netip.Addr) bool {
	if !p.prefix.Contains(a) || a == p.prefix.Addr() {
		return false
	}
	return !a.Is4() || a != lastAddr(p.prefix)
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Lookup returns name's address, if it has one.
func (p *Pool) Lookup(name string) (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.byName[name]
	return a, ok
}

// Allocate returns name's address, allocating one if it has none: want
// when it is set (it must be in the pool and free), else an address the
// Service already shows (after a restart), else the lowest free one.
func (p *Pool) Allocate(name string, want netip.Addr, shown []netip.Addr) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byName[name]; ok && (!want.IsValid() || want == a) {
		return a, nil
	}
	if want.IsValid() {
		if !p.usable(want) {
			return netip.Addr{}, fmt.Errorf("requested address %s is not in the load balancer pool %s", want, p.prefix)
		}
		if owner, taken := p.byAddr[want]; taken && owner != name {
			return netip.Addr{}, fmt.Errorf("requested address %s is already in use", want)
		}
		p.set(name, want)
		return want, nil
	}
	for _, a := range shown {
		if _, taken := p.byAddr[a]; p.usable(a) && !taken {
			p.set(name, a)
			return a, nil
		}
	}
	for a := p.prefix.Addr().Next(); p.usable(a); a = a.Next() {
		if _, taken := p.byAddr[a]; !taken {
			p.set(name, a)
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no address left in the load balancer pool %s", p.prefix)
}

func (p *Pool) set(name string, a netip.Addr) {
	if old, ok := p.byName[name]; ok {
		delete(p.byAddr, old)
	}
	p.byName[name], p.byAddr[a] = a, name
}

// Release frees name's address.
func (p *Pool) Release(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byName[name]; ok {
		delete(p.byAddr, a)
		delete(p.byName, name)
	}
}

// cloud is a cloud provider with load balancers only.
type cloud struct{ pool *Pool }

var (
	_ cloudprovider.Interface    = (*cloud)(nil)
	_ cloudprovider.LoadBalancer = (*cloud)(nil)
)

func (c *cloud) Initialize(cloudprovider.ControllerClientBuilder, <-chan struct{}) {}
func (c *cloud) LoadBalancer() (cloudprovider.LoadBalancer, bool)                  { return c, true }
func (c *cloud) Instances() (cloudprovider.Instances, bool)                        { return nil, false }
func (c *cloud) InstancesV2() (cloudprovider.InstancesV2, bool)                    { return nil, false }
func (c *cloud) Zones() (cloudprovider.Zones, bool)                                { return nil, false }
func (c *cloud) Clusters() (cloudprovider.Clusters, bool)                          { return nil, false }
func (c *cloud) Routes() (cloudprovider.Routes, bool)                              { return nil, false }
func (c *cloud) ProviderName() string                                              { return ProviderName }
func (c *cloud) HasClusterID() bool                                                { return true }

func (c *cloud) GetLoadBalancerName(_ context.Context, _ string, svc *corev1.Service) string {
	return cloudprovider.DefaultLoadBalancerName(svc)
}

func (c *cloud) GetLoadBalancer(ctx context.Context, clusterName string, svc *corev1.Service) (*corev1.LoadBalancerStatus, bool, error) {
	a, ok := c.pool.Lookup(c.GetLoadBalancerName(ctx, clusterName, svc))
	if !ok {
		return nil, false, nil
	}
	return status(a), true, nil
}

func (c *cloud) EnsureLoadBalancer(ctx context.Context, clusterName string, svc *corev1.Service, _ []*corev1.Node) (*corev1.LoadBalancerStatus, error) {
	var want netip.Addr
	if svc.Spec.LoadBalancerIP != "" {
		a, err := netip.ParseAddr(svc.Spec.LoadBalancerIP)
		if err != nil {
			return nil, fmt.Errorf("invalid spec.loadBalancerIP %q: %w", svc.Spec.LoadBalancerIP, err)
		}
		want = a
	}
	var shown []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil {
			shown = append(shown, a)
		}
	}
	a, err := c.pool.Allocate(c.GetLoadBalancerName(ctx, clusterName, svc), want, shown)
	if err != nil {
		return nil, err
	}
	return status(a), nil
}

func (c *cloud) UpdateLoadBalancer(context.Context, string, *corev1.Service, []*corev1.Node) error {
	return nil
}

func (c *cloud) EnsureLoadBalancerDeleted(ctx context.Context, clusterName string, svc *corev1.Service) error {
	c.pool.Release(c.GetLoadBalancerName(ctx, clusterName, svc))
	return nil
}

func status(a netip.Addr) *corev1.LoadBalancerStatus {
	vip := corev1.LoadBalancerIPModeVIP
	return &corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: a.String(), IPMode: &vip}}}
}
