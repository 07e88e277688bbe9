package sim

import (
	"context"
	"fmt"

	"github.com/kubesim/kubesim/addons/loadbalancer"
	"github.com/kubesim/kubesim/realnode"
)

// startRealNodes starts Config.RealNodes real nodes in the background: their
// containerd, image import and kubelet start take seconds, which overlap
// the simulated nodes' registration and the components' start (Start
// waits for them in waitRealNodes). They join through the API server's
// address with credentials the cluster's CA issues, as a kubeadm node
// would. Stop waits for the start to return before it stops them.
func (c *Cluster) startRealNodes(ctx context.Context, cfg Config) {
	started := make(chan struct{})
	c.realStarted = started
	go func() {
		defer close(started)
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
			c.realErr = fmt.Errorf("unable to start the real nodes: %w", err)
			return
		}
		c.RealNodes = nodes
	}()
}

// waitRealNodes waits until the real nodes startRealNodes started are
// Ready.
func (c *Cluster) waitRealNodes(ctx context.Context) error {
	<-c.realStarted
	if c.realErr != nil {
		return c.realErr
	}
	if err := c.RealNodes.WaitReady(ctx); err != nil {
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
