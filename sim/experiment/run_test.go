package experiment

import (
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kubesim/kubesim/sim"
)

func upstreamDir(t *testing.T) string {
	t.Helper()
	dir, err := SchedulerPerfDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRunUpstreamWorkload runs scheduler_perf's SchedulingBasic/5Nodes,
// from its own file, and checks what a user reads: every pod scheduled
// and Running on the simulated nodes, the data items perf-dash reads,
// summary.md and plots that decode.
func TestRunUpstreamWorkload(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{
		File:   filepath.Join(upstreamDir(t), "misc", "performance-config.yaml"),
		Filter: "^SchedulingBasic$/^5Nodes$",
		OutDir: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Workloads) != 1 {
		t.Fatalf("%d workloads ran, want 1", len(res.Workloads))
	}
	w := res.Workloads[0]
	if w.Err != nil || len(w.ThresholdFailures) > 0 {
		t.Fatalf("workload failed: %v %v", w.Err, w.ThresholdFailures)
	}
	if res.Topic != "misc" {
		t.Errorf("topic %q, want misc (the file's directory)", res.Topic)
	}
	// 5 initial and 10 measured pods on 5 nodes.
	if w.Nodes != 5 || w.Pods != 15 {
		t.Errorf("%d nodes and %d pods, want 5 and 15", w.Nodes, w.Pods)
	}
	if len(w.SchedulingLatency) != 10 {
		t.Errorf("%d measured pods with a scheduling latency, want 10", len(w.SchedulingLatency))
	}
	// The nodes run their pods: all 15 reach Running.
	deadline := len(w.StartupLatency)
	if deadline != 10 {
		t.Errorf("%d measured pods seen Running, want 10", deadline)
	}
	if w.Attempts["scheduled"] != 15 {
		t.Errorf("scheduled attempts %v, want 15", w.Attempts["scheduled"])
	}
	var cpu *Utilisation
	for i := range w.Utilisation {
		if w.Utilisation[i].Resource == "cpu" {
			cpu = &w.Utilisation[i]
		}
	}
	// 15 pods of 100m on 5 nodes of 4 CPUs.
	if cpu == nil || math.Abs(cpu.Requested-1.5) > 1e-9 || math.Abs(cpu.Allocatable-20) > 1e-9 {
		t.Errorf("cpu utilisation %+v, want 1.5 of 20", cpu)
	}

	// The components' CPU is measured over the measured pods' window: at
	// 100 samples a second, a window of a fifth of a second has some.
	if w.CPUNote != "" || w.CPUWall <= 0 {
		t.Errorf("CPU not measured: %q over %v", w.CPUNote, w.CPUWall)
	}
	if w.CPUWall >= 200*time.Millisecond && len(w.CPU) == 0 {
		t.Errorf("no CPU samples over %v", w.CPUWall)
	}
	var shares float64
	for _, c := range w.CPU {
		shares += c.Share
	}
	if len(w.CPU) > 0 && math.Abs(shares-1) > 1e-9 {
		t.Errorf("CPU shares %+v add up to %v, want 1", w.CPU, shares)
	}

	var items DataItems
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &items); err != nil {
		t.Fatal(err)
	}
	metrics := map[string]bool{}
	for _, it := range items.DataItems {
		metrics[it.Labels["Metric"]] = true
		if it.Labels["Name"] == "" {
			t.Errorf("data item without a Name: %+v", it)
		}
	}
	// 10 pods scheduled within a second give no throughput sample: as
	// scheduler_perf's, the item is there with its Name and no Metric.
	if !metrics["not applicable"] {
		t.Errorf("no throughput item without samples; items: %v", metrics)
	}
	for _, it := range items.DataItems {
		if it.Labels["Metric"] == "scheduler_scheduling_attempt_duration_seconds" && it.Labels["Name"] != "BenchmarkPerfScheduling/SchedulingBasic/5Nodes/namespace-2" {
			t.Errorf("Name %q, want scheduler_perf's BenchmarkPerfScheduling/SchedulingBasic/5Nodes/namespace-2", it.Labels["Name"])
		}
	}
	for _, m := range []string{"scheduler_scheduling_attempt_duration_seconds",
		"scheduler_framework_extension_point_duration_seconds",
		"kubesim_pod_scheduling_latency", "kubesim_pod_startup_latency", "apiserver_request_duration_seconds"} {
		if !metrics[m] {
			t.Errorf("results.json has no %s item; it has %v", m, metrics)
		}
	}
	sum, err := os.ReadFile(filepath.Join(out, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sum), "## SchedulingBasic/5Nodes") {
		t.Errorf("summary.md has no section for the workload:\n%s", sum)
	}
	for _, k := range plotKinds {
		for _, ext := range []string{"png", "svg"} {
			path := filepath.Join(out, "SchedulingBasic_5Nodes-"+k.file+"."+ext)
			f, err := os.Open(path)
			if err != nil {
				t.Error(err)
				continue
			}
			if ext == "png" {
				if _, err := png.Decode(f); err != nil {
					t.Errorf("%s: %v", path, err)
				}
			}
			f.Close()
		}
	}
}

// TestUnschedulableReasons: a pod that asks for more CPU than any node
// has is left unschedulable, counted under the reason the scheduler gave
// it, with the node counts of its FailedScheduling event.
func TestUnschedulableReasons(t *testing.T) {
	path := writeFiles(t, map[string]string{
		"performance-config.yaml": `- name: Unschedulable
  workloadTemplate:
  - opcode: createNodes
    count: 3
  - opcode: startCollectingMetrics
    name: unsched
    namespaces: [big]
  - opcode: createPods
    count: 1
    namespace: big
    podTemplatePath: big.yaml
    skipWaitToCompletion: true
  - opcode: barrier
    stageRequirement: Attempted
  - opcode: stopCollectingMetrics
  workloads:
  - name: 3Nodes
`,
		"big.yaml": strings.Replace(goodPod, "    name: pause\n", "    name: pause\n    resources:\n      requests:\n        cpu: \"100\"\n", 1),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	w := res.Workloads[0]
	if w.Err != nil {
		t.Fatal(w.Err)
	}
	if len(w.Unschedulable) != 1 {
		t.Fatalf("unschedulable reasons %v, want one", w.Unschedulable)
	}
	for reason, n := range w.Unschedulable {
		if n != 1 || !strings.HasPrefix(reason, "0/3 nodes are available: 3 Insufficient cpu.") {
			t.Errorf("%d pods unschedulable because %q, want 1 because of 3 nodes' insufficient cpu", n, reason)
		}
	}
	// The scheduler's explanation of the pod: the reason's node counts,
	// per plugin, as its FailedScheduling message has them.
	var explained bool
	for _, ex := range w.Explanations {
		if ex.Namespace != "big" {
			continue
		}
		a := ex.Attempts[len(ex.Attempts)-1]
		if w.Unschedulable[a.Message] != 1 {
			t.Errorf("the explanation's message %q is not the pod's condition's (%v)", a.Message, w.Unschedulable)
		}
		if len(a.Rejections) != 1 || a.Rejections[0].Plugin != "NodeResourcesFit" || a.Rejections[0].Reason != "Insufficient cpu" || a.Rejections[0].Nodes != 3 {
			t.Errorf("rejections %+v, want NodeResourcesFit: Insufficient cpu: 3 nodes", a.Rejections)
		}
		explained = true
	}
	if !explained {
		t.Errorf("no explanation of the unschedulable pod among %d", len(w.Explanations))
	}
	if w.Attempts["unschedulable"] < 1 {
		t.Errorf("unschedulable attempts %v", w.Attempts)
	}
}

// TestCompare runs a workload under two scheduler configurations and
// reports each figure's spread and the medians' ratio.
func TestCompare(t *testing.T) {
	dir := t.TempDir()
	cfg := func(name string, pct int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(fmt.Sprintf("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\npercentageOfNodesToScore: %d\n", pct)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := cfg("all.yaml", 100), cfg("half.yaml", 50)
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Compare(ctx, Options{File: filepath.Join(upstreamDir(t), "misc", "performance-config.yaml"), Filter: "^SchedulingBasic$/^5Nodes$", OutDir: out}, []string{a, b}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Runs) != 2 || len(c.Runs[0]) != 2 || len(c.Runs[1]) != 2 {
		t.Fatalf("runs %v, want 2 of each", c.Runs)
	}
	md, err := os.ReadFile(filepath.Join(out, "compare.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"A = `" + a + "`", "B = `" + b + "`", "## SchedulingBasic/5Nodes", "| scheduling latency p99 |", "B / A (medians)"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("compare.md lacks %q:\n%s", want, md)
		}
	}
	for _, sub := range []string{"all-1", "all-2", "half-1", "half-2"} {
		if _, err := os.Stat(filepath.Join(out, sub, "results.json")); err != nil {
			t.Error(err)
		}
	}
}

// TestExtensions runs kubesim's extensions of the format: a node pool
// with a lifecycle profile, a Deployment and a Job from templates, pods
// that run for a while, a time scale.
func TestExtensions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{File: filepath.Join("..", "..", "testdata", "experiments", "mixed-workloads.yaml"), Filter: "/^20Nodes$"})
	if err != nil {
		t.Fatal(err)
	}
	w := res.Workloads[0]
	if w.Err != nil {
		t.Fatal(w.Err)
	}
	last := w.Phases[len(w.Phases)-1]
	if last.Running < 50 || last.Finished < 20 || w.Nodes != 20 {
		t.Errorf("at the end %+v on %d nodes, want the Deployment's 50 pods Running and the Job's 20 done on 20 nodes", last, w.Nodes)
	}
	// The profile's image pull and start (3 s, 0.3 s at time scale 10)
	// come before Running.
	if len(w.StartupLatency) < 70 {
		t.Fatalf("%d pods with a startup latency, want 70", len(w.StartupLatency))
	}
	if min := percentile(w.StartupLatency, 0); min < 300*time.Millisecond {
		t.Errorf("fastest startup %s, want at least the profile's 300 ms", min)
	}
}

// TestNodePools: a label strategy's round robin makes one pool per value,
// each with a name prefix of its own, also across ops.
func TestNodePools(t *testing.T) {
	used := map[string]bool{}
	op := &createNodesOp{Count: 7, LabelNodePrepareStrategy: &labelNodePrepareStrategy{LabelKey: "zone", LabelValues: []string{"a", "b", "c"}}}
	pools, err := nodePools(newTemplates(t.TempDir()), op, 0, 0, used)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	prefixes := map[string]bool{}
	for _, p := range pools {
		counts[p.Labels["zone"]] += p.Count
		if prefixes[p.NamePrefix] {
			t.Errorf("prefix %q used twice", p.NamePrefix)
		}
		prefixes[p.NamePrefix] = true
		if p.Capacity.Cpu().String() != "4" || p.Allocatable.Memory().String() != "32Gi" {
			t.Errorf("pool %+v: want scheduler_perf's default node (4 CPUs, 32Gi)", p)
		}
	}
	if len(pools) != 3 || counts["a"] != 3 || counts["b"] != 2 || counts["c"] != 2 {
		t.Errorf("pools %+v: want 3, with 3, 2 and 2 nodes", pools)
	}
	more, err := nodePools(newTemplates(t.TempDir()), &createNodesOp{Count: 2}, 0, 7, used)
	if err != nil {
		t.Fatal(err)
	}
	if len(more) != 1 || prefixes[more[0].NamePrefix] {
		t.Errorf("second op's pools %+v reuse a prefix of %v", more, prefixes)
	}
}

func TestCPUByComponent(t *testing.T) {
	label := func(c string) map[string][]string {
		if c == "" {
			return nil
		}
		return map[string][]string{sim.ComponentLabel: {c}}
	}
	tests := []struct {
		name    string
		samples map[string]int64 // component -> ns; "" is unlabelled
		want    []ComponentCPU
	}{
		{"none", nil, []ComponentCPU{}},
		{"largest first, unlabelled as other", map[string]int64{"kube-apiserver": 3e9, "kube-scheduler": 5e9, "": 2e9},
			[]ComponentCPU{{"kube-scheduler", 5, 0.5}, {"kube-apiserver", 3, 0.3}, {"other", 2, 0.2}}},
		{"ties by name", map[string]int64{"b": 1e9, "a": 1e9},
			[]ComponentCPU{{"a", 1, 0.5}, {"b", 1, 0.5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &profile.Profile{SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}}}
			for c, ns := range tt.samples {
				// Two samples each: the sum is what counts.
				p.Sample = append(p.Sample, &profile.Sample{Value: []int64{1, ns / 2}, Label: label(c)}, &profile.Sample{Value: []int64{1, ns - ns/2}, Label: label(c)})
			}
			got := cpuByComponent(p)
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i].Component != tt.want[i].Component || math.Abs(got[i].Seconds-tt.want[i].Seconds) > 1e-9 || math.Abs(got[i].Share-tt.want[i].Share) > 1e-9 {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
			}
		})
	}
	sum := addCPU([]ComponentCPU{{"a", 1, 1}}, []ComponentCPU{{"a", 1, 0.25}, {"b", 3, 0.75}})
	if len(sum) != 2 || sum[0] != (ComponentCPU{"b", 3, 0.6}) || sum[1] != (ComponentCPU{"a", 2, 0.4}) {
		t.Errorf("addCPU: %+v, want b 3 s 60%%, a 2 s 40%%", sum)
	}
}
