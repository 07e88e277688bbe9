package kubeletsim

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestResourceMetricsText: /metrics/resource is the kubelet's, line for
// line: its families in its order, each sample with its labels quoted, its
// value as Prometheus writes floats and the scrape's time in milliseconds;
// pods' samples sum their containers'.
func TestResourceMetricsText(t *testing.T) {
	started := time.Unix(1700000000, 0)
	snap := nodeSnapshot{
		now:         time.Unix(1700000100, 250e6),
		cpuSeconds:  12.5,
		memoryBytes: 268435456.4,
		pods: []podUsage{
			{pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-0"}}, containers: []containerUsage{
				{name: "app", started: started, cpuSeconds: 1.25, memoryBytes: 1048576.6},
				{name: "sidecar", started: started.Add(time.Second), cpuSeconds: 1e-6, memoryBytes: 4096},
			}},
			{pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: `odd"name`}}, containers: []containerUsage{
				{name: "c", started: started, cpuSeconds: 3e21, memoryBytes: 2e9},
			}},
		},
	}
	want := `# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web-0"} 1.25 1700000100250
container_cpu_usage_seconds_total{container="sidecar",namespace="default",pod="web-0"} 1e-06 1700000100250
container_cpu_usage_seconds_total{container="c",namespace="kube-system",pod="odd\"name"} 3e+21 1700000100250
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="default",pod="web-0"} 1.048577e+06 1700000100250
container_memory_working_set_bytes{container="sidecar",namespace="default",pod="web-0"} 4096 1700000100250
container_memory_working_set_bytes{container="c",namespace="kube-system",pod="odd\"name"} 2e+09 1700000100250
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="app",namespace="default",pod="web-0"} 1.7e+09 1700000100250
container_start_time_seconds{container="sidecar",namespace="default",pod="web-0"} 1.700000001e+09 1700000100250
container_start_time_seconds{container="c",namespace="kube-system",pod="odd\"name"} 1.7e+09 1700000100250
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 12.5 1700000100250
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 2.68435456e+08 1700000100250
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="default",pod="web-0"} 1.250001 1700000100250
pod_cpu_usage_seconds_total{namespace="kube-system",pod="odd\"name"} 3e+21 1700000100250
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="default",pod="web-0"} 1.052673e+06 1700000100250
pod_memory_working_set_bytes{namespace="kube-system",pod="odd\"name"} 2e+09 1700000100250
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
`
	// Twice into the same buffer, as the pool reuses them.
	b := appendResourceMetrics(nil, &snap)
	if got := string(b); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := string(appendResourceMetrics(b[:0], &snap)); got != want {
		t.Errorf("into a used buffer, got:\n%s", got)
	}
}

func BenchmarkResourceMetricsText(b *testing.B) {
	snap := nodeSnapshot{now: time.Now(), cpuSeconds: 1234.5, memoryBytes: 3e9}
	for i := range 30 {
		snap.pods = append(snap.pods, podUsage{pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "load-3", Name: "load-4-5f8f6d7b86-" + string(rune('a'+i%26)) + "x9k2q"}},
			containers: []containerUsage{{name: "pause", started: time.Now(), cpuSeconds: 12.345678, memoryBytes: 12345678}}})
	}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = appendResourceMetrics(buf[:0], &snap)
	}
}
