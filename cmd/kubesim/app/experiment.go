package app

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kubesim/kubesim/sim/experiment"
)

func newExperimentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "experiment",
		Short: "Run scheduler capacity experiments (scheduler_perf's workload files)",
	}
	var o experiment.Options
	var compare []string
	var repeat int
	var cpuProfile string
	run := &cobra.Command{
		Use:   "run FILE",
		Short: "Run the workloads of a scheduler_perf workload file on kubesim and measure them",
		Long: `Run reads a workload file in scheduler_perf's format (for instance
test/integration/scheduler_perf/misc/performance-config.yaml of k8s.io/kubernetes,
unchanged), runs each selected workload on a fresh kubesim cluster (the genuine
kube-scheduler and controllers; the workload's nodes are simulated kubelets, so its
pods also run) and measures it as scheduler_perf does, and more.

It writes into --out: results.json (scheduler_perf's DataItems, which perf-dash
reads), summary.md, and plots as PNG and SVG. A workload that misses its threshold,
or fails, makes the command exit 1 after the others have run. The whole file is
checked before anything starts.`,
		Example: `  kubesim experiment run $(go env GOMODCACHE)/k8s.io/kubernetes@v1.37.2/test/integration/scheduler_perf/misc/performance-config.yaml \
      --filter 'SchedulingBasic/500Nodes$' --out results/`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			// --compare A.yaml B.yaml: B.yaml arrives as an argument.
			if len(args) == 2 {
				if len(compare) != 1 {
					return fmt.Errorf("unexpected argument %q", args[1])
				}
				compare = append(compare, args[1])
			}
			o.Progress = os.Stderr
			o.Terminal = term.IsTerminal(int(os.Stderr.Fd()))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if len(compare) > 0 {
				c, err := experiment.Compare(ctx, o, compare, repeat)
				if err != nil {
					return err
				}
				fmt.Fprint(cmd.OutOrStdout(), c.Markdown())
				return nil
			}
			res, err := experiment.Run(ctx, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, w := range res.Workloads {
				status := "ok"
				if w.Err != nil {
					status = "error: " + w.Err.Error()
				} else if len(w.ThresholdFailures) > 0 {
					status = "threshold missed"
				}
				tp := "-"
				for _, it := range w.DataItems {
					if it.Labels["Metric"] == "SchedulingThroughput" && it.Data != nil {
						tp = fmt.Sprintf("%.1f", it.Data["Average"])
					}
				}
				fmt.Fprintf(out, "%s: SchedulingThroughput average %s pods/s, ran %s: %s\n", w.Name, tp, w.Duration.Round(time.Second), status)
			}
			if o.OutDir != "" {
				fmt.Fprintf(out, "results: %s/results.json, %s/summary.md\n", o.OutDir, o.OutDir)
			}
			if failed := res.Failed(); len(failed) > 0 {
				for _, f := range failed {
					fmt.Fprintln(cmd.ErrOrStderr(), f)
				}
				return fmt.Errorf("%d workload(s) failed", len(failed))
			}
			return nil
		},
	}
	run.Flags().StringVar(&o.Filter, "filter", "", "select workloads by TestCase/Workload, as go test -bench selects scheduler_perf's (e.g. 'SchedulingBasic/500Nodes$')")
	run.Flags().StringVar(&o.Labels, "labels", "", "select workloads by label, as scheduler_perf's -perf-scheduling-label-filter (e.g. 'performance,-short')")
	run.Flags().StringVar(&o.Topic, "topic", "", "the threshold topic (default: the file's directory name, as scheduler_perf's)")
	run.Flags().StringVar(&o.OutDir, "out", "experiment-results", "where results.json, summary.md and the plots go")
	run.Flags().StringVar(&o.SchedulerConfigFile, "scheduler-config", "", "a KubeSchedulerConfiguration for every workload, instead of the test cases' own")
	run.Flags().DurationVar(&o.WorkloadTimeout, "timeout", 30*time.Minute, "give up on a workload after this long")
	run.Flags().StringSliceVar(&compare, "compare", nil, "compare KubeSchedulerConfigurations: --compare A.yaml B.yaml runs the workloads under each, --repeat times, and prints min/median/max of each figure and the ratios")
	run.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run here; its samples carry each component's label (kubesim.component: kube-apiserver, kube-scheduler, ...). Go writes one CPU profile at a time: the summary's CPU by component, measured while the pods are, is then not measured")
	run.Flags().BoolVar(&o.KubeletHeartbeats, "kubelet-heartbeats", false, "simulated nodes renew their leases every 10 s as kubelets do (default: every 2.5 minutes, with a 12.5 min node-monitor grace period: 5,000 nodes at kubelet's pace are 500 API writes a second)")
	run.Flags().IntVar(&o.GCPercent, "gc-percent", 0, "the Go garbage collector's target while the experiment runs (GOGC; 0: 400 unless GOGC is set, -1: the process's own)")
	run.Flags().IntVar(&repeat, "repeat", 3, "with --compare, how many runs of each configuration")
	cmd.AddCommand(run)
	return cmd
}
