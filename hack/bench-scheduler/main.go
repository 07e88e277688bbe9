package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/sim/experiment"
)

// workload is one row: a file of scheduler_perf (relative to its
// directory) and a -bench style filter selecting one workload.
type workload struct {
	file, filter string
}

// workloads are the issue's: the 500-node (1,000 for PreemptionBasic,
// which has no 500) and the 5,000-node variants.
var workloads = []workload{
	{"misc/performance-config.yaml", "^SchedulingBasic$/^500Nodes$"},
	{"misc/performance-config.yaml", "^SchedulingBasic$/^5000Nodes_10000Pods$"},
	{"misc/performance-config.yaml", "^SchedulingBasic$/^5000Nodes_50000Pods$"},
	{"affinity/performance-config.yaml", "^SchedulingNodeAffinity$/^500Nodes$"},
	{"affinity/performance-config.yaml", "^SchedulingNodeAffinity$/^5000Nodes_10000Pods$"},
	{"affinity/performance-config.yaml", "^SchedulingPodAntiAffinity$/^500Nodes$"},
	{"affinity/performance-config.yaml", "^SchedulingPodAntiAffinity$/^5000Nodes_2000Pods$"},
	{"topology_spreading/performance-config.yaml", "^TopologySpreading$/^500Nodes$"},
	{"topology_spreading/performance-config.yaml", "^TopologySpreading$/^5000Nodes_5000Pods$"},
	{"default_preemption/performance-config.yaml", "^PreemptionBasic$/^1000Nodes$"},
}

type side struct {
	throughput map[string]float64 // Average, Perc50, ...
	duration   time.Duration
	err        error
	detail     string
}

type row struct {
	w                 workload
	name              string
	upstream, kubesim side
}

func main() {
	upstreamBin := flag.String("upstream-bin", "", "scheduler_perf's benchmark binary (go test -c ./hack/bench-scheduler/upstream); empty: kubesim only")
	etcdDir := flag.String("etcd-dir", filepath.Join(os.Getenv("HOME"), ".cache/kubesim-reference/bin"), "where the etcd binary upstream scheduler_perf needs is")
	only := flag.String("only", "", "a regular expression: run the rows whose TestCase/Workload match it")
	out := flag.String("out", "BENCHMARKS.md", "the file whose scheduler section is rewritten (empty: print only)")
	outDir := flag.String("results", "", "where kubesim's results.json, summary.md and plots of each row go (default: a temporary directory)")
	klog.InitFlags(nil)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := upstreamDir()
	if err != nil {
		fatal(err)
	}
	var onlyRE *regexp.Regexp
	if *only != "" {
		onlyRE = regexp.MustCompile(*only)
	}
	if *outDir == "" {
		*outDir, err = os.MkdirTemp("", "bench-scheduler-")
		if err != nil {
			fatal(err)
		}
	}
	var rows []*row
	for _, w := range workloads {
		name := strings.NewReplacer("^", "", "$", "").Replace(w.filter)
		if onlyRE != nil && !onlyRE.MatchString(name) {
			continue
		}
		r := &row{w: w, name: name}
		rows = append(rows, r)
		file := filepath.Join(dir, w.file)
		if *upstreamBin != "" {
			fmt.Printf("%s: upstream scheduler_perf...\n", name)
			r.upstream = runUpstream(ctx, *upstreamBin, *etcdDir, file, w.filter)
			report("upstream", r.upstream)
		}
		fmt.Printf("%s: kubesim...\n", name)
		r.kubesim = runKubesim(ctx, file, w.filter, filepath.Join(*outDir, fileName(name)))
		report("kubesim", r.kubesim)
		if ctx.Err() != nil {
			break
		}
	}
	section := render(rows, *upstreamBin != "")
	fmt.Println(section)
	if *out != "" {
		if err := replaceSection(*out, section); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench-scheduler:", err)
	os.Exit(1)
}

func report(who string, s side) {
	if s.err != nil {
		fmt.Printf("  %s: error: %v\n", who, s.err)
		return
	}
	fmt.Printf("  %s: %.1f pods/s average (p50 %.1f), ran %s; %s\n", who, s.throughput["Average"], s.throughput["Perc50"], s.duration.Round(time.Second), s.detail)
}

func fileName(s string) string {
	return regexp.MustCompile(`[^A-Za-z0-9_-]`).ReplaceAllString(s, "_")
}

// upstreamDir is scheduler_perf's directory of the pinned k8s.io/kubernetes.
func upstreamDir() (string, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", errors.New("no build info")
	}
	for _, d := range bi.Deps {
		if d.Path == "k8s.io/kubernetes" {
			out, err := exec.Command("go", "env", "GOMODCACHE").Output()
			if err != nil {
				return "", err
			}
			return filepath.Join(strings.TrimSpace(string(out)), "k8s.io", "kubernetes@"+d.Version, "test", "integration", "scheduler_perf"), nil
		}
	}
	return "", errors.New("k8s.io/kubernetes is not a dependency")
}

// runUpstream runs scheduler_perf's benchmark for one workload in the
// file's directory (its template paths are relative to it) and reads the
// SchedulingThroughput of the data items it writes.
func runUpstream(ctx context.Context, bin, etcdDir, file, filter string) side {
	items, err := os.MkdirTemp("", "scheduler-perf-items-")
	if err != nil {
		return side{err: err}
	}
	defer os.RemoveAll(items)
	topic := filepath.Base(filepath.Dir(file))
	cmd := exec.CommandContext(ctx, bin,
		"-test.run=^$", "-test.bench=BenchmarkPerfScheduling/"+filter, "-test.benchtime=1x", "-test.timeout=60m",
		"-perf-scheduling-label-filter=", "-data-items-dir="+items)
	cmd.Dir = filepath.Dir(file)
	cmd.Env = append(os.Environ(), "SCHEDULER_PERF_CONFIG="+file, "SCHEDULER_PERF_TOPIC="+topic, "PATH="+etcdDir+":"+os.Getenv("PATH"))
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	start := time.Now()
	runErr := cmd.Run()
	d := time.Since(start)
	fail := func(err error) side {
		tail := output.String()
		if len(tail) > 3000 {
			tail = tail[len(tail)-3000:]
		}
		return side{err: fmt.Errorf("%v:\n%s", err, tail), duration: d}
	}
	// A workload that misses its threshold fails the benchmark (exit 1)
	// after its data items are written: those are the figures.
	matches, _ := filepath.Glob(filepath.Join(items, "BenchmarkPerfScheduling_benchmark_*.json"))
	if len(matches) != 1 {
		if runErr == nil {
			runErr = fmt.Errorf("want one data items file in %s, found %v", items, matches)
		}
		return fail(runErr)
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		return fail(err)
	}
	var di experiment.DataItems
	if err := json.Unmarshal(b, &di); err != nil {
		return fail(err)
	}
	for _, it := range di.DataItems {
		if it.Labels["Metric"] == "SchedulingThroughput" {
			detail := "scheduler_perf's integration kube-apiserver + etcd, nodes that run nothing; whole benchmark process " + d.Round(time.Second).String()
			if runErr != nil {
				if !strings.Contains(output.String(), "to be higher") {
					return fail(runErr)
				}
				detail += "; threshold missed (the benchmark failed, as scheduler_perf fails it)"
			}
			return side{throughput: it.Data, duration: d, detail: detail}
		}
	}
	if runErr != nil {
		return fail(runErr)
	}
	return side{err: fmt.Errorf("no SchedulingThroughput in %s", b), duration: d}
}

// runKubesim runs the workload through sim/experiment in this process.
func runKubesim(ctx context.Context, file, filter, out string) side {
	runtime.GC()
	start := time.Now()
	res, err := experiment.Run(ctx, experiment.Options{File: file, Filter: filter, OutDir: out, Progress: os.Stdout, ProgressInterval: 10 * time.Second})
	d := time.Since(start)
	if err != nil {
		return side{err: err, duration: d}
	}
	if len(res.Workloads) != 1 {
		return side{err: fmt.Errorf("%d workloads ran", len(res.Workloads)), duration: d}
	}
	w := res.Workloads[0]
	if w.Err != nil {
		return side{err: w.Err, duration: d}
	}
	var tp map[string]float64
	for _, it := range w.DataItems {
		if it.Labels["Metric"] == "SchedulingThroughput" {
			tp = it.Data
		}
	}
	startup := "-"
	if len(w.StartupLatency) > 0 {
		startup = percentileString(w.StartupLatency, 0.99)
	}
	detail := fmt.Sprintf("simulated kubelets run the pods; %d pods, measured pods' created-to-Running p99 %s; results in %s", w.Pods, startup, out)
	if len(w.ThresholdFailures) > 0 {
		detail += "; threshold missed"
	}
	if len(w.CPU) > 0 {
		detail += "; CPU while the pods were measured: " + experiment.FormatCPU(w.CPU, w.CPUWall)
	}
	return side{throughput: tp, duration: d, detail: detail}
}

func percentileString(ds []time.Duration, q float64) string {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*q+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)].Round(time.Millisecond).String()
}

const heading = "## Scheduler capacity experiments (make bench-scheduler)"

func render(rows []*row, withUpstream bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", heading)
	fmt.Fprintf(&b, "scheduler_perf's own workload files of the pin, unchanged, in one run on this machine (%d CPUs, %s, %s, %s): ", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	b.WriteString("upstream scheduler_perf (`RunBenchmarkPerfScheduling`: its integration kube-apiserver and etcd, the genuine scheduler in the benchmark process, nodes that are API objects only) ")
	b.WriteString("and `kubesim experiment run` (the same scheduler in kubesim's process, all of kube-controller-manager's controllers, the nodes simulated kubelets that run the pods; experiments' defaults: the API server configured as scheduler_perf's (AlwaysAllow authorization, ServiceAccount, TaintNodesByCondition and Priority admission off), node leases renewed every 2.5 minutes, not kubelet's 10 s, and GOGC 400). ")
	b.WriteString("SchedulingThroughput is scheduler_perf's: pods scheduled per second, sampled every second over the measured pods, its Average the figure thresholds apply to.\n\n")
	b.WriteString("| workload | kubesim (pods/s) | scheduler_perf (pods/s) | ratio | kubesim detail | scheduler_perf detail |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		k, u := fig(r.kubesim), "-"
		ratio := "-"
		if withUpstream {
			u = fig(r.upstream)
			if r.kubesim.err == nil && r.upstream.err == nil && r.upstream.throughput["Average"] > 0 {
				ratio = fmt.Sprintf("%.2f", r.kubesim.throughput["Average"]/r.upstream.throughput["Average"])
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.name, k, u, ratio, detail(r.kubesim), detail(r.upstream))
	}
	b.WriteString("\nReproduce with `make bench-scheduler` (`go run ./hack/bench-scheduler -upstream-bin ...`; `-only REGEX` for some rows).\n")
	return b.String()
}

func fig(s side) string {
	if s.err != nil {
		return "error"
	}
	if s.throughput == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f (p50 %.1f, p90 %.1f)", s.throughput["Average"], s.throughput["Perc50"], s.throughput["Perc90"])
}

func detail(s side) string {
	if s.err != nil {
		msg := strings.ReplaceAll(s.err.Error(), "\n", " ")
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return strings.ReplaceAll(msg, "|", "\\|")
	}
	return strings.ReplaceAll(s.detail, "|", "\\|")
}

// replaceSection replaces the scheduler section of the file (from its
// heading to the next "## " heading), or adds it before "## Scale".
func replaceSection(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	if i := strings.Index(s, heading); i >= 0 {
		rest := s[i+len(heading):]
		end := len(s)
		if j := strings.Index(rest, "\n## "); j >= 0 {
			end = i + len(heading) + j + 1
		}
		s = s[:i] + section + "\n" + s[end:]
	} else if i := strings.Index(s, "\n## Scale"); i >= 0 {
		s = s[:i+1] + section + "\n" + s[i+1:]
	} else {
		s += "\n" + section
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
