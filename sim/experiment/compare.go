package experiment

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Comparison is the same workloads run under several scheduler
// configurations, each several times, alternating.
type Comparison struct {
	// Configs are the KubeSchedulerConfiguration files compared.
	Configs []string
	// Runs[i][r] is run r under Configs[i].
	Runs [][]*Result
}

// Compare runs o's workloads under each configuration (o.SchedulerConfigFile
// is replaced), repeat times, alternating configurations within each
// repetition so that a machine's drift hits each alike. Each run writes
// into o.OutDir/<config>-<repetition> when o.OutDir is set; the comparison
// goes into o.OutDir/compare.md.
func Compare(ctx context.Context, o Options, configs []string, repeat int) (*Comparison, error) {
	if len(configs) < 2 {
		return nil, errors.New("compare needs two or more scheduler configurations")
	}
	if repeat < 1 {
		repeat = 1
	}
	c := &Comparison{Configs: configs, Runs: make([][]*Result, len(configs))}
	out := o.OutDir
	for r := 0; r < repeat; r++ {
		for i, cfg := range configs {
			ro := o
			ro.SchedulerConfigFile = cfg
			if out != "" {
				ro.OutDir = filepath.Join(out, fmt.Sprintf("%s-%d", strings.TrimSuffix(filepath.Base(cfg), filepath.Ext(cfg)), r+1))
			}
			res, err := Run(ctx, ro)
			if err != nil {
				return c, fmt.Errorf("%s, run %d: %w", cfg, r+1, err)
			}
			c.Runs[i] = append(c.Runs[i], res)
		}
	}
	if out != "" {
		if err := os.WriteFile(filepath.Join(out, "compare.md"), []byte(c.Markdown()), 0o644); err != nil {
			return c, err
		}
	}
	return c, nil
}

// figure is one compared figure of a workload's result.
type figure struct {
	name, unit string
	get        func(*WorkloadResult) (float64, bool)
}

var figures = []figure{
	{"SchedulingThroughput average", "pods/s", func(w *WorkloadResult) (float64, bool) {
		if it := w.item("SchedulingThroughput", nil); it != nil && it.Data != nil {
			return it.Data["Average"], true
		}
		return 0, false
	}},
	{"scheduling latency p99", "ms", func(w *WorkloadResult) (float64, bool) {
		return ms(percentile(w.SchedulingLatency, 0.99)), len(w.SchedulingLatency) > 0
	}},
	{"startup latency p99", "ms", func(w *WorkloadResult) (float64, bool) {
		return ms(percentile(w.StartupLatency, 0.99)), len(w.StartupLatency) > 0
	}},
	{"scheduling attempt duration p99 (scheduled)", "ms", func(w *WorkloadResult) (float64, bool) {
		if it := w.item("scheduler_scheduling_attempt_duration_seconds", map[string]string{"result": "scheduled"}); it != nil && it.Data != nil {
			return it.Data["Perc99"], true
		}
		return 0, false
	}},
	{"unschedulable pods at the end", "pods", func(w *WorkloadResult) (float64, bool) {
		n := 0
		for _, v := range w.Unschedulable {
			n += v
		}
		return float64(n), true
	}},
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// spread is min, median and max.
func spread(vs []float64) (lo, med, hi float64) {
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return s[0], med, s[n-1]
}

// Markdown is the comparison as a table per workload: each figure's
// min / median / max under each configuration, and the medians' ratio to
// the first configuration's.
func (c *Comparison) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Scheduler configurations compared\n\n%d runs of each, alternating: ", len(c.Runs[0]))
	for i, cfg := range c.Configs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%c = `%s`", 'A'+i, cfg)
	}
	b.WriteString(". Each cell is min / median / max over the runs.\n")
	if len(c.Runs[0]) == 0 {
		return b.String()
	}
	for wi, w := range c.Runs[0][0].Workloads {
		fmt.Fprintf(&b, "\n## %s\n\n| figure |", w.Name)
		for i := range c.Configs {
			fmt.Fprintf(&b, " %c |", 'A'+i)
		}
		for i := 1; i < len(c.Configs); i++ {
			fmt.Fprintf(&b, " %c / A (medians) |", 'A'+i)
		}
		b.WriteString("\n|---|")
		for i := 1; i < 2*len(c.Configs); i++ {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, f := range figures {
			meds := make([]float64, len(c.Configs))
			cells := make([]string, len(c.Configs))
			ok := true
			for i := range c.Configs {
				var vs []float64
				for _, res := range c.Runs[i] {
					if wi >= len(res.Workloads) || res.Workloads[wi].Err != nil {
						continue
					}
					if v, has := f.get(res.Workloads[wi]); has {
						vs = append(vs, v)
					}
				}
				if len(vs) == 0 {
					ok = false
					break
				}
				lo, med, hi := spread(vs)
				meds[i] = med
				cells[i] = fmt.Sprintf("%.1f / %.1f / %.1f %s", lo, med, hi, f.unit)
			}
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s |", f.name, strings.Join(cells, " | "))
			for i := 1; i < len(c.Configs); i++ {
				if meds[0] == 0 {
					b.WriteString(" - |")
				} else {
					fmt.Fprintf(&b, " %.2f |", meds[i]/meds[0])
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
