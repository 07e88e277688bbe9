package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/internal/hugepages"
	"github.com/kubesim/kubesim/internal/hugepages/early"
	"github.com/kubesim/kubesim/internal/startgc"
	"github.com/kubesim/kubesim/sim"
)

// Run runs the command line with args and returns the exit code.
func Run(args []string) int {
	cmd := NewCommand()
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		return 1
	}
	return 0
}

// NewCommand returns the kubesim root command.
func NewCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "kubesim",
		Short:         "A Kubernetes test and simulation cluster in one process",
		SilenceUsage:  true,
		SilenceErrors: false,
		// The collector held from initialisation for kubesim up
		// (internal/startgc/atinit) runs as usual for the others.
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			if cmd.Name() != "up" {
				startgc.Release()
			}
		},
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	root.PersistentFlags().AddGoFlag(fs.Lookup("v"))
	root.AddCommand(newUpCommand(), newNodeCommand(), newExperimentCommand(), newExplainCommand(), newVersionCommand())
	return root
}

type upOptions struct {
	kubeconfig string
	port       int
	bind       string
	dataDir    string
	pkiDir     string
	storage    string
	etcd       apiserver.EtcdConfig
	compaction time.Duration
	eventTTL   time.Duration
	cluster    sim.Config
	scheduler  bool
	controller bool
	nodes      int
	nodeConfig string
	hugePages  bool
	addons     bool
	// kube-apiserver's request limits, as its flags give them.
	requestTimeout              time.Duration
	maxRequestsInFlight         int
	maxMutatingRequestsInFlight int
	priorityAndFairness         bool
	// kube-apiserver's --audit-* flags.
	audit *genericoptions.AuditOptions
}

func newUpCommand() *cobra.Command {
	o := upOptions{audit: apiserver.NewAuditOptions()}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a cluster until interrupted",
		Long: `Run a cluster: the Kubernetes API over HTTPS on loopback, with a CA and serving
certificate generated at start, and the genuine kube-scheduler and
kube-controller-manager controllers in the same process. Once the API serves
and the components' informers have synced, a kubeconfig with a cluster-admin
credential is written (atomically) to --kubeconfig.
SIGINT or SIGTERM shuts the cluster down cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return up(ctx, o)
		},
	}
	cmd.Flags().StringVar(&o.kubeconfig, "kubeconfig", "./kubesim.kubeconfig", "where to write the kubeconfig of the cluster-admin user")
	cmd.Flags().IntVar(&o.port, "port", 6443, "port to serve the API on; 0 picks a free port")
	cmd.Flags().StringVar(&o.bind, "bind-address", "127.0.0.1", "IP address to serve the API on")
	cmd.Flags().DurationVar(&o.requestTimeout, "request-timeout", time.Minute, "how long a request that is not long-running (watches, exec, logs, proxies are) may run before it is answered 504, as kube-apiserver's flag; a request's timeout parameter may ask for less")
	cmd.Flags().IntVar(&o.maxRequestsInFlight, "max-requests-inflight", 400, "as kube-apiserver's flag: with API Priority and Fairness, this plus --max-mutating-requests-inflight is the concurrency the priority levels share; without it, the most non-mutating requests served at once (0: no limit)")
	cmd.Flags().IntVar(&o.maxMutatingRequestsInFlight, "max-mutating-requests-inflight", 200, "as kube-apiserver's flag: see --max-requests-inflight; without API Priority and Fairness, the most mutating requests served at once (0: no limit)")
	cmd.Flags().BoolVar(&o.priorityAndFairness, "enable-priority-and-fairness", true, "serve with API Priority and Fairness (FlowSchemas and PriorityLevelConfigurations; 429 with Retry-After when a level's queues are full), as kube-apiserver's flag; false: the max-in-flight limits instead")
	o.audit.AddFlags(cmd.Flags())
	cmd.Flags().DurationVar(&o.eventTTL, "event-ttl", time.Hour, "how long events are kept after their last write, as kube-apiserver's --event-ttl")
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "", "keep the cluster's state in this directory: every write is persisted (fsynced) before it is acknowledged, a restart (even after kill -9) comes back at the last acknowledged revision, and the CAs and service-account key kept there keep kubeconfigs and tokens valid; default: state in memory")
	cmd.Flags().StringVar(&o.storage, "storage", "memory", "where the cluster's state lives: memory (with --data-dir: memory made durable by that directory) or etcd (kube-apiserver's layout and encodings, for several API servers on one etcd)")
	cmd.Flags().StringSliceVar(&o.etcd.Servers, "etcd-servers", nil, "with --storage etcd: the etcd client URLs, as kube-apiserver's flag")
	cmd.Flags().StringVar(&o.etcd.CAFile, "etcd-cafile", "", "with --storage etcd: the CA that signed etcd's serving certificate")
	cmd.Flags().StringVar(&o.etcd.CertFile, "etcd-certfile", "", "with --storage etcd: the client certificate for etcd")
	cmd.Flags().StringVar(&o.etcd.KeyFile, "etcd-keyfile", "", "with --storage etcd: the client key for etcd")
	cmd.Flags().StringVar(&o.etcd.Prefix, "etcd-prefix", "/registry", "with --storage etcd: the prefix of every key, as kube-apiserver's flag")
	cmd.Flags().StringVar(&o.pkiDir, "pki-dir", "", "keep the cluster CA, the front-proxy CA and the service-account key in this directory (read when there, written when not), so that kubeconfigs and tokens stay valid across restarts and across API servers that share an etcd (default: DATA-DIR/pki with --data-dir)")
	cmd.Flags().DurationVar(&o.compaction, "compaction-interval", 5*time.Minute, "how often storage history is compacted; watches and paginated lists older than one interval get 410 Expired")
	cmd.Flags().BoolVar(&o.scheduler, "scheduler", true, "run the genuine kube-scheduler")
	cmd.Flags().StringVar(&o.cluster.SchedulerConfigFile, "scheduler-config", "", "a KubeSchedulerConfiguration file for the scheduler (its clientConnection and leaderElection are ignored)")
	cmd.Flags().BoolVar(&o.controller, "controller-manager", true, "run the genuine kube-controller-manager controllers")
	cmd.Flags().StringSliceVar(&o.cluster.Controllers, "controllers", []string{"*"}, "the controllers to run, as kube-controller-manager's --controllers: '*' is every controller on by default, 'foo' enables foo, '-foo' disables foo")
	cmd.Flags().StringVar(&o.cluster.ClusterCIDR, "cluster-cidr", "", "the range node IPAM allocates podCIDRs from (default 10.244.0.0/16, or 10.128.0.0/10 for more than 256 nodes)")
	cmd.Flags().IntVar(&o.cluster.RealNodes, "real-nodes", 0, "real nodes to run: the genuine kubelet and kube-proxy over containerd, in network namespaces with no route off the machine (needs root, Debian's containerd, runc, iptables and CNI plugins, and make images)")
	cmd.Flags().StringVar(&o.cluster.RealNodeImages, "real-node-images", "", "the image tarballs real nodes import (default $KUBESIM_IMAGES or ~/.cache/kubesim/images)")
	cmd.Flags().IntVar(&o.nodes, "nodes", 0, "simulated nodes to run, with the default capacity (32 cpu, 256Gi memory, 110 pods) and lifecycle profile; added to --node-config's pools")
	cmd.Flags().StringVar(&o.nodeConfig, "node-config", "", "a NodeConfig file (kind: NodeConfig, apiVersion: kubesim.io/v1alpha1) of simulated node pools and lifecycle profiles; see testdata/nodes")
	cmd.Flags().Float64Var(&o.cluster.TimeScale, "time-scale", 1, "divide every simulated duration of the nodes' pods by this: 10 runs a 30s job in 3s")
	cmd.Flags().BoolVar(&o.cluster.DisableNodeEvents, "no-node-events", false, "the simulated nodes record no kubelet events (Pulled, Started, NodeReady, ...)")
	cmd.Flags().Float32Var(&o.cluster.QPS, "kube-api-qps", 1000, "client QPS of the scheduler and the controllers")
	cmd.Flags().IntVar(&o.cluster.Burst, "kube-api-burst", 2000, "client burst of the scheduler and the controllers")
	cmd.Flags().BoolVar(&o.cluster.LeaderElection, "leader-elect", false, "run the scheduler and the controllers only while they hold their leases in kube-system, for several replicas sharing storage; a replica that loses a lease exits")
	cmd.Flags().StringVar(&o.cluster.LeaderElectionIdentity, "leader-elect-identity", "", "this replica's holder identity in the leases (default hostname_UUID)")
	cmd.Flags().StringVar(&o.cluster.LoadBalancerCIDR, "load-balancer-cidr", "10.240.0.0/24", "the pool LoadBalancer Services get their addresses (status.loadBalancer.ingress) from")
	cmd.Flags().BoolVar(&o.addons, "addons", true, "run the cluster add-ons: the default StorageClass \"standard\" and its provisioner, LoadBalancer addresses")
	cmd.Flags().BoolVar(&o.hugePages, "huge-pages", true, "where the system's transparent huge pages are set to madvise, ask for them for the process's heap (the scheduler and the garbage collector walk it at random; see BENCHMARKS.md)")
	return cmd
}

func up(ctx context.Context, o upOptions) error {
	logger := klog.FromContext(ctx)
	cfg := o.cluster
	cfg.APIServer = apiserver.Config{BindAddress: o.bind, Port: o.port, AnyPort: o.port == 0, CompactionInterval: o.compaction, EventTTL: o.eventTTL, DataDir: o.dataDir, PKIDir: o.pkiDir,
		RequestTimeout: o.requestTimeout, DisablePriorityAndFairness: !o.priorityAndFairness, Audit: o.audit}
	if o.requestTimeout <= 0 {
		return errors.New("--request-timeout must be positive")
	}
	if o.maxRequestsInFlight < 0 || o.maxMutatingRequestsInFlight < 0 {
		return errors.New("--max-requests-inflight and --max-mutating-requests-inflight can not be negative")
	}
	if o.priorityAndFairness && o.maxRequestsInFlight+o.maxMutatingRequestsInFlight <= 0 {
		return errors.New("with --enable-priority-and-fairness, --max-requests-inflight plus --max-mutating-requests-inflight must be positive")
	}
	// kube-apiserver's 0, no limit, is a negative limit in the Config.
	cfg.APIServer.MaxRequestsInFlight, cfg.APIServer.MaxMutatingRequestsInFlight = noLimitIfZero(o.maxRequestsInFlight), noLimitIfZero(o.maxMutatingRequestsInFlight)
	switch o.storage {
	case "memory":
		if len(o.etcd.Servers) > 0 {
			return errors.New("--etcd-servers needs --storage etcd")
		}
	case "etcd":
		if o.dataDir != "" {
			return errors.New("--data-dir and --storage etcd exclude each other: etcd keeps the state (use --pki-dir for the keys)")
		}
		if len(o.etcd.Servers) == 0 {
			return errors.New("--storage etcd needs --etcd-servers")
		}
		etcd := o.etcd
		cfg.APIServer.Etcd = &etcd
	default:
		return fmt.Errorf("unknown --storage %q: memory or etcd", o.storage)
	}
	cfg.DisableScheduler = !o.scheduler
	cfg.DisableControllers = !o.controller
	cfg.DisableAddons = !o.addons
	var err error
	if cfg.Nodes, cfg.NodeProfiles, err = nodePools(o.nodes, o.nodeConfig); err != nil {
		return err
	}
	// The collector waits until the cluster is ready (or the heap has
	// grown to startgc.DefaultLimit): what a start allocates stays live.
	// In the kubesim binary it has waited since the process's
	// initialisation (package atinit); Hold starts it where a main without
	// atinit runs the command.
	startgc.Hold(startgc.DefaultLimit)
	defer startgc.Release()
	cluster, err := sim.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if err := cluster.API.WriteKubeconfig(o.kubeconfig); err != nil {
		return errors.Join(err, cluster.Stop())
	}
	startgc.Release()
	// The marking from initialisation (internal/hugepages/early) ends here;
	// hugepages.Advise takes over.
	early.Stop()
	if o.hugePages {
		// Once ready: marking a mapping collapses its pages into huge ones
		// (MADV_COLLAPSE), CPU a start, whose heap grows by a mapping every
		// few milliseconds, would wait for; its first round marks what the
		// start mapped.
		go func() {
			if err := hugepages.Advise(ctx, hugepages.Options{}); err != nil {
				logger.Error(err, "Transparent huge pages not advised")
			}
		}()
	}
	logger.Info("Cluster ready", "url", cluster.API.URL(), "kubeconfig", o.kubeconfig)
	if err := cluster.Wait(); err != nil {
		return err
	}
	logger.Info("Cluster stopped")
	return nil
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the Kubernetes version kubesim serves",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), apiserver.Version().GitVersion)
		},
	}
}

// noLimitIfZero maps a max-in-flight flag, where 0 is no limit, to its
// apiserver.Config field, where 0 is the default and a negative no limit.
func noLimitIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
