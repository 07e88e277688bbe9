package kubeletsim

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The usage model: how much CPU and memory a simulated container uses,
// over its run. A pod's annotations set it (AnnotationCPUUsage,
// AnnotationMemoryUsage), else its node's profile (Profile.CPUUsage,
// Profile.MemoryUsage). A value is one of:
//
//	250m, 1.5, 200Mi               a constant (cores, bytes)
//	200%                           a constant share of the container's request
//	ramp(10%, 200%, 5m)            linear from 10% to 200% over 5m, then 200%
//	points(0s 10%, 5m 200%, 10m 10%)
//	                               linear between points, the last value after
//	steps(0s 100m, 1m 500m, 3m 100m)
//	                               each value from its time to the next
//	sine(10%, 200%, 10m)           between 10% and 200%, from 10%, every 10m
//	csv(0,10%;300,200%;600,10%)    a trace: seconds,value per line (lines
//	                               split by ";" or newlines), linear between
//
// Times count from the container's start and are divided by the
// simulator's TimeScale, as every simulated duration. Percentages are of
// the container's request (its limit without one; 100m CPU or 128Mi memory
// without either). A pod's absolute values are the pod's: its containers
// share them in proportion to their requests (equally without).
const (
	// AnnotationCPUUsage is the pod's CPU usage (see the usage model).
	AnnotationCPUUsage = "kubesim.io/cpu-usage"
	// AnnotationMemoryUsage is the pod's memory working set.
	AnnotationMemoryUsage = "kubesim.io/memory-usage"
	// AnnotationUsageStart (an RFC 3339 time) is when the pod's usage
	// curves start, instead of at each container's start: every pod of a
	// template set with it follows one curve, as a load does, whenever
	// it started.
	AnnotationUsageStart = "kubesim.io/usage-start"
)

// Defaults of the usage model.
const (
	defaultCPUUsage    = "10%"
	defaultMemoryUsage = "50%"
)

var (
	defaultCPUBase    = resource.MustParse("100m")
	defaultMemoryBase = resource.MustParse("128Mi")
)

// usageValue is a value of a curve: abs (cores or bytes, the pod's) plus
// pct percent of the container's base.
type usageValue struct {
	abs, pct float64
}

func (v usageValue) resolve(share, base float64) float64 { return v.abs*share + v.pct/100*base }

// usagePoint is a curve's value at a time (seconds from the start).
type usagePoint struct {
	t float64
	v usageValue
}

// usageSpec is a parsed usage value, not yet resolved for a container.
type usageSpec struct {
	kind   string // "const", "linear", "steps", "sine"
	points []usagePoint
	period float64 // sine
}

// curve is a usage spec resolved for one container: its value at t and
// its integral from 0 to t (t in curve seconds).
type curve struct {
	spec        *usageSpec
	share, base float64
	vals        []float64
}

func (s *usageSpec) forContainer(share, base float64) curve {
	c := curve{spec: s, share: share, base: base, vals: make([]float64, len(s.points))}
	for i, p := range s.points {
		c.vals[i] = math.Max(0, p.v.resolve(share, base))
	}
	return c
}

func (c curve) at(t float64) float64 {
	s := c.spec
	switch s.kind {
	case "const":
		return c.vals[0]
	case "sine":
		lo, hi := c.vals[0], c.vals[1]
		return lo + (hi-lo)*(1-math.Cos(2*math.Pi*t/s.period))/2
	}
	i := c.segment(t)
	if i < 0 {
		return c.vals[0]
	}
	if i == len(s.points)-1 || s.kind == "steps" {
		return c.vals[i]
	}
	p0, p1 := s.points[i].t, s.points[i+1].t
	return c.vals[i] + (c.vals[i+1]-c.vals[i])*(t-p0)/(p1-p0)
}

// segment is the index of the last point at or before t, -1 before the
// first.
func (c curve) segment(t float64) int {
	i, found := slices.BinarySearchFunc(c.spec.points, t, func(p usagePoint, t float64) int {
		switch {
		case p.t < t:
			return -1
		case p.t > t:
			return 1
		}
		return 0
	})
	if found {
		return i
	}
	return i - 1
}

// integral is ∫₀ᵗ at.
func (c curve) integral(t float64) float64 {
	if t <= 0 {
		return 0
	}
	s := c.spec
	switch s.kind {
	case "const":
		return c.vals[0] * t
	case "sine":
		lo, hi := c.vals[0], c.vals[1]
		w := 2 * math.Pi / s.period
		return lo*t + (hi-lo)/2*(t-math.Sin(w*t)/w)
	}
	// Before the first point the curve holds its first value.
	sum := 0.0
	prevT, prevV := 0.0, c.vals[0]
	for i, p := range s.points {
		if p.t <= 0 {
			prevV = c.vals[i]
			continue
		}
		end := math.Min(p.t, t)
		if s.kind == "steps" || i == 0 {
			sum += prevV * (end - prevT)
		} else {
			// linear from (prevT, prevV) towards (p.t, vals[i])
			vEnd := prevV + (c.vals[i]-prevV)*(end-prevT)/(p.t-prevT)
			sum += (prevV + vEnd) / 2 * (end - prevT)
		}
		if t <= p.t {
			return sum
		}
		prevT, prevV = p.t, c.vals[i]
	}
	return sum + prevV*(t-prevT)
}

// parseUsage parses a usage value (cores for CPU, bytes for memory).
func parseUsage(v string) (*usageSpec, error) {
	v = strings.TrimSpace(v)
	name, args, isFunc := strings.Cut(v, "(")
	if !isFunc {
		val, err := parseUsageValue(v)
		if err != nil {
			return nil, err
		}
		return &usageSpec{kind: "const", points: []usagePoint{{v: val}}}, nil
	}
	name = strings.TrimSpace(name)
	if !strings.HasSuffix(args, ")") {
		return nil, fmt.Errorf("%s(...) is not closed by \")\"", name)
	}
	args = strings.TrimSuffix(args, ")")
	split := func(sep string) []string {
		parts := strings.Split(args, sep)
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts
	}
	switch name {
	case "ramp", "sine":
		parts := split(",")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%s takes 3 arguments (from, to, duration), got %d", name, len(parts))
		}
		from, err := parseUsageValue(parts[0])
		if err != nil {
			return nil, err
		}
		to, err := parseUsageValue(parts[1])
		if err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(parts[2])
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive duration", name, parts[2])
		}
		if name == "sine" {
			return &usageSpec{kind: "sine", points: []usagePoint{{v: from}, {v: to}}, period: d.Seconds()}, nil
		}
		return &usageSpec{kind: "linear", points: []usagePoint{{t: 0, v: from}, {t: d.Seconds(), v: to}}}, nil
	case "points", "steps", "csv":
		kind := "linear"
		if name == "steps" {
			kind = "steps"
		}
		var entries []string
		if name == "csv" {
			entries = strings.FieldsFunc(args, func(r rune) bool { return r == ';' || r == '\n' })
		} else {
			entries = split(",")
		}
		spec := &usageSpec{kind: kind}
		for _, e := range entries {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			var ts, vs string
			var ok bool
			if name == "csv" {
				ts, vs, ok = strings.Cut(e, ",")
			} else {
				ts, vs, ok = strings.Cut(e, " ")
			}
			if !ok {
				return nil, fmt.Errorf("%s: %q is not a time and a value", name, e)
			}
			ts, vs = strings.TrimSpace(ts), strings.TrimSpace(vs)
			var t float64
			if name == "csv" {
				f, err := strconv.ParseFloat(ts, 64)
				if err != nil {
					if len(spec.points) == 0 && len(entries) > 1 {
						continue // a header line
					}
					return nil, fmt.Errorf("csv: %q is not a number of seconds", ts)
				}
				t = f
			} else {
				d, err := time.ParseDuration(ts)
				if ts == "0" {
					d, err = 0, nil
				}
				if err != nil {
					return nil, fmt.Errorf("%s: %q is not a duration", name, ts)
				}
				t = d.Seconds()
			}
			if t < 0 || math.IsNaN(t) || math.IsInf(t, 0) {
				return nil, fmt.Errorf("%s: time %q is negative", name, ts)
			}
			if n := len(spec.points); n > 0 && t <= spec.points[n-1].t {
				return nil, fmt.Errorf("%s: times must increase (%q after %gs)", name, ts, spec.points[n-1].t)
			}
			val, err := parseUsageValue(vs)
			if err != nil {
				return nil, err
			}
			spec.points = append(spec.points, usagePoint{t: t, v: val})
		}
		if len(spec.points) == 0 {
			return nil, fmt.Errorf("%s has no points", name)
		}
		return spec, nil
	}
	return nil, fmt.Errorf("unknown curve %q (want ramp, points, steps, sine or csv)", name)
}

// parseUsageValue parses "250m", "200Mi" or "200%".
func parseUsageValue(v string) (usageValue, error) {
	if p, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return usageValue{}, fmt.Errorf("%q is not a percentage", v)
		}
		return usageValue{pct: f}, nil
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() < 0 {
		return usageValue{}, fmt.Errorf("%q is not a quantity or a percentage", v)
	}
	return usageValue{abs: q.AsApproximateFloat64()}, nil
}

// containerUsage is one running container's usage at a time.
type containerUsage struct {
	name string
	// started is when the container (its current run) started.
	started time.Time
	// cpuSeconds is the CPU it has used since it started; cores and
	// memoryBytes its current usage.
	cpuSeconds, cores, memoryBytes float64
}

// usageModel is a pod's usage.
type usageModel struct {
	cpu, memory *usageSpec
	// start is the pod's AnnotationUsageStart, zero without one.
	start time.Time
}

// usageOf parses the pod's usage annotations over the profile's; bad
// values fall back to the profile's and are returned as errors naming the
// annotation.
func usageOf(pod *corev1.Pod, p Profile) (m usageModel, errs []error) {
	var err error
	if m.cpu, err = parseUsage(orDefault(p.CPUUsage, defaultCPUUsage)); err != nil {
		m.cpu, _ = parseUsage(defaultCPUUsage)
	}
	if m.memory, err = parseUsage(orDefault(p.MemoryUsage, defaultMemoryUsage)); err != nil {
		m.memory, _ = parseUsage(defaultMemoryUsage)
	}
	for _, a := range []struct {
		key  string
		into **usageSpec
	}{{AnnotationCPUUsage, &m.cpu}, {AnnotationMemoryUsage, &m.memory}} {
		v, ok := pod.Annotations[a.key]
		if !ok {
			continue
		}
		spec, err := parseUsage(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid %s %q: %w", a.key, v, err))
			continue
		}
		*a.into = spec
	}
	if v, ok := pod.Annotations[AnnotationUsageStart]; ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid %s %q: not an RFC 3339 time", AnnotationUsageStart, v))
		} else {
			m.start = t
		}
	}
	return m, errs
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// containersUsage is the usage, at now, of the pod's running containers.
// scale is the simulator's TimeScale.
func (m usageModel) containersUsage(pod *corev1.Pod, now time.Time, scale float64) []containerUsage {
	var cpuTotal, memTotal float64
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cpuTotal += baseOf(c, corev1.ResourceCPU, resource.Quantity{})
		memTotal += baseOf(c, corev1.ResourceMemory, resource.Quantity{})
	}
	n := float64(len(pod.Spec.Containers))
	share := func(own, total float64) float64 {
		if total == 0 {
			return 1 / n
		}
		return own / total
	}
	var out []containerUsage
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		started, ok := runningSince(pod, c.Name)
		if !ok {
			continue
		}
		// Curve times from the origin: the container's start, or the
		// pod's usage start; the CPU used is the area since the start.
		origin := started
		if !m.start.IsZero() {
			origin = m.start
		}
		curveTime := func(at time.Time) float64 { return math.Max(0, at.Sub(origin).Seconds()) * scale }
		from, to := curveTime(started), curveTime(now)
		if to < from {
			to = from
		}
		cpu := m.cpu.forContainer(share(baseOf(c, corev1.ResourceCPU, resource.Quantity{}), cpuTotal), baseOf(c, corev1.ResourceCPU, defaultCPUBase))
		mem := m.memory.forContainer(share(baseOf(c, corev1.ResourceMemory, resource.Quantity{}), memTotal), baseOf(c, corev1.ResourceMemory, defaultMemoryBase))
		out = append(out, containerUsage{
			name: c.Name, started: started,
			cpuSeconds: (cpu.integral(to) - cpu.integral(from)) / scale, cores: cpu.at(to), memoryBytes: mem.at(to),
		})
	}
	return out
}

// baseOf is the container's request of r, else its limit, else def.
func baseOf(c *corev1.Container, r corev1.ResourceName, def resource.Quantity) float64 {
	if q, ok := c.Resources.Requests[r]; ok {
		return q.AsApproximateFloat64()
	}
	if q, ok := c.Resources.Limits[r]; ok {
		return q.AsApproximateFloat64()
	}
	return def.AsApproximateFloat64()
}

// runningSince is when the container's current run started, if it runs.
func runningSince(pod *corev1.Pod, name string) (time.Time, bool) {
	if pod.Status.Phase != corev1.PodRunning {
		return time.Time{}, false
	}
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		if cs.Name == name && cs.State.Running != nil {
			return cs.State.Running.StartedAt.Time, true
		}
	}
	return time.Time{}, false
}
