package experiment

import (
	"bytes"
	"cmp"
	"fmt"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kubesim/kubesim/sim"
)

// ComponentCPU is the CPU one component of the cluster used while the
// workload's pods were measured.
type ComponentCPU struct {
	// Component is the pprof label sim gives each component's goroutines
	// (kube-apiserver, kube-scheduler, kube-controller-manager,
	// kubeletsim), or "other" for the samples without one: the Go garbage
	// collector's background work and the experiment's own client.
	Component string
	Seconds   float64
	// Share is Seconds over all components' seconds.
	Share float64
}

// cpuOther names the samples that carry no component label.
const cpuOther = "other"

// cpuProfile profiles the process's CPU while pods are measured, to tell
// which component used it: the one with the largest share is what limits
// the throughput. Go allows one CPU profile at a time; while another is
// being written (kubesim experiment run --cpuprofile, or the workload's
// startCollectingProfile op), start reports false and nothing is measured.
type cpuProfile struct {
	buf   bytes.Buffer
	start time.Time
}

func startCPUProfile() (*cpuProfile, bool) {
	p := &cpuProfile{start: time.Now()}
	if err := pprof.StartCPUProfile(&p.buf); err != nil {
		return nil, false
	}
	return p, true
}

// stop ends the profile and sums its samples by component, the largest
// first, and returns the wall time it covered.
func (p *cpuProfile) stop() ([]ComponentCPU, time.Duration, error) {
	pprof.StopCPUProfile()
	wall := time.Since(p.start)
	prof, err := profile.Parse(&p.buf)
	if err != nil {
		return nil, wall, fmt.Errorf("unable to read the CPU profile: %w", err)
	}
	return cpuByComponent(prof), wall, nil
}

// cpuByComponent sums a CPU profile's samples by sim's component label.
func cpuByComponent(prof *profile.Profile) []ComponentCPU {
	idx := -1
	for i, st := range prof.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return nil
	}
	ns := map[string]int64{}
	var total int64
	for _, s := range prof.Sample {
		c := cpuOther
		if v := s.Label[sim.ComponentLabel]; len(v) > 0 && v[0] != "" {
			c = v[0]
		}
		ns[c] += s.Value[idx]
		total += s.Value[idx]
	}
	out := make([]ComponentCPU, 0, len(ns))
	for c, v := range ns {
		cc := ComponentCPU{Component: c, Seconds: float64(v) / 1e9}
		if total > 0 {
			cc.Share = float64(v) / float64(total)
		}
		out = append(out, cc)
	}
	slices.SortFunc(out, func(a, b ComponentCPU) int {
		return cmp.Or(cmp.Compare(b.Seconds, a.Seconds), strings.Compare(a.Component, b.Component))
	})
	return out
}

// cpuItems are the components' CPU as data items.
func cpuItems(l map[string]string, cpu []ComponentCPU) []DataItem {
	items := make([]DataItem, 0, len(cpu))
	for _, c := range cpu {
		items = append(items, DataItem{
			Labels: with(with(l, "Metric", "kubesim_cpu_seconds"), "component", c.Component),
			Data:   map[string]float64{"Seconds": c.Seconds, "Share": c.Share},
			Unit:   "s",
		})
	}
	return items
}

// FormatCPU is a line of the components' CPU and shares over wall.
func FormatCPU(cpu []ComponentCPU, wall time.Duration) string {
	if len(cpu) == 0 {
		return ""
	}
	var total float64
	parts := make([]string, 0, len(cpu))
	for _, c := range cpu {
		total += c.Seconds
		parts = append(parts, fmt.Sprintf("%s %.1f%%", c.Component, 100*c.Share))
	}
	cores := ""
	if wall > 0 {
		cores = fmt.Sprintf(", %.2f cores", total/wall.Seconds())
	}
	return fmt.Sprintf("%.1f CPU-s%s: %s", total, cores, strings.Join(parts, ", "))
}

// addCPU adds the seconds of b to those of a, by component, and shares
// them again.
func addCPU(a, b []ComponentCPU) []ComponentCPU {
	if len(a) == 0 {
		return b
	}
	ns := map[string]float64{}
	var total float64
	for _, c := range slices.Concat(a, b) {
		ns[c.Component] += c.Seconds
		total += c.Seconds
	}
	out := make([]ComponentCPU, 0, len(ns))
	for c, v := range ns {
		out = append(out, ComponentCPU{Component: c, Seconds: v, Share: v / total})
	}
	slices.SortFunc(out, func(a, b ComponentCPU) int {
		return cmp.Or(cmp.Compare(b.Seconds, a.Seconds), strings.Compare(a.Component, b.Component))
	})
	return out
}

// abandon ends the profile unread, for the workload's own profile op.
func (p *cpuProfile) abandon() { pprof.StopCPUProfile() }
