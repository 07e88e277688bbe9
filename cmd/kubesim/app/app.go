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
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/apiserver"
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
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	root.PersistentFlags().AddGoFlag(fs.Lookup("v"))
	root.AddCommand(newUpCommand(), newVersionCommand())
	return root
}

type upOptions struct {
	kubeconfig string
	port       int
	bind       string
	compaction time.Duration
}

func newUpCommand() *cobra.Command {
	o := upOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a cluster until interrupted",
		Long: `Run a cluster: the Kubernetes API over HTTPS on loopback, with a CA and serving
certificate generated at start. Once the API serves, a kubeconfig with a
cluster-admin credential is written (atomically) to --kubeconfig.
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
	cmd.Flags().DurationVar(&o.compaction, "compaction-interval", 5*time.Minute, "how often storage history is compacted; watches and paginated lists older than one interval get 410 Expired")
	return cmd
}

func up(ctx context.Context, o upOptions) error {
	logger := klog.FromContext(ctx)
	srv, err := apiserver.New(apiserver.Config{BindAddress: o.bind, Port: o.port, AnyPort: o.port == 0, CompactionInterval: o.compaction})
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		return err
	}
	if err := srv.WriteKubeconfig(o.kubeconfig); err != nil {
		return err
	}
	logger.Info("Cluster ready", "url", srv.URL(), "kubeconfig", o.kubeconfig)
	err = <-errc
	if err != nil && !errors.Is(err, context.Canceled) {
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
