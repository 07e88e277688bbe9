package sim

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kubesim/kubesim/apiserver"
)

// BenchmarkStart is what an operator suite pays for a fresh cluster per
// spec: sim.Start with the whole control plane (API server, the genuine
// scheduler and controllers, informers synced) until it is ready. Stop is
// outside the timer. The first start of a process builds what later ones
// share (the managed fields' type converter, OpenAPI models) before the
// timer; "median-ms" is the median start, the figure make bench reports.
func BenchmarkStart(b *testing.B) {
	start := func() time.Duration {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		t := time.Now()
		c, err := Start(ctx, Config{APIServer: apiserver.Config{AnyPort: true}})
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(t)
		b.StopTimer()
		if err := c.Stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		return d
	}
	start()
	b.ReportAllocs()
	b.ResetTimer()
	var starts []time.Duration
	for i := 0; i < b.N; i++ {
		starts = append(starts, start())
	}
	slices.Sort(starts)
	b.ReportMetric(float64(starts[len(starts)/2])/float64(time.Millisecond), "median-ms")
}
