package experiment

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kubesim/kubesim/sim"
)

// writeResultsJSON writes the data items as scheduler_perf's
// dataItems2JSONFile does: every item carries every label ("not
// applicable" where it has none), indented.
func writeResultsJSON(path string, res *Result) error {
	items := res.DataItems()
	all := map[string]bool{}
	for _, it := range items.DataItems {
		for k := range it.Labels {
			all[k] = true
		}
	}
	for i := range items.DataItems {
		it := &items.DataItems[i]
		l := make(map[string]string, len(all))
		for k := range all {
			l[k] = "not applicable"
		}
		for k, v := range it.Labels {
			l[k] = v
		}
		it.Labels = l
		if it.Data == nil {
			it.Data = map[string]float64{}
		}
	}
	// perf-dash reads version and dataItems; the scheduler's
	// explanations of a sample of pods ride along.
	out := struct {
		DataItems
		Explanations map[string][]*sim.Explanation `json:"explanations,omitempty"`
	}{DataItems: items, Explanations: map[string][]*sim.Explanation{}}
	for _, w := range res.Workloads {
		if len(w.Explanations) > 0 {
			out.Explanations[w.Name] = w.Explanations
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// item finds a workload's data item by metric and extra labels.
func (w *WorkloadResult) item(metric string, extra map[string]string) *DataItem {
	for i := range w.DataItems {
		it := &w.DataItems[i]
		if it.Labels["Metric"] == metric && labelsMatch(it.Labels, extra) {
			return it
		}
	}
	return nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
}

// summary renders summary.md.
func summary(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Scheduler capacity experiment\n\nTopic (for thresholds): `%s`. %d workload(s).\n\n", res.Topic, len(res.Workloads))
	b.WriteString("| workload | throughput avg (pods/s) | p50 | p90 | p99 | threshold | scheduling latency p50 / p99 | startup latency p99 (SLO 5 s) | duration |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range res.Workloads {
		tp := w.item("SchedulingThroughput", nil)
		avg, p50, p90, p99 := "-", "-", "-", "-"
		if tp != nil && tp.Data != nil {
			avg, p50, p90, p99 = f1(tp.Data["Average"]), f1(tp.Data["Perc50"]), f1(tp.Data["Perc90"]), f1(tp.Data["Perc99"])
		}
		thr := "none"
		if w.Threshold > 0 {
			thr = fmt.Sprintf("%s %s %.0f: ", w.ThresholdMetric.DataBucket, map[bool]string{true: "<", false: ">"}[w.ThresholdMetric.ExpectLower], w.Threshold)
			thr += map[bool]string{true: "**failed**", false: "passed"}[len(w.ThresholdFailures) > 0]
		}
		if w.Err != nil {
			thr = "**error**"
		}
		startup := "-"
		if len(w.StartupLatency) > 0 {
			p := percentile(w.StartupLatency, 0.99)
			startup = fmt.Sprintf("%s (%s)", fmtDur(p), map[bool]string{true: "met", false: "missed"}[p <= 5*time.Second])
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |\n", w.Name, avg, p50, p90, p99, thr,
			fmtDur(percentile(w.SchedulingLatency, 0.5)), fmtDur(percentile(w.SchedulingLatency, 0.99)), startup, w.Duration.Round(time.Second))
	}
	for _, w := range res.Workloads {
		fmt.Fprintf(&b, "\n## %s\n\n", w.Name)
		if w.Err != nil {
			fmt.Fprintf(&b, "**Did not complete:** %v\n\n", w.Err)
		}
		for _, f := range w.ThresholdFailures {
			fmt.Fprintf(&b, "**Threshold missed:** %s\n\n", f)
		}
		var ps []string
		for _, k := range slices.Sorted(maps.Keys(w.Params)) {
			ps = append(ps, fmt.Sprintf("%s=%v", k, w.Params[k]))
		}
		fmt.Fprintf(&b, "Parameters: %s. At the end: %d nodes, %d pods. Ran %s.\n\n", strings.Join(ps, ", "), w.Nodes, w.Pods, w.Duration.Round(time.Millisecond))
		fmt.Fprintf(&b, "Latency of the measured pods (%d), created (the create call) to bound and to Running, as the experiment's watch saw them:\n\n", len(w.SchedulingLatency))
		b.WriteString("| | p50 | p90 | p99 | max |\n|---|---|---|---|---|\n")
		for _, l := range []struct {
			name string
			d    []time.Duration
		}{{"scheduling (created to bound)", w.SchedulingLatency}, {"startup (created to Running; SLO p99 <= 5 s)", w.StartupLatency}} {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", l.name, fmtDur(percentile(l.d, 0.5)), fmtDur(percentile(l.d, 0.9)), fmtDur(percentile(l.d, 0.99)), fmtDur(percentile(l.d, 1)))
		}
		b.WriteString("\nThe scheduler's histograms (ms):\n\n| metric | labels | p50 | p90 | p99 | average |\n|---|---|---|---|---|---|\n")
		for _, it := range w.DataItems {
			m := it.Labels["Metric"]
			if !strings.HasPrefix(m, "scheduler_") || it.Data == nil {
				continue
			}
			var ls []string
			for _, k := range []string{"result", "extension_point", "plugin", "event"} {
				if v, ok := it.Labels[k]; ok {
					ls = append(ls, k+"="+v)
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %.3f | %.3f | %.3f | %.3f |\n", strings.TrimPrefix(m, "scheduler_"), strings.Join(ls, " "), it.Data["Perc50"], it.Data["Perc90"], it.Data["Perc99"], it.Data["Average"])
		}
		if len(w.Attempts) > 0 {
			var as []string
			for _, k := range []string{"scheduled", "unschedulable", "error"} {
				as = append(as, fmt.Sprintf("%s %.0f", k, w.Attempts[k]))
			}
			fmt.Fprintf(&b, "\nScheduling attempts: %s. Preemption attempts: %.0f, victims: %.0f.\n", strings.Join(as, ", "), w.Preemptions, w.PreemptionVictims)
		}
		if len(w.Unschedulable) > 0 {
			b.WriteString("\nUnschedulable pods at the end, by the scheduler's reason:\n\n| pods | reason |\n|---|---|\n")
			type kv struct {
				k string
				v int
			}
			var rs []kv
			for k, v := range w.Unschedulable {
				rs = append(rs, kv{k, v})
			}
			sort.Slice(rs, func(i, j int) bool { return rs[i].v > rs[j].v || rs[i].v == rs[j].v && rs[i].k < rs[j].k })
			for _, r := range rs {
				fmt.Fprintf(&b, "| %d | %s |\n", r.v, strings.ReplaceAll(r.k, "|", "\\|"))
			}
		}
		for _, ex := range w.Explanations {
			for i := len(ex.Attempts) - 1; i >= 0; i-- {
				a := ex.Attempts[i]
				if a.Result != "unschedulable" {
					continue
				}
				fmt.Fprintf(&b, "\nWhy %s/%s is unschedulable (the scheduler's last attempt, %d nodes; `kubesim explain pod` prints the same):\n\n| plugin | reason | nodes |\n|---|---|---|\n", ex.Namespace, ex.Name, a.AllNodes)
				for _, r := range a.Rejections {
					fmt.Fprintf(&b, "| %s | %s | %d |\n", r.Plugin, r.Reason, r.Nodes)
				}
				if a.PostFilter != "" {
					fmt.Fprintf(&b, "\nPostFilter (preemption): %s\n", a.PostFilter)
				}
				break
			}
			if len(ex.Attempts) > 0 && ex.Attempts[len(ex.Attempts)-1].Result == "unschedulable" {
				break // one is enough for the summary; results.json has the rest
			}
		}
		b.WriteString("\nRequested / allocatable over the nodes at the end:\n\n| resource | requested | allocatable | ratio |\n|---|---|---|---|\n")
		for _, u := range w.Utilisation {
			if u.Allocatable == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.1f%% |\n", u.Resource, quantity(u.Resource, u.Requested), quantity(u.Resource, u.Allocatable), 100*u.Requested/u.Allocatable)
		}
		if len(w.APILatency) > 0 {
			b.WriteString("\nAPI request latency (the API server's apiserver_request_duration_seconds), against the API call latency SLOs:\n\n| verb | requests | p50 | p99 | SLO | |\n|---|---|---|---|---|---|\n")
			for _, a := range w.APILatency {
				fmt.Fprintf(&b, "| %s | %d | %s | %s | p99 <= %s | %s |\n", a.Verb, a.Count, fmtDur(a.P50), fmtDur(a.P99), a.SLO, map[bool]string{true: "met", false: "**missed**"}[a.Met])
			}
		}
		switch {
		case len(w.CPU) > 0:
			fmt.Fprintf(&b, "\nCPU while the pods were measured, by component (pprof labels; the largest share is what limits the throughput): %s.\n", FormatCPU(w.CPU, w.CPUWall))
		case w.CPUNote != "":
			fmt.Fprintf(&b, "\nCPU by component: %s.\n", w.CPUNote)
		}
		base := fileBase(w.Name)
		b.WriteString("\nPlots: ")
		for i, p := range plotKinds {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "[%s](%s-%s.png) ([svg](%s-%s.svg))", p.title, base, p.file, base, p.file)
		}
		b.WriteString(".\n")
	}
	return b.String()
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }

func quantity(res string, v float64) string {
	switch res {
	case "cpu":
		return fmt.Sprintf("%.1f cores", v)
	case "memory":
		return fmt.Sprintf("%.1f GiB", v/(1<<30))
	}
	return fmt.Sprintf("%.0f", v)
}

// fileBase turns TestCase/Workload into a file name.
func fileBase(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name)
}
