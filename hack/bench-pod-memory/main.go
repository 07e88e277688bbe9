// Command bench-pod-memory measures the live heap a Running pod costs the
// whole kubesim process: API server storage, the scheduler's and the
// controller manager's caches, the simulated kubelets, and the pod's
// events. It runs a Deployment on a small cluster, so the figure comes in
// about a minute where make bench-scale takes hours; it is what the
// bench-scale memory per pod should be, less the storage history.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/apiserver/storage/memory"
	"github.com/kubesim/kubesim/kubeletsim"
	"github.com/kubesim/kubesim/sim"
)

func main() {
	pods := flag.Int("pods", 5000, "pods to run, in one Deployment")
	nodes := flag.Int("nodes", 50, "simulated nodes (110 pods each)")
	heapProfile := flag.String("heapprofile", "", "write the heap profile with the pods Running (events deleted) here")
	klog.InitFlags(nil)
	flag.Parse()
	if err := run(*pods, *nodes, *heapProfile); err != nil {
		fmt.Fprintln(os.Stderr, "bench-pod-memory:", err)
		os.Exit(1)
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() float64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc)
}

func run(podCount, nodeCount int, heapProfile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Compaction is the bench's: history is dropped before each reading.
	store, err := memory.New(memory.Config{CompactionInterval: -1})
	if err != nil {
		return err
	}
	cluster, err := sim.Start(ctx, sim.Config{
		APIServer: apiserver.Config{AnyPort: true, Storage: store},
		Nodes: []kubeletsim.NodePool{{NamePrefix: "node", Count: nodeCount, Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"), corev1.ResourcePods: resource.MustParse("110")}}},
		QPS: 5000, Burst: 10000,
	})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	rc := cluster.API.RESTConfig()
	rc.QPS, rc.Burst = -1, -1
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	client := kubernetes.NewForConfigOrDie(rc)
	compact := func() error {
		rev, err := store.CurrentRevision(ctx)
		if err != nil {
			return err
		}
		return store.Compact(ctx, rev)
	}
	// The nodes' registration events and the not-ready taints settle.
	if err := waitFor(ctx, 30*time.Second, func() (bool, error) {
		l, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, n := range l.Items {
			if len(n.Spec.Taints) > 0 {
				return false, nil
			}
		}
		return len(l.Items) == nodeCount, nil
	}); err != nil {
		return err
	}
	<-cluster.Nodes.RegistrationEventsRecorded()
	time.Sleep(3 * time.Second)
	if err := compact(); err != nil {
		return err
	}
	base := liveHeap()

	sel := map[string]string{"app": "load"}
	_, err = client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "load"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(podCount)), Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}}}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 3*time.Second, func() (bool, error) {
		l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range l.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		fmt.Fprintf(os.Stderr, "  %d pods Running\n", running)
		return running == podCount, nil
	}); err != nil {
		return err
	}
	// The last status writes reach every cache, and one more pod makes the
	// scheduler refresh its snapshot of the nodes.
	time.Sleep(5 * time.Second)
	if _, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "one-more"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	time.Sleep(5 * time.Second)
	withHistory := liveHeap()
	if err := compact(); err != nil {
		return err
	}
	withPods := liveHeap()
	evs, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	eventCount := len(evs.Items)
	evs = nil
	if err := client.CoreV1().Events("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	if err := compact(); err != nil {
		return err
	}
	withoutEvents := liveHeap()
	if heapProfile != "" {
		f, err := os.Create(heapProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	n := float64(podCount + 1)
	kb := func(b float64) string { return fmt.Sprintf("%.1f KB", b/n/1e3) }
	fmt.Printf("live heap:             %.0f MB with %d idle nodes, %.0f MB with %d pods Running\n", base/1e6, nodeCount, withPods/1e6, podCount+1)
	fmt.Printf("per Running pod:       %s (of which its %.1f events %s, storage history before compaction another %s)\n",
		kb(withPods-base), float64(eventCount)/n, kb(withPods-withoutEvents), kb(withHistory-withPods))
	return nil
}

func waitFor(ctx context.Context, every time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
