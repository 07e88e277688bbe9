package sim

import (
	"context"
	"fmt"

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
