package experiment

import (
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotKinds are the plots drawn for each workload, as files
// <TestCase>_<Workload>-<file>.{png,svg}.
var plotKinds = []struct {
	file, title string
	draw        func(*WorkloadResult) (*plot.Plot, error)
}{
	{"throughput", "throughput over time", plotThroughput},
	{"latency-cdf", "latency CDFs", plotLatencyCDF},
	{"phases", "pods by phase over time", plotPhases},
	{"utilisation", "utilisation histogram", plotUtilisation},
}

// writePlots draws every workload's plots as PNG and SVG into dir.
func writePlots(dir string, res *Result) error {
	for _, w := range res.Workloads {
		for _, k := range plotKinds {
			p, err := k.draw(w)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", w.Name, k.file, err)
			}
			for _, ext := range []string{"png", "svg"} {
				path := filepath.Join(dir, fmt.Sprintf("%s-%s.%s", fileBase(w.Name), k.file, ext))
				if err := p.Save(9*vg.Inch, 4.5*vg.Inch, path); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	return p
}

func addLine(p *plot.Plot, i int, name string, xys plotter.XYs) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// plotThroughput: the per-second SchedulingThroughput samples of the
// measured pods, and their average.
func plotThroughput(w *WorkloadResult) (*plot.Plot, error) {
	p := newPlot(w.Name+": scheduling throughput", "seconds since the first measured pod was scheduled", "pods/s")
	var xys plotter.XYs
	sum := 0.0
	for _, s := range w.Throughput {
		xys = append(xys, plotter.XY{X: s.T, Y: s.Value})
		sum += s.Value
	}
	if err := addLine(p, 0, "pods scheduled per second", xys); err != nil {
		return nil, err
	}
	if tp := w.item("SchedulingThroughput", nil); tp != nil && tp.Data != nil && len(xys) > 1 {
		avg := tp.Data["Average"]
		if err := addLine(p, 1, fmt.Sprintf("average %.1f pods/s", avg), plotter.XYs{{X: xys[0].X, Y: avg}, {X: xys[len(xys)-1].X, Y: avg}}); err != nil {
			return nil, err
		}
	}
	p.Y.Min = 0
	return p, nil
}

func cdf(ds []time.Duration) plotter.XYs {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	// At most 1,000 points: the CDF's shape, not every pod.
	step := max(1, len(s)/1000)
	var xys plotter.XYs
	for i := 0; i < len(s); i += step {
		xys = append(xys, plotter.XY{X: s[i].Seconds(), Y: float64(i+1) / float64(len(s))})
	}
	if len(s) > 0 {
		xys = append(xys, plotter.XY{X: s[len(s)-1].Seconds(), Y: 1})
	}
	return xys
}

// plotLatencyCDF: created-to-bound and created-to-Running of the
// measured pods, with the startup SLO.
func plotLatencyCDF(w *WorkloadResult) (*plot.Plot, error) {
	p := newPlot(w.Name+": latency of the measured pods", "seconds from the create call", "fraction of pods")
	if err := addLine(p, 0, "scheduled (created to bound)", cdf(w.SchedulingLatency)); err != nil {
		return nil, err
	}
	if err := addLine(p, 1, "started (created to Running)", cdf(w.StartupLatency)); err != nil {
		return nil, err
	}
	if len(w.StartupLatency) > 0 && percentile(w.StartupLatency, 1) > 4*time.Second {
		if err := addLine(p, 2, "startup SLO (p99 5 s)", plotter.XYs{{X: 5, Y: 0}, {X: 5, Y: 1}}); err != nil {
			return nil, err
		}
	}
	p.Y.Min, p.Y.Max = 0, 1
	p.X.Min = 0
	return p, nil
}

// plotPhases: the workload's pods by phase, every second.
func plotPhases(w *WorkloadResult) (*plot.Plot, error) {
	p := newPlot(w.Name+": pods by phase", "seconds since the workload's first op", "pods")
	// Running climbs to the top right: the legend goes left.
	p.Legend.Left = true
	series := []struct {
		name string
		get  func(PhaseSample) int
	}{
		{"unscheduled (Pending, no node)", func(s PhaseSample) int { return s.Unscheduled }},
		{"scheduled, not yet Running", func(s PhaseSample) int { return s.Scheduled }},
		{"Running", func(s PhaseSample) int { return s.Running }},
		{"Succeeded or Failed", func(s PhaseSample) int { return s.Finished }},
	}
	for i, s := range series {
		var xys plotter.XYs
		any := false
		for _, ph := range w.Phases {
			v := s.get(ph)
			any = any || v > 0
			xys = append(xys, plotter.XY{X: ph.T, Y: float64(v)})
		}
		if !any {
			continue
		}
		if err := addLine(p, i, s.name, xys); err != nil {
			return nil, err
		}
	}
	p.Y.Min = 0
	return p, nil
}

// plotUtilisation: how many nodes have each share of their allocatable
// CPU and memory requested, at the end.
func plotUtilisation(w *WorkloadResult) (*plot.Plot, error) {
	p := newPlot(w.Name+": node utilisation at the end", "requested / allocatable (%)", "nodes")
	const bins = 20
	width := 100.0 / bins
	bw := vg.Points(9)
	i := 0
	var bars []plot.Thumbnailer
	for _, u := range w.Utilisation {
		if u.Resource == "pods" || len(u.PerNode) == 0 {
			continue
		}
		counts := make(plotter.Values, bins)
		for _, r := range u.PerNode {
			b := int(r * 100 / width)
			counts[min(max(b, 0), bins-1)]++
		}
		bar, err := plotter.NewBarChart(counts, bw)
		if err != nil {
			return nil, err
		}
		bar.Color = plotutil.Color(i)
		bar.LineStyle.Width = 0
		bar.Offset = vg.Points(float64(i)*9 - 4.5)
		p.Add(bar)
		p.Legend.Add(u.Resource, bar)
		bars = append(bars, bar)
		i++
	}
	names := make([]string, bins)
	for b := range names {
		if b%2 == 0 {
			names[b] = fmt.Sprintf("%.0f", float64(b)*width)
		}
	}
	p.NominalX(names...)
	p.Y.Min = 0
	_ = bars
	return p, nil
}
