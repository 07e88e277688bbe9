package sim

import (
	"context"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/discovery"
	"k8s.io/kubernetes/pkg/controller/garbagecollector"
	"k8s.io/kubernetes/pkg/controller/resourcequota"

	"github.com/kubesim/kubesim/apiserver"
)

// BenchmarkDiscoverySyncRead is what the garbage collector and the
// ResourceQuota controller spend, together, on one discoverySyncPeriod when
// no resource came or went: each reads discovery through the in-process API
// server and finds the same resources (then compares two maps, which is
// not measured). Per second of an idle cluster that is one op.
func BenchmarkDiscoverySyncRead(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := Start(ctx, Config{APIServer: apiserver.Config{AnyPort: true}, DisableControllers: true, DisableScheduler: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	restConfig, err := componentConfig(c.API, Config{QPS: 1e6, Burst: 1e6}, user.KubeControllerManager, user.SystemPrivilegedGroup)
	if err != nil {
		b.Fatal(err)
	}
	gc, err := discovery.NewDiscoveryClientForConfig(restConfig)
	if err != nil {
		b.Fatal(err)
	}
	rq, err := discovery.NewDiscoveryClientForConfig(restConfig)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		deletable, err := garbagecollector.GetDeletableResources(ctx, discovery.ToServerResourcesInterfaceWithContext(gc))
		if err != nil || len(deletable) == 0 {
			b.Fatalf("garbage collector: %d resources, %v", len(deletable), err)
		}
		quotable, err := resourcequota.GetQuotableResources(rq.ServerPreferredNamespacedResources)
		if err != nil || len(quotable) == 0 {
			b.Fatalf("quota: %d resources, %v", len(quotable), err)
		}
	}
}
