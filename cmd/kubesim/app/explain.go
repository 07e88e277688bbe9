package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubesim/kubesim/sim"
)

func newExplainCommand() *cobra.Command {
	var kubeconfig, output string
	cmd := &cobra.Command{
		Use:   "explain pod NAMESPACE/NAME",
		Short: "Explain the scheduler's decisions for a pod: each filter plugin's rejections by reason, the chosen node",
		Long: `explain asks a kubesim cluster why its genuine kube-scheduler placed a pod where it
did, or why it could not: for each attempt, the nodes each filter plugin rejected,
counted by reason as the FailedScheduling event counts them, the PreFilter and
PostFilter (preemption) messages, and the chosen node with the numbers of nodes
evaluated and feasible. kubesim records these in its process, not in annotations, so
they do not grow with the cluster.`,
		Example: `  kubesim explain pod default/web-0 --kubeconfig kubesim.kubeconfig`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "pod" && args[0] != "pods" && args[0] != "po" {
				return fmt.Errorf("explain: only pods are explained, not %q", args[0])
			}
			ns, name, ok := strings.Cut(args[1], "/")
			if !ok {
				ns, name = "default", args[1]
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			body, err := client.CoreV1().RESTClient().Get().AbsPath(sim.ExplainPath, "namespaces", ns, "pods", name).DoRaw(ctx)
			if err != nil {
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("the scheduler has no record of pod %s/%s (not tried by this cluster's scheduler, or deleted)", ns, name)
				}
				return err
			}
			if output == "json" {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var ex sim.Explanation
			if err := json.Unmarshal(body, &ex); err != nil {
				return err
			}
			printExplanation(cmd.OutOrStdout(), &ex)
			return nil
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "./kubesim.kubeconfig", "the kubeconfig of the cluster")
	cmd.Flags().StringVarP(&output, "output", "o", "", "json for the raw record")
	return cmd
}

func printExplanation(w io.Writer, ex *sim.Explanation) {
	fmt.Fprintf(w, "Pod %s/%s (uid %s): %d attempt(s) recorded\n", ex.Namespace, ex.Name, ex.UID, len(ex.Attempts))
	for i, a := range ex.Attempts {
		fmt.Fprintf(w, "\nAttempt %d at %s (%s): %s", i+1, a.Time.Format("15:04:05.000"), a.Duration.Round(time.Microsecond), a.Result)
		if a.Node != "" {
			fmt.Fprintf(w, " on node %s (%d nodes evaluated, %d feasible)", a.Node, a.EvaluatedNodes, a.FeasibleNodes)
		}
		fmt.Fprintln(w)
		if a.Message != "" {
			fmt.Fprintf(w, "  %s\n", a.Message)
		}
		if len(a.Rejections) > 0 {
			fmt.Fprintf(w, "  Nodes rejected, by plugin and reason (of %d nodes):\n", a.AllNodes)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "    PLUGIN\tREASON\tNODES")
			for _, r := range a.Rejections {
				fmt.Fprintf(tw, "    %s\t%s\t%d\n", r.Plugin, r.Reason, r.Nodes)
			}
			tw.Flush()
		}
		if len(a.TopScores) > 0 {
			fmt.Fprintln(w, "  Best-scored nodes (normalized, weighted plugin scores):")
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "    NODE\tTOTAL\tPLUGINS")
			for _, s := range a.TopScores {
				var ps []string
				for _, p := range s.Plugins {
					ps = append(ps, fmt.Sprintf("%s=%d", p.Plugin, p.Score))
				}
				fmt.Fprintf(tw, "    %s\t%d\t%s\n", s.Node, s.Total, strings.Join(ps, " "))
			}
			tw.Flush()
		}
		if a.PreFilter != "" {
			fmt.Fprintf(w, "  PreFilter: %s\n", a.PreFilter)
		}
		if a.PostFilter != "" {
			fmt.Fprintf(w, "  PostFilter: %s\n", a.PostFilter)
		}
	}
}
