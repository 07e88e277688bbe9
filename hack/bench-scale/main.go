package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/internal/hugepages"
	"github.com/kubesim/kubesim/kubeletsim"
	"github.com/kubesim/kubesim/sim"
)

var (
	cpuProfileFile, startProfileFile, idleProfileFile string
	heapProfileFile                                   string
	startProfileFor, settle                           time.Duration
)

// withAddons runs the cluster add-ons (-addons).
var withAddons bool

// leaseDuration is the simulated nodes' lease duration (0: kubelet's).
var leaseDuration time.Duration

func main() {
	nodeConfig := flag.String("node-config", "testdata/nodes/scale-5000.yaml", "the simulated node pools")
	pods := flag.Int("pods", 150000, "pods to run, in Deployments (0: the nodes only)")
	flag.BoolVar(&withAddons, "addons", true, "run the cluster add-ons (the default StorageClass's provisioner, load balancers, metrics-server scraping every node), as kubesim up does")
	deployments := flag.Int("deployments", 150, "Deployments the pods are spread over")
	// Kubernetes' scalability thresholds (sig-scalability's
	// configs-and-limits/thresholds.md) are 150,000 pods and 5,000 nodes a
	// cluster, and 3,000 pods a namespace; its load test (clusterloader2)
	// spreads its Deployments over namespaces to stay within them.
	namespaces := flag.Int("namespaces", 0, "namespaces the Deployments are spread over, each with its share in turn (0: as few as keep each within Kubernetes' threshold of 3,000 pods a namespace; 1: all in \"default\")")
	idle := flag.Duration("idle", 30*time.Second, "how long the idle nodes' CPU is measured")
	flag.DurationVar(&leaseDuration, "node-lease-duration", 0, "the simulated nodes' lease duration, renewed every quarter of it (0: kubelet's 40 s; `kubesim experiment run` uses 10m), with a node-monitor grace period of 1.25 times it")
	flag.DurationVar(&settle, "settle", 10*time.Second, "how long to wait, once the registration events are handed over, for their writes to drain before the idle measurement")
	timeout := flag.Duration("timeout", 8*time.Hour, "give up after this long (150,000 pods take hours on 2 cores)")
	flag.StringVar(&cpuProfileFile, "cpuprofile", "", "also write the CPU profile of the pod phase here")
	flag.StringVar(&idleProfileFile, "idleprofile", "", "also write the CPU profile of the idle nodes here, and their allocations (F.allocs less F.allocs.base: go tool pprof -diff_base)")
	flag.StringVar(&heapProfileFile, "heapprofile", "", "write a heap profile (after a GC) here once every pod is Running")
	flag.StringVar(&startProfileFile, "startprofile", "", "write the CPU profile of the start (until the nodes are schedulable) here")
	flag.DurationVar(&startProfileFor, "startprofile-for", 0, "stop the start profile after this long (0: when the nodes are schedulable)")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof here (host:port), to profile a run while it goes")
	hugePages := flag.Bool("huge-pages", true, "where the system's transparent huge pages are set to madvise, ask for them for the heap (as kubesim up --huge-pages does)")
	// Go's default heap goal (GOGC=100) lets the heap grow to twice what is
	// live before collecting; a soft limit collects sooner instead. With
	// every pod created in the first minutes, about 4 GB is live for most
	// of the 150,000-pod run: at 7Gi the collector ran every 20 s, a quarter
	// of the CPU, its heap goal shrinking as the runtime's own overhead grew.
	// 7.5Gi gives it room and keeps RSS under the 8 GiB target.
	memoryLimit := flag.String("memory-limit", "7.5Gi", "a soft memory limit for the Go runtime, as GOMEMLIMIT sets (a quantity; empty: none)")
	klog.InitFlags(nil)
	flag.Parse()
	if *pprofAddr != "" {
		go func() {
			if err := http.ListenAndServe(*pprofAddr, nil); err != nil {
				fmt.Fprintln(os.Stderr, "bench-scale: pprof:", err)
			}
		}()
	}
	if *memoryLimit != "" {
		q, err := resource.ParseQuantity(*memoryLimit)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-scale: -memory-limit:", err)
			os.Exit(2)
		}
		debug.SetMemoryLimit(q.Value())
		fmt.Printf("memory limit:          %s (soft, Go runtime)\n", q.String())
	}
	if *hugePages {
		go func() {
			if err := hugepages.Advise(context.Background(), hugepages.Options{}); err != nil {
				fmt.Fprintln(os.Stderr, "bench-scale: huge pages:", err)
			}
		}()
		mode := hugepages.Mode(hugepages.SystemModeFile)
		fmt.Printf("transparent huge pages: %s (system setting); the heap advised: %v\n", mode, mode == "madvise")
	}
	// An interrupt (or SIGTERM) ends the run as the timeout does: the pod
	// phase prints its figures so far. A second one kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	if *namespaces == 0 {
		*namespaces = min(max((*pods+podsPerNamespace-1)/podsPerNamespace, 1), max(*deployments, 1))
	}
	if err := run(ctx, *nodeConfig, *pods, *deployments, *namespaces, *idle, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(1)
	}
}

// cpuTime is the process's user+system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is the process's peak resident set (VmHWM).
func peakRSS() string { return procStatusGiB("VmHWM") }

// procStatusGiB is a field of /proc/self/status (VmRSS, VmHWM), in GiB.
func procStatusGiB(field string) string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return fmt.Sprintf("%.2f GiB", float64(kb)/1024/1024)
		}
	}
	return "?"
}

// profileShares runs fn under a CPU profile and returns each component's
// share of the CPU samples, by the sim.ComponentLabel pprof label. When fn
// fails (a run cut short), the shares of the profile so far come with its
// error.
func profileShares(file string, fn func() error) (map[string]float64, error) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return nil, err
	}
	fnErr := fn()
	pprof.StopCPUProfile()
	if file != "" {
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			return nil, errors.Join(fnErr, err)
		}
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		return nil, errors.Join(fnErr, err)
	}
	by := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		comp := "bench and runtime (unlabelled: GC, the bench's own watch)"
		if v := s.Label[sim.ComponentLabel]; len(v) > 0 {
			comp = v[0]
		}
		by[comp] += s.Value[1]
		total += s.Value[1]
	}
	shares := map[string]float64{}
	for k, v := range by {
		shares[k] = float64(v) / float64(max(total, 1))
	}
	return shares, fnErr
}

func printShares(shares map[string]float64) {
	keys := make([]string, 0, len(shares))
	for k := range shares {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return shares[keys[i]] > shares[keys[j]] })
	for _, k := range keys {
		fmt.Printf("    %-28s %5.1f%%\n", k, 100*shares[k])
	}
}

// podsPerNamespace is Kubernetes' scalability threshold for pods in one
// namespace.
const podsPerNamespace = 3000

// namespaceOf is the namespace of Deployment i of n spread over ns
// namespaces: consecutive Deployments share one, "default" when ns is 1.
func namespaceOf(i, n, ns int) string {
	if ns <= 1 {
		return metav1.NamespaceDefault
	}
	return fmt.Sprintf("load-%d", i*ns/n)
}

func run(ctx context.Context, nodeConfig string, podCount, deploymentCount, namespaceCount int, idle, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := kubeletsim.LoadNodeConfig(nodeConfig)
	if err != nil {
		return err
	}
	nodeCount := 0
	for _, p := range nc.Pools {
		nodeCount += p.Count
	}

	if startProfileFile != "" {
		f, err := os.Create(startProfileFile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		if startProfileFor > 0 {
			stop := time.AfterFunc(startProfileFor, pprof.StopCPUProfile)
			defer stop.Stop()
		}
	}
	start := time.Now()
	cluster, err := sim.Start(ctx, sim.Config{
		APIServer: apiserver.Config{AnyPort: true},
		Nodes:     nc.Pools, NodeProfiles: nc.Profiles,
		// The scheduler and the controllers are not held back by client
		// rate limits: the question is what the scheduler can do.
		QPS: 20000, Burst: 40000,
		DisableAddons:     !withAddons,
		NodeLeaseDuration: leaseDuration, NodeMonitorGracePeriod: leaseDuration * 5 / 4,
	})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	registered := time.Since(start)
	restConfig := cluster.API.RESTConfig()
	restConfig.QPS, restConfig.Burst = -1, -1
	restConfig.ContentType = "application/vnd.kubernetes.protobuf"
	client := kubernetes.NewForConfigOrDie(restConfig)

	// Ready: every node reports Ready and the node lifecycle controller has
	// lifted the not-ready taint, so the scheduler may use it.
	// The nodes are followed with a watch: listing 5,000 nodes ten times a
	// second would itself load the API server.
	var schedulable time.Duration
	nodeFactory := informers.NewSharedInformerFactory(client, 0)
	nodeLister := nodeFactory.Core().V1().Nodes().Lister()
	nodesCtx, stopNodes := context.WithCancel(ctx)
	nodeFactory.Start(nodesCtx.Done())
	nodeFactory.WaitForCacheSync(nodesCtx.Done())
	lastReport := time.Now()
	for {
		nodes, err := nodeLister.List(labels.Everything())
		if err != nil {
			stopNodes()
			return err
		}
		n := 0
		for _, node := range nodes {
			if len(node.Spec.Taints) == 0 {
				n++
			}
		}
		if n == nodeCount {
			schedulable = time.Since(start)
			break
		}
		if time.Since(lastReport) >= 2*time.Second {
			fmt.Fprintf(os.Stderr, "  %v: %d nodes schedulable\n", time.Since(start).Round(100*time.Millisecond), n)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			stopNodes()
			return fmt.Errorf("%d of %d nodes schedulable: %w", n, nodeCount, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	stopNodes()
	nodeFactory.Shutdown()
	if startProfileFile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Printf("nodes:                 %d\n", nodeCount)
	nodesAt, leasesAt := cluster.Nodes.RegistrationTimes()
	fmt.Printf("nodes Ready (every Node registered, reporting Ready): %v after start\n", nodesAt.Sub(start).Round(time.Millisecond))
	fmt.Printf("leases held (every Lease created; sim.Start returns): %v, %v after start\n", leasesAt.Sub(start).Round(time.Millisecond), registered.Round(time.Millisecond))
	fmt.Printf("nodes schedulable (not-ready taint lifted by the node lifecycle controller): %v after start\n", schedulable.Round(time.Millisecond))

	// Idle: leases renewed every 10s, nothing else, once the nodes'
	// registration events are out.
	select {
	case <-cluster.Nodes.RegistrationEventsRecorded():
	case <-ctx.Done():
		return ctx.Err()
	}
	fmt.Printf("registration events recorded (6 a node, paced): %v after start\n", time.Since(start).Round(time.Millisecond))
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	// Idle: leases renewed every 10s, nothing else.
	var idleCPU time.Duration
	idleShares, err := profileShares(idleProfileFile, func() error {
		c0 := cpuTime()
		if err := writeAllocs(idleProfileFile, ".allocs.base"); err != nil {
			return err
		}
		select {
		case <-time.After(idle):
		case <-ctx.Done():
			return ctx.Err()
		}
		idleCPU = cpuTime() - c0
		return writeAllocs(idleProfileFile, ".allocs")
	})
	if err != nil {
		return err
	}
	renew := "every 10s, as kubelet"
	if leaseDuration > 0 {
		renew = fmt.Sprintf("every %v", leaseDuration/4)
	}
	fmt.Printf("idle CPU with %d nodes: %.3f cores (whole process, over %v; leases renewed %s); by component:\n", nodeCount, idleCPU.Seconds()/idle.Seconds(), idle, renew)
	printShares(idleShares)
	if podCount == 0 {
		fmt.Printf("peak RSS:              %s (whole process)\n", peakRSS())
		return nil
	}

	// Pods: a watch records when each pod is first seen and when it is
	// first Running.
	var mu sync.Mutex
	created := make(map[string]time.Time, podCount)
	var latencies []time.Duration
	runningDone := make(chan struct{})
	// The watch keeps only what it measures, so that its cache does not
	// count in the cluster's memory.
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(func(obj interface{}) (interface{}, error) {
		if p, ok := obj.(*corev1.Pod); ok {
			return &podPhase{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, ResourceVersion: p.ResourceVersion},
				Phase:      p.Status.Phase,
			}, nil
		}
		return obj, nil
	}))
	inf := factory.Core().V1().Pods().Informer()
	observe := func(obj interface{}) {
		p, ok := obj.(*podPhase)
		if !ok {
			return
		}
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		t, seen := created[p.Name]
		if !seen {
			created[p.Name] = now
			t = now
		}
		if p.Phase == corev1.PodRunning && !t.IsZero() {
			latencies = append(latencies, now.Sub(t))
			created[p.Name] = time.Time{} // counted
			if len(latencies) == podCount {
				close(runningDone)
			}
		}
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, o interface{}) { observe(o) }})
	// The informers stop before the cluster does: Shutdown waits for them.
	informersCtx, stopInformers := context.WithCancel(ctx)
	factory.Start(informersCtx.Done())
	defer func() { stopInformers(); factory.Shutdown() }()
	factory.WaitForCacheSync(informersCtx.Done())

	// The namespaces, each with the default ServiceAccount its pods are
	// admitted with (the genuine service account controller creates it).
	if namespaceCount > 1 {
		for i := range namespaceCount {
			// namespaceOf's names, load-0 to load-<count-1>, each taken by
			// some Deployment (there are more Deployments than namespaces).
			name := fmt.Sprintf("load-%d", i)
			if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
				return err
			}
			for {
				_, err := client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
				if err == nil {
					break
				}
				if !apierrors.IsNotFound(err) {
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
	per := podCount / deploymentCount
	podsStart := time.Now()
	cpu0 := cpuTime()
	podShares, err := profileShares(cpuProfileFile, func() error {
		for i := range deploymentCount {
			replicas := per
			if i == deploymentCount-1 {
				replicas = podCount - per*(deploymentCount-1)
			}
			name := fmt.Sprintf("load-%d", i)
			sel := map[string]string{"app": name}
			_, err := client.AppsV1().Deployments(namespaceOf(i, deploymentCount, namespaceCount)).Create(ctx, &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: appsv1.DeploymentSpec{
					Replicas: ptr.To(int32(replicas)),
					Selector: &metav1.LabelSelector{MatchLabels: sel},
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: sel},
						Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
							Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}}}}},
					},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				return err
			}
		}
		// Progress every 10 s: pods Running, the pace over the last
		// minute, the process's RSS.
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		type point struct {
			at time.Time
			n  int
		}
		var recent []point
		for {
			select {
			case <-runningDone:
				return nil
			case <-ctx.Done():
				mu.Lock()
				n := len(latencies)
				mu.Unlock()
				return fmt.Errorf("%d of %d pods Running: %w", n, podCount, context.Cause(ctx))
			case now := <-tick.C:
				mu.Lock()
				n := len(latencies)
				mu.Unlock()
				recent = append(recent, point{now, n})
				if len(recent) > 7 {
					recent = recent[1:]
				}
				pace := float64(n-recent[0].n) / max(now.Sub(recent[0].at).Seconds(), 1)
				fmt.Fprintf(os.Stderr, "  %v: %d pods Running, %.1f/s over %v, RSS %s (peak %s)\n", now.Sub(podsStart).Round(time.Second), n,
					pace, now.Sub(recent[0].at).Round(time.Second), procStatusGiB("VmRSS"), peakRSS())
			}
		}
	})
	if podShares == nil {
		return err
	}
	// A run cut short (timeout, interrupt) prints what it measured so far:
	// a 150,000-pod run takes hours.
	elapsed := time.Since(podsStart)
	podCPU := cpuTime() - cpu0
	mu.Lock()
	done := slices.Clone(latencies)
	mu.Unlock()
	if err != nil {
		fmt.Printf("cut short:             %v; the figures so far:\n", err)
		if len(done) == 0 {
			return err
		}
	}
	slices.Sort(done)
	q := func(f float64) time.Duration {
		return done[int(f*float64(len(done)-1))].Round(time.Millisecond)
	}
	fmt.Printf("pods Running:          %d of %d in %v (%d Deployments in %d namespaces)\n", len(done), podCount, elapsed.Round(time.Millisecond), deploymentCount, namespaceCount)
	fmt.Printf("throughput:            %.0f pods/s (create to Running, genuine scheduler)\n", float64(len(done))/elapsed.Seconds())
	fmt.Printf("create-to-Running:     p50 %v, p99 %v, max %v (of the pods Running)\n", q(0.5), q(0.99), q(1))
	fmt.Printf("CPU while running pods: %.2f cores (whole process); by component:\n", podCPU.Seconds()/elapsed.Seconds())
	printShares(podShares)
	fmt.Printf("peak RSS:              %s (whole process)\n", peakRSS())
	if err != nil {
		return err
	}
	if heapProfileFile != "" {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("live heap after GC:    %.2f GiB\n", float64(ms.HeapAlloc)/(1<<30))
		f, err := os.Create(heapProfileFile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	return nil
}

// podPhase is what the bench's watch keeps of a pod: a v1.Pod is over a
// kilobyte before its fields' contents, and 150,000 of them would count in
// the cluster's memory.
type podPhase struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	Phase corev1.PodPhase
}

func (p *podPhase) DeepCopyObject() kruntime.Object {
	c := *p
	p.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

// writeAllocs writes the allocation profile beside the CPU profile file
// (nothing without one): the idle window's allocations are those of
// file+".allocs" less file+".allocs.base" (go tool pprof -diff_base).
func writeAllocs(file, suffix string) error {
	if file == "" {
		return nil
	}
	f, err := os.Create(file + suffix)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}
