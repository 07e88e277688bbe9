package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/apiserver"
)

// Config configures a cluster. The zero value is a cluster with every
// component; New-style defaulting happens in Start.
type Config struct {
	// APIServer configures the API server.
	APIServer apiserver.Config
	// Controllers selects the kube-controller-manager controllers, as its
	// --controllers flag does: "*" is every controller on by default, "foo"
	// enables foo, "-foo" disables it. Default: ["*"].
	Controllers []string
	// DisableControllers runs no controller at all.
	DisableControllers bool
	// DisableScheduler runs no scheduler.
	DisableScheduler bool
	// SchedulerConfigFile is a KubeSchedulerConfiguration for the scheduler
	// (profiles, plugins, percentageOfNodesToScore, ...); its
	// clientConnection and leaderElection are ignored. Default: the default
	// profile.
	SchedulerConfigFile string
	// ClusterCIDR is the range node IPAM allocates podCIDRs from.
	// Default: 10.244.0.0/16.
	ClusterCIDR string
	// ServiceCIDR is the Service ClusterIP range, which node IPAM keeps out
	// of podCIDRs. Default: 10.96.0.0/16, the API server's.
	ServiceCIDR string
	// QPS and Burst are the client rate limits of the scheduler and the
	// controllers. kube-controller-manager's defaults (20/30) throttle a
	// simulator; the defaults here are 1000 and 2000.
	QPS   float32
	Burst int
}

func (c *Config) complete() error {
	if len(c.Controllers) == 0 {
		c.Controllers = []string{"*"}
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = "10.244.0.0/16"
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.96.0.0/16"
	}
	if c.QPS == 0 {
		c.QPS = 1000
	}
	if c.Burst == 0 {
		c.Burst = 2000
	}
	if c.QPS < 0 || c.Burst < 0 {
		return fmt.Errorf("QPS and Burst must not be negative, got %v and %d", c.QPS, c.Burst)
	}
	return nil
}

// Cluster is a running cluster.
type Cluster struct {
	// API is the API server.
	API *apiserver.Server

	cancel context.CancelFunc
	wg     sync.WaitGroup
	dir    string

	mu   sync.Mutex
	errs []error
}

// Start starts a cluster and returns once the API server serves and the
// scheduler's and controllers' informers have synced. The cluster runs
// until ctx is done or Stop is called.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	api, err := apiserver.New(cfg.APIServer)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kubesim-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &Cluster{API: api, cancel: cancel, dir: dir}
	c.goRun(func() error { return api.Start(ctx) })
	select {
	case <-api.Ready():
	case <-ctx.Done():
		c.Stop()
		return nil, errors.Join(append([]error{ctx.Err()}, c.errors()...)...)
	}
	if len(c.errors()) > 0 {
		c.Stop()
		return nil, errors.Join(c.errors()...)
	}

	// The components talk to the API server as kube-apiserver's clients do,
	// in protobuf, with the simulator's rate limits.
	restConfig := rest.CopyConfig(api.RESTConfig())
	restConfig.QPS, restConfig.Burst = cfg.QPS, cfg.Burst
	restConfig.ContentType = "application/vnd.kubernetes.protobuf"
	restConfig.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"

	if !cfg.DisableScheduler {
		run, err := newScheduler(ctx, cfg, restConfig)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("unable to start the scheduler: %w", err)
		}
		c.goRun(run)
	}
	if !cfg.DisableControllers {
		caFile := filepath.Join(dir, "ca.crt")
		if err := os.WriteFile(caFile, api.CACertPEM(), 0o600); err != nil {
			c.Stop()
			return nil, err
		}
		run, err := newControllers(ctx, cfg, restConfig, caFile)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("unable to start the controllers: %w", err)
		}
		c.goRun(run)
	}
	klog.FromContext(ctx).Info("Cluster started", "url", api.URL(), "scheduler", !cfg.DisableScheduler, "controllers", cfg.Controllers)
	return c, nil
}

// goRun runs fn on the cluster's wait group, recording its error.
func (c *Cluster) goRun(fn func() error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
		}
	}()
}

func (c *Cluster) errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

// Stop shuts the cluster down and waits for every component to return.
// It returns what the components failed with, if anything.
func (c *Cluster) Stop() error {
	c.cancel()
	c.wg.Wait()
	os.RemoveAll(c.dir)
	return errors.Join(c.errors()...)
}

// Wait blocks until the cluster stops (its context is done) and returns
// what the components failed with.
func (c *Cluster) Wait() error {
	c.wg.Wait()
	os.RemoveAll(c.dir)
	return errors.Join(c.errors()...)
}

// componentVerbosity is how much quieter the scheduler's and controllers'
// logs are than kubesim's own: their informational messages show from
// -v 2 (kubesim up -v 2 prints what kube-controller-manager prints at -v 0);
// errors always show.
const componentVerbosity = 2
