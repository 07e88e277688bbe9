package kubeletsim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// A simulated node's resource metrics, from the usage model (usage.go):
// the kubelet's /metrics/resource and /stats/summary, served on the
// shared kubelet endpoint under /nodes/NODE/, since every simulated node
// has the same address and port. Each node's Node carries
// AnnotationResourceMetricsPath, which metrics-server reads as the path to
// scrape that node at.
const AnnotationResourceMetricsPath = "metrics.k8s.io/resource-metrics-path"

// A node's own usage beside its pods' (system daemons, the kubelet).
const (
	nodeSystemCores = 0.05
	nodeSystemBytes = 256 << 20
)

// nodeUsage keeps a node's CPU counter monotonic as pods come and go: the
// CPU of containers that are gone stays counted.
type nodeUsage struct {
	mu sync.Mutex // guards what follows
	// last is each container run's CPU seconds at the last scrape.
	last map[usageKey]float64
	// retired is the CPU seconds of the runs that are gone.
	retired float64
}

// usageKey is one run of a container: its pod, its name, its start.
type usageKey struct {
	pod     types.UID
	name    string
	started int64
}

// podUsage is one pod's usage.
type podUsage struct {
	pod        *corev1.Pod
	containers []containerUsage
}

// nodeSnapshot is a node's usage at a time.
type nodeSnapshot struct {
	now               time.Time
	started           time.Time
	cpuSeconds, cores float64
	memoryBytes       float64
	pods              []podUsage
}

// snapshot computes the node's usage now.
func (s *Simulator) snapshot(n *node) nodeSnapshot {
	now := s.clock.Now()
	n.mu.Lock()
	pods := make([]*corev1.Pod, 0, len(n.admitted))
	for _, p := range n.admitted {
		pods = append(pods, p)
	}
	var started time.Time
	if n.obj != nil {
		started = n.obj.CreationTimestamp.Time
	}
	if n.usage == nil {
		n.usage = &nodeUsage{last: map[usageKey]float64{}}
	}
	u := n.usage
	n.mu.Unlock()
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	if started.IsZero() || started.After(now) {
		started = now
	}
	snap := nodeSnapshot{now: now, started: started, cores: nodeSystemCores, memoryBytes: nodeSystemBytes}
	current := make(map[usageKey]float64, len(u.last))
	var podsCPU float64
	for _, pod := range pods {
		m, _ := usageOf(pod, n.profile)
		cs := m.containersUsage(pod, now, s.cfg.TimeScale)
		if len(cs) == 0 {
			continue
		}
		for i := range cs {
			c := &cs[i]
			// A process always uses some CPU and memory; metrics-server
			// drops a pod with a container at 0.
			c.cpuSeconds = math.Max(c.cpuSeconds, 1e-6)
			c.memoryBytes = math.Max(c.memoryBytes, 4096)
			current[usageKey{pod.UID, c.name, c.started.Unix()}] = c.cpuSeconds
			podsCPU += c.cpuSeconds
			snap.cores += c.cores
			snap.memoryBytes += c.memoryBytes
		}
		snap.pods = append(snap.pods, podUsage{pod: pod, containers: cs})
	}
	u.mu.Lock()
	for k, v := range u.last {
		if _, ok := current[k]; !ok {
			u.retired += v
		}
	}
	u.last = current
	snap.cpuSeconds = nodeSystemCores*now.Sub(started).Seconds() + u.retired + podsCPU
	u.mu.Unlock()
	return snap
}

// nodeFromPath is the node a /nodes/NODE/... request names, or nil after
// answering 404.
func (s *Simulator) nodeFromPath(w http.ResponseWriter, req *http.Request) *node {
	n := s.node(req.PathValue("node"))
	if n == nil {
		writeKubeletStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("node %q is not a node of this simulator", req.PathValue("node")))
		return nil
	}
	return n
}

// serveResourceMetrics answers /nodes/NODE/metrics/resource in the
// kubelet's Prometheus text format.
func (s *Simulator) serveResourceMetrics(w http.ResponseWriter, req *http.Request) {
	n := s.nodeFromPath(w, req)
	if n == nil {
		return
	}
	snap := s.snapshot(n)
	bp := metricsBuffers.Get().(*[]byte)
	b := appendResourceMetrics((*bp)[:0], &snap)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b)
	if cap(b) <= maxPooledMetricsBuffer {
		*bp = b
		metricsBuffers.Put(bp)
	}
}

// metricsBuffers are the buffers /metrics/resource answers are written in:
// metrics-server scrapes every node each resolution, 5,000 answers of up
// to 30 KB in 15 s at 5,000 nodes.
var metricsBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledMetricsBuffer bounds the buffers kept for reuse (a node's 110
// pods of one container take about 40 KB).
const maxPooledMetricsBuffer = 256 << 10

// appendResourceMetrics appends snap as the kubelet's /metrics/resource
// (Prometheus' text format, the families and order kubelet writes) to b.
// Appended, not printed: formatting with fmt took 3 allocations a line.
func appendResourceMetrics(b []byte, snap *nodeSnapshot) []byte {
	ts := snap.now.UnixMilli()
	family := func(name, help, typ string) {
		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, " [STABLE] "...)
		b = append(b, help...)
		b = append(b, "\n# TYPE "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, typ...)
		b = append(b, '\n')
	}
	// sample appends the end of a sample's line: its value and timestamp.
	sample := func(v float64) {
		b = append(b, ' ')
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
		b = append(b, ' ')
		b = strconv.AppendInt(b, ts, 10)
		b = append(b, '\n')
	}
	podLabels := func(p *podUsage) {
		b = append(b, "namespace="...)
		b = strconv.AppendQuote(b, p.pod.Namespace)
		b = append(b, ",pod="...)
		b = strconv.AppendQuote(b, p.pod.Name)
		b = append(b, '}')
	}
	containers := func(name string, value func(c *containerUsage) float64) {
		for i := range snap.pods {
			p := &snap.pods[i]
			for j := range p.containers {
				c := &p.containers[j]
				b = append(b, name...)
				b = append(b, "{container="...)
				b = strconv.AppendQuote(b, c.name)
				b = append(b, ',')
				podLabels(p)
				sample(value(c))
			}
		}
	}
	pods := func(name string, value func(c *containerUsage) float64) {
		for i := range snap.pods {
			p := &snap.pods[i]
			sum := 0.0
			for j := range p.containers {
				sum += value(&p.containers[j])
			}
			b = append(b, name...)
			b = append(b, '{')
			podLabels(p)
			sample(sum)
		}
	}
	cpu := func(c *containerUsage) float64 { return c.cpuSeconds }
	memory := func(c *containerUsage) float64 { return math.Round(c.memoryBytes) }
	family("container_cpu_usage_seconds_total", "Cumulative cpu time consumed by the container in core-seconds", "counter")
	containers("container_cpu_usage_seconds_total", cpu)
	family("container_memory_working_set_bytes", "Current working set of the container in bytes", "gauge")
	containers("container_memory_working_set_bytes", memory)
	family("container_start_time_seconds", "Start time of the container since unix epoch in seconds", "gauge")
	containers("container_start_time_seconds", func(c *containerUsage) float64 { return float64(c.started.Unix()) })
	family("node_cpu_usage_seconds_total", "Cumulative cpu time consumed by the node in core-seconds", "counter")
	b = append(b, "node_cpu_usage_seconds_total"...)
	sample(snap.cpuSeconds)
	family("node_memory_working_set_bytes", "Current working set of the node in bytes", "gauge")
	b = append(b, "node_memory_working_set_bytes"...)
	sample(math.Round(snap.memoryBytes))
	family("pod_cpu_usage_seconds_total", "Cumulative cpu time consumed by the pod in core-seconds", "counter")
	pods("pod_cpu_usage_seconds_total", cpu)
	family("pod_memory_working_set_bytes", "Current working set of the pod in bytes", "gauge")
	pods("pod_memory_working_set_bytes", memory)
	family("resource_scrape_error", "1 if there was an error while getting container metrics, 0 otherwise", "gauge")
	b = append(b, "resource_scrape_error 0\n"...)
	return b
}

// serveSummary answers /nodes/NODE/stats/summary as the kubelet's Summary
// API, with the CPU and memory of the node, its pods and their containers.
func (s *Simulator) serveSummary(w http.ResponseWriter, req *http.Request) {
	n := s.nodeFromPath(w, req)
	if n == nil {
		return
	}
	snap := s.snapshot(n)
	at := metav1.NewTime(snap.now)
	cpu := func(cores, seconds float64) *statsv1alpha1.CPUStats {
		nano, total := uint64(cores*1e9), uint64(seconds*1e9)
		return &statsv1alpha1.CPUStats{Time: at, UsageNanoCores: &nano, UsageCoreNanoSeconds: &total}
	}
	mem := func(bytes float64) *statsv1alpha1.MemoryStats {
		v := uint64(bytes)
		return &statsv1alpha1.MemoryStats{Time: at, WorkingSetBytes: &v, UsageBytes: &v}
	}
	summary := statsv1alpha1.Summary{
		Node: statsv1alpha1.NodeStats{NodeName: n.name, StartTime: metav1.NewTime(snap.started), CPU: cpu(snap.cores, snap.cpuSeconds), Memory: mem(snap.memoryBytes)},
		Pods: []statsv1alpha1.PodStats{},
	}
	for _, p := range snap.pods {
		ps := statsv1alpha1.PodStats{PodRef: statsv1alpha1.PodReference{Name: p.pod.Name, Namespace: p.pod.Namespace, UID: string(p.pod.UID)}}
		if p.pod.Status.StartTime != nil {
			ps.StartTime = *p.pod.Status.StartTime
		}
		var cores, seconds, bytes float64
		for _, c := range p.containers {
			ps.Containers = append(ps.Containers, statsv1alpha1.ContainerStats{Name: c.name, StartTime: metav1.NewTime(c.started), CPU: cpu(c.cores, c.cpuSeconds), Memory: mem(c.memoryBytes)})
			cores, seconds, bytes = cores+c.cores, seconds+c.cpuSeconds, bytes+c.memoryBytes
		}
		ps.CPU, ps.Memory = cpu(cores, seconds), mem(bytes)
		summary.Pods = append(summary.Pods, ps)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(summary)
}
