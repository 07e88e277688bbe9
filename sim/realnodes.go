package sim

import (
	"context"
	"fmt"

	"github.com/kubesim/kubesim/addons/loadbalancer"
	"github.com/kubesim/kubesim/realnode"
)

// startRealNodes starts Config.RealNodes real nodes and waits until they
// are Ready. They join through the API server's address with credentials
// the cluster's CA issues, as a kubeadm node would.
func (c *Cluster) startRealNodes(ctx context.Context, cfg Config) error {
	nodes, err := realnode.Start(ctx, realnode.Config{
		REST:        c.API.RESTConfig(),
		CA:          c.API.CA(),
		Count:       cfg.RealNodes,
		ClusterCIDR: cfg.ClusterCIDR,
		ServiceCIDR: cfg.ServiceCIDR,
		ImagesDir:   cfg.RealNodeImages,
		// Without the add-ons no load balancer has an address to route.
		LoadBalancerCIDR: loadBalancerCIDR(cfg),
	})
	if err != nil {
		return fmt.Errorf("unable to start the real nodes: %w", err)
	}
	c.RealNodes = nodes
	if err := nodes.WaitReady(ctx); err != nil {
		return fmt.Errorf("the real nodes did not become Ready: %w", err)
	}
	return nil
}

// loadBalancerCIDR is the range the load balancers of the cluster take
// addresses from, "" without them.
func loadBalancerCIDR(cfg Config) string {
	if cfg.DisableAddons || cfg.DisableControllers {
		return ""
	}
	if cfg.LoadBalancerCIDR == "" {
		return loadbalancer.DefaultCIDR
	}
	return cfg.LoadBalancerCIDR
}
