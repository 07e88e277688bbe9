package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/internal/pki"
	"github.com/kubesim/kubesim/kubeletsim"
	"github.com/kubesim/kubesim/realnode"
)

// newNodeCommand is `kubesim node`: faults for simulated nodes, through the
// API, so they reach whichever kubesim process simulates the node.
func newNodeCommand() *cobra.Command {
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run simulated nodes against any API server, and inject faults into them",
		Long: `run hosts simulated kubelets against the API server of --kubeconfig (a kubesim,
or a genuine kube-apiserver): more nodes for a cluster, or nodes on other
machines. The other subcommands inject faults into simulated nodes through the
API (the kubesim.io/fault annotation, which the process simulating the node
acts on):

  not-ready   the kubelet reports Ready=False: the node lifecycle controller
              taints the node not-ready:NoExecute and evicts its pods
  stop        the kubelet stops (no lease renewals, status or pod work): after
              the lease expires the node goes Unknown, is tainted unreachable,
              and its pods are evicted
  heal        undo not-ready or stop
  cordon, uncordon, delete   as kubectl does`,
	}
	cmd.PersistentFlags().StringVar(&kubeconfig, "kubeconfig", "./kubesim.kubeconfig", "the kubeconfig of the cluster")
	run := func(use, short string, fn func(cmd *cobra.Command, client kubernetes.Interface, name string) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NODE...",
			Short: short,
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
				if err != nil {
					return err
				}
				client, err := kubernetes.NewForConfig(restConfig)
				if err != nil {
					return err
				}
				for _, name := range args {
					if err := fn(cmd, client, name); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "node/%s %s\n", name, map[string]string{"not-ready": "not ready", "stop": "stopped", "heal": "healed", "cordon": "cordoned", "uncordon": "uncordoned", "delete": "deleted"}[use])
				}
				return nil
			},
		}
	}
	fault := func(f kubeletsim.Fault) func(*cobra.Command, kubernetes.Interface, string) error {
		return func(cmd *cobra.Command, client kubernetes.Interface, name string) error {
			return kubeletsim.SetFault(cmd.Context(), client, name, f)
		}
	}
	cmd.AddCommand(
		newNodeRunCommand(&kubeconfig),
		run("not-ready", "Make simulated nodes report NotReady", fault(kubeletsim.FaultNotReady)),
		run("stop", "Stop simulated nodes' kubelets (leases expire)", fault(kubeletsim.FaultStopped)),
		run("heal", "Undo not-ready and stop", fault(kubeletsim.FaultNone)),
		run("cordon", "Mark nodes unschedulable", func(cmd *cobra.Command, c kubernetes.Interface, name string) error {
			return kubeletsim.Cordon(cmd.Context(), c, name, true)
		}),
		run("uncordon", "Mark nodes schedulable", func(cmd *cobra.Command, c kubernetes.Interface, name string) error {
			return kubeletsim.Cordon(cmd.Context(), c, name, false)
		}),
		run("delete", "Delete nodes (their kubelets stop simulating them)", func(cmd *cobra.Command, c kubernetes.Interface, name string) error {
			return c.CoreV1().Nodes().Delete(cmd.Context(), name, metav1.DeleteOptions{})
		}),
	)
	return cmd
}

type nodeRunOptions struct {
	nodes        int
	nodeConfig   string
	timeScale    float64
	noEvents     bool
	serveAddress string
	nodeIP       string
	shard        string
	real         realNodeOptions
}

// realNodeOptions are node run --real's.
type realNodeOptions struct {
	enabled     bool
	caCert      string
	caKey       string
	namePrefix  string
	clusterCIDR string
	serviceCIDR string
	images      string
}

// newNodeRunCommand is `kubesim node run`: simulated kubelets only.
func newNodeRunCommand(kubeconfig *string) *cobra.Command {
	o := nodeRunOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run simulated nodes against the API server of --kubeconfig until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.real.enabled {
				return runRealNodes(ctx, *kubeconfig, o)
			}
			cfg := kubeletsim.Config{TimeScale: o.timeScale, ServeAddress: o.serveAddress, NodeIP: o.nodeIP, DisableEvents: o.noEvents}
			pools, profiles, err := nodePools(o.nodes, o.nodeConfig)
			if err != nil {
				return err
			}
			cfg.Pools, cfg.Profiles = pools, profiles
			if cfg.Shard, err = parseShard(o.shard); err != nil {
				return err
			}
			if o.real.caCert != "" || o.real.caKey != "" {
				// Kubelet endpoints an API server with
				// --kubelet-certificate-authority trusts.
				if cfg.ServingCA, err = pki.LoadCA(o.real.caCert, o.real.caKey); err != nil {
					return err
				}
			}
			restConfig, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
			if err != nil {
				return err
			}
			// Thousands of kubelets would each have their own limits.
			restConfig.QPS, restConfig.Burst = 20000, 40000
			restConfig.ContentType = "application/vnd.kubernetes.protobuf"
			if cfg.Client, err = kubernetes.NewForConfig(restConfig); err != nil {
				return err
			}
			nodes, err := kubeletsim.New(cfg)
			if err != nil {
				return err
			}
			go func() {
				select {
				case <-nodes.NodesRegistered():
					klog.FromContext(ctx).Info("Simulated nodes registered", "nodes", len(nodes.NodeNames()))
				case <-ctx.Done():
				}
			}()
			return nodes.Start(ctx)
		},
	}
	cmd.Flags().IntVar(&o.nodes, "nodes", 0, "simulated nodes with the default capacity and profile; added to --node-config's pools")
	cmd.Flags().StringVar(&o.nodeConfig, "node-config", "", "a NodeConfig file of node pools and lifecycle profiles")
	cmd.Flags().Float64Var(&o.timeScale, "time-scale", 1, "divide every simulated duration of the nodes' pods by this")
	cmd.Flags().BoolVar(&o.noEvents, "no-node-events", false, "the simulated nodes record no kubelet events")
	cmd.Flags().StringVar(&o.serveAddress, "serve-address", "127.0.0.1:0", "where the nodes' kubelet endpoint (pods/log) listens")
	cmd.Flags().BoolVar(&o.real.enabled, "real", false, "run --nodes real nodes (default 1) instead: the genuine kubelet and kube-proxy over containerd, in network namespaces with no route off the machine (needs root, Debian's containerd, runc, iptables and CNI plugins, and make images)")
	cmd.Flags().StringVar(&o.real.caCert, "ca-cert-file", "", "the cluster CA's certificate: it issues real nodes' credentials (system:node:NAME, system:kube-proxy, serving) and simulated nodes' serving certificate")
	cmd.Flags().StringVar(&o.real.caKey, "ca-key-file", "", "the cluster CA's private key")
	cmd.Flags().StringVar(&o.real.namePrefix, "name-prefix", "real-", "with --real: node names are this prefix and an index from 0")
	cmd.Flags().StringVar(&o.real.clusterCIDR, "cluster-cidr", "10.244.0.0/16", "with --real: the controller manager's --cluster-cidr (kube-proxy's clusterCIDR)")
	cmd.Flags().StringVar(&o.real.serviceCIDR, "service-cidr", "10.96.0.0/16", "with --real: the API server's --service-cluster-ip-range")
	cmd.Flags().StringVar(&o.real.images, "images", "", "with --real: the image tarballs the nodes import (default $KUBESIM_IMAGES or ~/.cache/kubesim/images)")
	cmd.Flags().StringVar(&o.shard, "shard", "", "I/N: host only this process's share of the nodes that --nodes and --node-config describe (those whose index in their pool is I modulo N); N processes with shards 0/N..N-1/N, on one machine or many, host them all once")
	cmd.Flags().StringVar(&o.nodeIP, "node-ip", "", "the InternalIP the nodes report, where the API server reaches their kubelet endpoint (default: --serve-address's host)")
	return cmd
}

// nodePools reads --node-config and adds --nodes default nodes.
func nodePools(count int, file string) ([]kubeletsim.NodePool, []kubeletsim.Profile, error) {
	var pools []kubeletsim.NodePool
	var profiles []kubeletsim.Profile
	if file != "" {
		nc, err := kubeletsim.LoadNodeConfig(file)
		if err != nil {
			return nil, nil, err
		}
		pools, profiles = nc.Pools, nc.Profiles
	}
	if count < 0 {
		return nil, nil, fmt.Errorf("--nodes %d is negative", count)
	}
	if count > 0 {
		pools = append(pools, kubeletsim.NodePool{Name: "node", Count: count})
	}
	return pools, profiles, nil
}

// runRealNodes is node run --real: real nodes join the cluster of
// kubeconfig with credentials its CA issues, until ctx is done; then they
// are deleted and everything they made on this machine is removed.
func runRealNodes(ctx context.Context, kubeconfig string, o nodeRunOptions) error {
	logger := klog.FromContext(ctx)
	if o.real.caCert == "" || o.real.caKey == "" {
		return errors.New("node run --real needs --ca-cert-file and --ca-key-file: the cluster CA issues the nodes' credentials")
	}
	if o.nodeConfig != "" {
		return errors.New("node run --real takes --nodes, not --node-config")
	}
	ca, err := pki.LoadCA(o.real.caCert, o.real.caKey)
	if err != nil {
		return err
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	count := o.nodes
	if count == 0 {
		count = 1
	}
	nodes, err := realnode.Start(ctx, realnode.Config{
		REST: restConfig, CA: ca, Count: count, NamePrefix: o.real.namePrefix,
		ClusterCIDR: o.real.clusterCIDR, ServiceCIDR: o.real.serviceCIDR, ImagesDir: o.real.images,
	})
	if err != nil {
		return err
	}
	if err := nodes.WaitReady(ctx); err == nil {
		logger.Info("Real nodes ready", "nodes", nodes.Names())
	}
	<-ctx.Done()
	return errors.Join(nodes.Stop(), nodes.Delete(context.Background()))
}

// parseShard parses --shard I/N.
func parseShard(s string) (kubeletsim.Shard, error) {
	if s == "" {
		return kubeletsim.Shard{}, nil
	}
	var sh kubeletsim.Shard
	i, n, ok := strings.Cut(s, "/")
	var err1, err2 error
	if ok {
		sh.Index, err1 = strconv.Atoi(i)
		sh.Count, err2 = strconv.Atoi(n)
	}
	if !ok || err1 != nil || err2 != nil || sh.Count < 1 || sh.Index < 0 || sh.Index >= sh.Count {
		return sh, fmt.Errorf("--shard %q: want I/N with 0 <= I < N, as 0/2 and 1/2", s)
	}
	return sh, nil
}
