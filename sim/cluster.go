package sim

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	utiltrace "k8s.io/utils/trace"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/kubeletsim"
	"github.com/kubesim/kubesim/realnode"
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
	// LeaderElection makes the scheduler and the controllers run only while
	// they hold their leases (kube-system/kube-scheduler and
	// kube-system/kube-controller-manager), as with --leader-elect: for
	// several kubesim processes sharing one etcd. A replica that loses a
	// lease stops, as those components exit. Default: off (one process).
	LeaderElection bool
	// LeaderElectionIdentity is this replica's holder identity in the
	// leases. Default: hostname_UUID, as the upstream components.
	LeaderElectionIdentity string
	// Nodes are pools of simulated nodes (kubeletsim), registered before
	// Start returns; more can be added with Cluster.Nodes.AddNodes.
	// Default: none.
	Nodes []kubeletsim.NodePool
	// NodeProfiles are the lifecycle profiles node pools name; one named
	// "default" replaces kubeletsim.DefaultProfile.
	NodeProfiles []kubeletsim.Profile
	// TimeScale divides every simulated duration of the nodes' pods
	// (profiles, annotations, probe delays, back-off, grace periods): 10
	// runs a 30s job in 3s. Default: 1.
	TimeScale float64
	// DisableNodeEvents stops the simulated kubelets from recording
	// kubelet's events (Pulled, Started, NodeReady, ...). Default: they
	// are recorded.
	DisableNodeEvents bool
	// Clock is the simulated kubelets' clock. Default: the real clock.
	Clock clock.WithTicker
	// NodeLeaseDuration is the simulated nodes' lease duration (kubelet's
	// --node-lease-duration-seconds); they renew every quarter of it.
	// With NodeMonitorGracePeriod (kube-controller-manager's
	// --node-monitor-grace-period, how long a node may go unheard before
	// it is NotReady) it trades how fast a dead node is noticed for the
	// API server's work: 5,000 nodes renewing every 10 s are 500 writes a
	// second. Defaults: 40s and 50s, the components' own.
	NodeLeaseDuration      time.Duration
	NodeMonitorGracePeriod time.Duration

	// CRDDirectoryPaths are files, or directories of files (.yaml, .yml,
	// .json, several documents each), of CustomResourceDefinitions that
	// Start installs and waits for: established and in discovery, before
	// the controllers start (the garbage collector watches their objects
	// from the start). As envtest's option of that name.
	CRDDirectoryPaths []string
	// ErrorIfCRDPathMissing fails Start when a CRD path does not exist.
	// Default: missing paths are skipped.
	ErrorIfCRDPathMissing bool
	// CRDs are more CustomResourceDefinitions to install.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// RealNodes is the number of real nodes (package realnode: the genuine
	// kubelet and kube-proxy over containerd, in network namespaces with no
	// route off the machine), started after the control plane; Start
	// returns once they are Ready. Needs root and make images. Default: 0.
	RealNodes int
	// RealNodeImages is where the real nodes' image tarballs are.
	// Default: realnode.DefaultImagesDir().
	RealNodeImages string
	// DisableAddons runs none of the cluster add-ons that run with the
	// controllers: the default StorageClass "standard" and its
	// provisioner (package addons/storage), LoadBalancer addresses
	// (addons/loadbalancer), metrics-server serving metrics.k8s.io from
	// the nodes' resource metrics (addons/metrics). Default: they run,
	// unless DisableControllers.
	DisableAddons bool
	// LoadBalancerCIDR is the pool LoadBalancer Services get their
	// addresses from. Default: loadbalancer.DefaultCIDR (10.240.0.0/24).
	LoadBalancerCIDR string
	// Webhooks are the operator's admission webhooks (and the CRDs'
	// conversion webhooks), served locally with a certificate the cluster
	// trusts and registered before Start returns.
	Webhooks Webhooks
}

// defaultClusterCIDRs are the podCIDR ranges used when Config.ClusterCIDR
// is empty: kind's for up to 256 nodes (a /24 each), a /10 for more (up to 16,384 nodes; outside 10.250.0.0/16, the real nodes' network).
const (
	defaultClusterCIDR      = "10.244.0.0/16"
	defaultLargeClusterCIDR = "10.128.0.0/10"
)

func (c *Config) complete() error {
	if c.APIServer.Port == 0 {
		// Clusters of one test binary each take a free port.
		c.APIServer.AnyPort = true
	}
	if len(c.Controllers) == 0 {
		c.Controllers = []string{"*"}
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = defaultClusterCIDR
		nodes := 0
		for _, p := range c.Nodes {
			nodes += p.Count
		}
		if nodes > 256 {
			c.ClusterCIDR = defaultLargeClusterCIDR
		}
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
	if c.LeaderElectionIdentity == "" {
		host, _ := os.Hostname()
		c.LeaderElectionIdentity = host + "_" + string(uuid.NewUUID())
	}
	if c.NodeLeaseDuration < 0 || c.NodeMonitorGracePeriod < 0 {
		return fmt.Errorf("NodeLeaseDuration and NodeMonitorGracePeriod must not be negative, got %v and %v", c.NodeLeaseDuration, c.NodeMonitorGracePeriod)
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
	// Nodes are the simulated kubelets: add and remove nodes, inject
	// faults.
	Nodes *kubeletsim.Simulator
	// RealNodes are the real nodes, nil without Config.RealNodes.
	RealNodes *realnode.Nodes
	// realStarted is closed once the real nodes' start returned, with
	// RealNodes or realErr set; nil without real nodes.
	realStarted <-chan struct{}
	realErr     error
	// Webhooks is where the operator's webhooks are called, nil without
	// Config.Webhooks (or conversion webhooks).
	Webhooks *WebhookServer

	cancel context.CancelFunc
	// stopAPI stops the API server, after the components: they release
	// their leases and flush events on the way out.
	stopAPI    context.CancelFunc
	wg         sync.WaitGroup // everything
	components sync.WaitGroup // the scheduler and the controllers
	building   sync.WaitGroup // their construction
	dir        string
	kubeconfig string

	// explain records the scheduler's attempts (Explain).
	explain *explainer

	mu   sync.Mutex
	errs []error
}

// Explain returns why the scheduler placed a pod where it did, or why it
// could not: its attempts, with each filter plugin's rejections by reason.
// The pod must have been tried by this cluster's scheduler and not
// deleted since.
func (c *Cluster) Explain(namespace, name string) (*Explanation, bool) {
	return c.explain.get(namespace, name)
}

// nodesBeforeControllers is the number of initial nodes from which the
// scheduler and the controllers start once the nodes' Nodes exist.
const nodesBeforeControllers = 500

// Start starts a cluster and returns once the API server serves and the
// scheduler's and controllers' informers have synced. The cluster runs
// until ctx is done or Stop is called.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	// One object per pod revision is shared by every in-process cache of
	// pods: the API server's (PodSecurity's), the scheduler's and the
	// controller manager's (which the simulated kubelets read).
	pods := newPodInterner()
	if cfg.APIServer.InformerTransform == nil {
		cfg.APIServer.InformerTransform = pods.transform
	}
	// The scheduler's explanations are served by the API server.
	explain := newExplainer()
	handlers := map[string]http.Handler{ExplainPath: explain}
	for k, v := range cfg.APIServer.NonResourceHandlers {
		handlers[k] = v
	}
	cfg.APIServer.NonResourceHandlers = handlers
	tr := utiltrace.New("Start the cluster")
	defer func() {
		if klog.V(2).Enabled() {
			tr.Log()
		}
	}()
	api, err := apiserver.New(cfg.APIServer)
	if err != nil {
		return nil, err
	}
	tr.Step("API server built")
	dir, err := os.MkdirTemp("", "kubesim-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	apiCtx, stopAPI := context.WithCancel(context.WithoutCancel(ctx))
	c := &Cluster{API: api, cancel: cancel, stopAPI: stopAPI, dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig"), explain: explain}
	// The label goes into the context too: the API server serves its
	// in-process requests in goroutines labelled from it.
	apiDone := make(chan struct{})
	c.goRun(&c.wg, func() (err error) {
		defer close(apiDone)
		pprof.Do(apiCtx, pprof.Labels(ComponentLabel, "kube-apiserver"), func(ctx context.Context) { err = api.Start(ctx) })
		return err
	})
	select {
	case <-api.Ready():
	case <-apiDone:
		// It failed before it was ready; its error is recorded once
		// Stop has waited for it.
		c.Stop()
		if errs := c.errors(); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, errors.New("the API server stopped before it was ready")
	case <-ctx.Done():
		c.Stop()
		return nil, errors.Join(append([]error{ctx.Err()}, c.errors()...)...)
	}
	if len(c.errors()) > 0 {
		c.Stop()
		return nil, errors.Join(c.errors()...)
	}
	tr.Step("API server ready")
	if err := api.WriteKubeconfig(c.kubeconfig); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.installExtensions(ctx, cfg); err != nil {
		c.Stop()
		return nil, err
	}
	tr.Step("kubeconfig and extensions")
	if cfg.RealNodes > 0 {
		c.startRealNodes(ctx, cfg)
	}

	// The scheduler and the controllers are built, and their informers
	// synced, side by side.
	var components []*component
	var built atomic.Bool // the initial build is done
	// kube-controller-manager's informers are built first: the simulated
	// kubelets watch pods and nodes through them.
	var controllerInformers informers.SharedInformerFactory
	if !cfg.DisableControllers {
		restConfig, err := componentConfig(api, cfg, user.KubeControllerManager, apiserver.ComponentsGroup)
		if err == nil {
			controllerInformers, err = newControllerInformers(restConfig, pods)
		}
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("unable to start the kube-controller-manager: %w", err)
		}
	}
	// The simulated kubelets are built before the scheduler and the
	// controllers, whose construction runs in parallel: they add indexers
	// to the same pod informer (kube-controller-manager's spec.nodeName
	// index among them), which client-go does not guard against
	// concurrent additions. The nodes register while the others are built.
	if err := c.startNodes(ctx, cfg, controllerInformers); err != nil {
		c.Stop()
		return nil, err
	}
	tr.Step("controller informers and nodes started")
	build := func(name string, fn func(ctx context.Context) (*rest.Config, func() error, error)) {
		comp := &component{name: name, build: fn}
		components = append(components, comp)
		c.goRun(&c.building, labeled(name, func() error {
			termCtx, cancel := context.WithCancel(ctx)
			comp.cfg, comp.run, comp.err = fn(termCtx)
			comp.cancel = cancel
			return nil
		}))
	}
	if !cfg.DisableScheduler {
		build("kube-scheduler", func(ctx context.Context) (*rest.Config, func() error, error) {
			restConfig, err := componentConfig(api, cfg, user.KubeScheduler)
			if err != nil {
				return nil, nil, err
			}
			run, err := newScheduler(ctx, cfg, restConfig, pods, c.explain)
			return restConfig, run, err
		})
	}
	if !cfg.DisableControllers {
		build("kube-controller-manager", func(termCtx context.Context) (*rest.Config, func() error, error) {
			// kube-controller-manager without --use-service-account-credentials
			// acts for every controller, so its credential is privileged; API
			// Priority and Fairness classifies it as kube-apiserver does
			// system:kube-controller-manager (workload-high).
			restConfig, err := componentConfig(api, cfg, user.KubeControllerManager, apiserver.ComponentsGroup)
			if err != nil {
				return nil, nil, err
			}
			files := controllerFiles{CA: filepath.Join(dir, "ca.crt"), ServiceAccountKey: filepath.Join(dir, "sa.key")}
			if err := errors.Join(os.WriteFile(files.CA, api.CACertPEM(), 0o600), os.WriteFile(files.ServiceAccountKey, api.ServiceAccountKeyPEM(), 0o600)); err != nil {
				return nil, nil, err
			}
			run, err := newControllers(termCtx, ctx, cfg, restConfig, files, controllerInformers)
			return restConfig, run, err
		})
	}
	if !cfg.DisableControllers && !cfg.DisableAddons {
		build(addonsComponent, func(termCtx context.Context) (*rest.Config, func() error, error) {
			// The add-ons act as a cluster's add-ons do, a service account of
			// kube-system (API Priority and Fairness: workload-high).
			restConfig, err := componentConfig(api, cfg, addonsUser, "system:serviceaccounts", "system:serviceaccounts:kube-system", apiserver.ComponentsGroup)
			if err != nil {
				return nil, nil, err
			}
			run, err := newAddons(termCtx, cfg, api, restConfig, controllerInformers, c.Nodes)
			// Informers the add-ons asked for, when they are rebuilt
			// alone, start too (the controllers start the others).
			if err == nil && built.Load() {
				labeled("kube-controller-manager", func() error { controllerInformers.Start(ctx.Done()); return nil })()
			}
			return restConfig, run, err
		})
	}
	c.building.Wait()
	built.Store(true)
	tr.Step("components built")
	var failed []error
	for _, comp := range components {
		if comp.err != nil {
			failed = append(failed, fmt.Errorf("unable to start the %s: %w", comp.name, comp.err))
		}
	}
	if len(failed) > 0 {
		// What was built runs until Stop cancels it.
		for _, comp := range components {
			if comp.run != nil {
				c.goRun(&c.components, comp.run)
			}
		}
		c.Stop()
		return nil, errors.Join(failed...)
	}
	// The simulated nodes' Nodes first, then the scheduler and the
	// controllers, as after a control-plane restart: the controllers take
	// in thousands of nodes in one pass. While nodes are still joining, the
	// EndpointSlice controller's topology cache goes over every node after
	// each one that joins, which slowed registration by a third at 5,000
	// nodes. Small clusters start everything together, so that the
	// controllers have run a while when Start returns (the quota
	// controller's monitors, for one, start after it).
	initialNodes := 0
	for _, p := range cfg.Nodes {
		initialNodes += p.Count
	}
	if initialNodes >= nodesBeforeControllers {
		select {
		case <-c.Nodes.NodesCreated():
		case <-c.Nodes.Done():
		case <-ctx.Done():
		}
	}
	for _, comp := range components {
		c.goRun(&c.components, labeled(comp.name, c.leaderElected(ctx, cfg, comp)))
	}
	tr.Step("components started")
	if len(cfg.Nodes) > 0 {
		select {
		case <-c.Nodes.NodesRegistered():
		case <-c.Nodes.Done():
			c.Stop()
			return nil, errors.Join(append([]error{errors.New("the simulated nodes stopped before they registered")}, c.errors()...)...)
		case <-ctx.Done():
			c.Stop()
			return nil, errors.Join(append([]error{ctx.Err()}, c.errors()...)...)
		}
	}
	if cfg.RealNodes > 0 {
		if err := c.waitRealNodes(ctx); err != nil {
			c.Stop()
			return nil, err
		}
		tr.Step("real nodes Ready")
	}
	// The cluster stops when ctx is done: the real nodes, the components,
	// then the API.
	c.goRun(&c.wg, func() error {
		<-ctx.Done()
		if c.RealNodes != nil {
			if err := c.RealNodes.Stop(); err != nil {
				klog.FromContext(ctx).Error(err, "Stopping the real nodes")
			}
		}
		c.components.Wait()
		c.stopAPI()
		return nil
	})
	klog.FromContext(ctx).Info("Cluster started", "url", api.URL(), "scheduler", !cfg.DisableScheduler, "controllers", cfg.Controllers)
	return c, nil
}

// componentConfig is how a component talks to the API server: as its own
// user (system:kube-scheduler, whom the bootstrapped RBAC policy authorizes,
// system:kube-controller-manager), in protobuf as kube-apiserver's clients
// do, with the simulator's rate limits, through the in-process transport
// (the server's handler called directly: no TLS, HTTP/2 or socket).
func componentConfig(api *apiserver.Server, cfg Config, name string, groups ...string) (*rest.Config, error) {
	restConfig, err := api.InProcessRESTConfig(name, groups...)
	if err != nil {
		return nil, err
	}
	restConfig.QPS, restConfig.Burst = cfg.QPS, cfg.Burst
	restConfig.ContentType = "application/vnd.kubernetes.protobuf"
	restConfig.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return restConfig, nil
}

// startNodes builds the simulated kubelets and starts them; they register
// while the scheduler and the controllers are built. They act as a
// privileged user: one process stands in for many kubelets, which the Node
// authorizer would each confine to their own node. In system:nodes, API
// Priority and Fairness classifies their requests as kubelets' (system-
// node-high, system-nodes), though as one user's: one flow. With shared set (the
// controller manager's informers) they watch pods and nodes through it, and
// it is started here.
func (c *Cluster) startNodes(ctx context.Context, cfg Config, shared informers.SharedInformerFactory) error {
	restConfig, err := componentConfig(c.API, cfg, "system:kubesim:kubeletsim", user.NodesGroup, apiserver.ComponentsGroup)
	if err != nil {
		return err
	}
	// Thousands of kubelets would each have their own limits: the API
	// server, not a client rate limiter, is what bounds them.
	restConfig.QPS, restConfig.Burst = 20000, 40000
	restConfig.UserAgent = userAgent("kubelet", "")
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	clientCA := x509.NewCertPool()
	clientCA.AppendCertsFromPEM(c.API.CACertPEM())
	nodes, err := kubeletsim.New(kubeletsim.Config{
		Client:        client,
		Clock:         cfg.Clock,
		Pools:         cfg.Nodes,
		Profiles:      cfg.NodeProfiles,
		TimeScale:     cfg.TimeScale,
		ClientCA:      clientCA,
		ServingCA:     c.API.CA(),
		DisableEvents: cfg.DisableNodeEvents,
		Informers:     shared,
		LeaseDuration: cfg.NodeLeaseDuration,
	})
	if err != nil {
		return fmt.Errorf("unable to start the simulated nodes: %w", err)
	}
	c.Nodes = nodes
	// The shared informers start once the controllers are built
	// (newControllers), as kube-controller-manager starts its informers
	// after building every controller: a controller's constructor adds its
	// event handlers before it sets the listers they use, and an informer
	// already running would hand them the stored objects at once (pods kept
	// by a data dir or another API server on etcd).
	c.goRun(&c.components, labeled("kubeletsim", func() error { return nodes.Start(ctx) }))
	return nil
}

// component is the kube-scheduler, the kube-controller-manager or the
// add-ons: built (informers synced), then run.
type component struct {
	name string
	// build builds the component for a term that ends with ctx; run runs
	// it until then.
	build  func(ctx context.Context) (*rest.Config, func() error, error)
	run    func() error
	err    error
	cfg    *rest.Config
	cancel context.CancelFunc // ends the term
}

// ComponentLabel is the pprof label key under which each component's
// goroutines run (values: kube-apiserver, kube-scheduler,
// kube-controller-manager, kubeletsim), so that a CPU profile tells their
// shares apart.
const ComponentLabel = "kubesim.component"

// labeled runs fn, and every goroutine it starts, under the component's
// pprof label.
func labeled(component string, fn func() error) func() error {
	return func() (err error) {
		pprof.Do(context.Background(), pprof.Labels(ComponentLabel, component), func(context.Context) { err = fn() })
		return err
	}
}

// goRun runs fn on wg, recording its error.
func (c *Cluster) goRun(wg *sync.WaitGroup, fn func() error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
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
	if c.realStarted != nil {
		<-c.realStarted
	}
	var rerr error
	if c.RealNodes != nil {
		rerr = c.RealNodes.Stop()
	}
	c.components.Wait()
	c.stopAPI()
	c.wg.Wait()
	werr := c.Webhooks.stop()
	os.RemoveAll(c.dir)
	return errors.Join(append(c.errors(), werr, rerr)...)
}

// Wait blocks until the cluster stops (its context is done) and returns
// what the components failed with.
func (c *Cluster) Wait() error {
	c.wg.Wait()
	werr := c.Webhooks.stop()
	os.RemoveAll(c.dir)
	return errors.Join(append(c.errors(), werr)...)
}

// componentVerbosity is how much quieter the scheduler's and controllers'
// logs are than kubesim's own: their informational messages show from
// -v 2 (kubesim up -v 2 prints what kube-controller-manager prints at -v 0);
// errors always show.
const componentVerbosity = 2
