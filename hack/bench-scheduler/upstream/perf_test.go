//go:build schedulerperf

package upstream

import (
	"fmt"
	"os"
	"testing"

	_ "k8s.io/component-base/logs/json/register"
	perf "k8s.io/kubernetes/test/integration/scheduler_perf"
)

func TestMain(m *testing.M) {
	if err := perf.InitTests(); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	m.Run()
}

// BenchmarkPerfScheduling is scheduler_perf's benchmark of the file
// SCHEDULER_PERF_CONFIG names, under the topic SCHEDULER_PERF_TOPIC, as
// each of its directories' misc_test.go, affinity_test.go... runs it.
func BenchmarkPerfScheduling(b *testing.B) {
	file, topic := os.Getenv("SCHEDULER_PERF_CONFIG"), os.Getenv("SCHEDULER_PERF_TOPIC")
	if file == "" || topic == "" {
		b.Skip("SCHEDULER_PERF_CONFIG and SCHEDULER_PERF_TOPIC are not set")
	}
	perf.RunBenchmarkPerfScheduling(b, file, topic, nil)
}
