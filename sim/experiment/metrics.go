package experiment

import (
	"context"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/names"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"

	"github.com/kubesim/kubesim/sim"
)

// DataItem is one measured figure set, as scheduler_perf writes it
// (perf-dash's format): Labels["Metric"] names it, Labels["Name"] the
// workload and namespace.
type DataItem struct {
	Data   map[string]float64 `json:"data"`
	Unit   string             `json:"unit"`
	Labels map[string]string  `json:"labels,omitempty"`
}

// DataItems is results.json.
type DataItems struct {
	Version   string     `json:"version"`
	DataItems []DataItem `json:"dataItems"`
}

// WorkloadResult is what one workload measured.
type WorkloadResult struct {
	// Name is TestCase/Workload.
	Name, TestCase, Workload string
	Params                   map[string]any
	// Threshold is the workload's threshold for the run's topic (0: none)
	// and ThresholdMetric the data item it applies to.
	Threshold       float64
	ThresholdMetric ThresholdMetricSelector
	// ThresholdFailures say which data items missed the threshold.
	ThresholdFailures []string
	// Err is why the workload did not complete.
	Err      error
	Duration time.Duration
	// DataItems are scheduler_perf's data items (SchedulingThroughput,
	// the scheduler's histograms, ...) and kubesim's (latencies, API
	// request latency, utilisation).
	DataItems []DataItem
	// Throughput are the samples of the measured pods' scheduling
	// throughput, one a second, as scheduler_perf takes them.
	Throughput []Sample
	// Phases are the workload's pods by phase, sampled every second.
	Phases []PhaseSample
	// SchedulingLatency (created to bound) and StartupLatency (created
	// to Running) of the measured pods.
	SchedulingLatency, StartupLatency []time.Duration
	// Unschedulable counts the pods left unschedulable by the reason the
	// scheduler gave (the PodScheduled condition's message).
	Unschedulable map[string]int
	// Attempts counts scheduling attempts by result; Preemptions the
	// preemption attempts and PreemptionVictims the pods they evicted.
	Attempts                       map[string]float64
	Preemptions, PreemptionVictims float64
	// Utilisation is requested over allocatable per resource (cpu,
	// memory, pods) over the nodes at the end.
	Utilisation []Utilisation
	// APILatency is the API server's request latency p99 by verb.
	APILatency []APILatency
	// Nodes and Pods are counted at the end.
	Nodes, Pods int
	// Explanations are the scheduler's records of a sample of pods: the
	// first pods of each namespace and up to 10 pods left unschedulable.
	Explanations []*sim.Explanation
	// CPU is the process's CPU by component while pods were measured,
	// over CPUWall; CPUNote says why it was not measured, if it was not.
	CPU     []ComponentCPU
	CPUWall time.Duration
	CPUNote string
}

// Sample is a value at T seconds from the start of its measurement.
type Sample struct {
	T     float64 `json:"t"`
	Value float64 `json:"value"`
}

// PhaseSample counts pods at T seconds from the workload's start.
type PhaseSample struct {
	T float64 `json:"t"`
	// Unscheduled are Pending pods without a node; Scheduled are pods
	// bound but not yet Running.
	Unscheduled, Scheduled, Running, Finished int
}

// Utilisation is one resource's requests over allocatable.
type Utilisation struct {
	Resource               string
	Requested, Allocatable float64
	// PerNode is each node's requested/allocatable.
	PerNode []float64
}

// APILatency is one verb's request latency.
type APILatency struct {
	Verb  string
	Count uint64
	P50   time.Duration
	P99   time.Duration
	// SLO is the API call latency SLO's bound (mutating calls and single
	// object reads 1 s, lists 30 s) and Met whether p99 is within it.
	SLO time.Duration
	Met bool
}

// podTimes are when a pod was created (by the experiment, client side;
// or its creationTimestamp), seen bound and seen Running.
type podTimes struct {
	created, bound, running time.Time
}

// podTracker records each pod's times from the executor's pod informer.
type podTracker struct {
	mu       sync.Mutex
	pods     map[string]*podTimes
	expected int
}

func newPodTracker() *podTracker { return &podTracker{pods: map[string]*podTimes{}} }

func (t *podTracker) entry(key string) *podTimes {
	pt := t.pods[key]
	if pt == nil {
		pt = &podTimes{}
		t.pods[key] = pt
	}
	return pt
}

func (t *podTracker) expect(n int) {
	t.mu.Lock()
	t.expected += n
	t.mu.Unlock()
}

// created records the client-side time of a pod's create call.
func (t *podTracker) created(p *corev1.Pod, at time.Time) {
	t.mu.Lock()
	t.entry(p.Namespace + "/" + p.Name).created = at
	t.mu.Unlock()
}

func (t *podTracker) observe(p *corev1.Pod) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.entry(p.Namespace + "/" + p.Name)
	if pt.created.IsZero() {
		// A pod a controller created (a Deployment's, a Job's): its
		// creationTimestamp, to the second, until the experiment's own
		// create call, if it made it, says better.
		pt.created = p.CreationTimestamp.Time
	}
	if p.Spec.NodeName != "" && pt.bound.IsZero() {
		pt.bound = now
	}
	if p.Status.Phase == corev1.PodRunning && pt.running.IsZero() {
		pt.running = now
	}
}

func (t *podTracker) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				t.observe(p)
			}
		},
		UpdateFunc: func(_, obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				t.observe(p)
			}
		},
	}
}

// latencies are the created-to-bound and created-to-Running latencies of
// the pods of namespaces (all when empty) matching selector, created at
// or after since.
func (t *podTracker) latencies(lister cache.Indexer, namespaces sets.Set[string], selector labels.Selector, since time.Time) (sched, startup []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, pt := range t.pods {
		if pt.created.IsZero() || pt.created.Before(since) {
			continue
		}
		ns, _, _ := strings.Cut(key, "/")
		if namespaces.Len() > 0 && !namespaces.Has(ns) {
			continue
		}
		if selector != nil && !selector.Empty() {
			obj, ok, _ := lister.GetByKey(key)
			if !ok || !selector.Matches(labels.Set(obj.(*corev1.Pod).Labels)) {
				continue
			}
		}
		if !pt.bound.IsZero() {
			sched = append(sched, pt.bound.Sub(pt.created))
		}
		if !pt.running.IsZero() {
			startup = append(startup, pt.running.Sub(pt.created))
		}
	}
	return sched, startup
}

// collection is one measurement window (a createPods op with
// collectMetrics, or startCollectingMetrics to stopCollectingMetrics):
// scheduler_perf's throughput, metrics, memory and duration collectors.
type collection struct {
	name       string
	namespaces sets.Set[string]
	selector   map[string]string
	start      time.Time
	cancel     context.CancelFunc
	done       chan struct{}
	handle     cache.ResourceEventHandlerRegistration

	mu          sync.Mutex
	scheduled   int
	throughputs []float64
	samples     []Sample
	heap        []float64
}

// startCollecting starts a measurement window.
func (e *executor) startCollecting(name string, namespaces []string, selector map[string]string) *collection {
	runtime.GC()
	c := &collection{name: name, namespaces: sets.New(namespaces...), selector: selector, start: time.Now(), done: make(chan struct{})}
	if p, ok := startCPUProfile(); ok {
		e.cpuProf = p
	} else {
		e.wr.CPUNote = "not measured: a CPU profile was being written (--cpuprofile or a startCollectingProfile op)"
	}
	count := func(oldPod, newPod *corev1.Pod) {
		if !c.namespaces.Has(newPod.Namespace) || !labelsMatch(newPod.Labels, c.selector) {
			return
		}
		if (oldPod == nil || oldPod.Spec.NodeName == "") && newPod.Spec.NodeName != "" {
			c.mu.Lock()
			c.scheduled++
			c.mu.Unlock()
		}
	}
	c.handle, _ = e.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				count(nil, p)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Pod)
			n, ok2 := newObj.(*corev1.Pod)
			if ok1 && ok2 {
				count(o, n)
			}
		},
	})
	ctx, cancel := context.WithCancel(e.bgCtx)
	c.cancel = cancel
	go func() {
		defer close(c.done)
		c.run(ctx)
	}()
	return c
}

// run samples the throughput every second as scheduler_perf's
// throughputCollector: from the first second with a scheduled pod,
// intervals without one merged into the next that has one.
func (c *collection) run(ctx context.Context) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	heapTicker := time.NewTicker(500 * time.Millisecond)
	defer heapTicker.Stop()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	c.heap = append(c.heap, float64(ms.HeapInuse)/1024/1024)
	started := false
	last, skipped := 0, 0
	lastTime := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-heapTicker.C:
			runtime.ReadMemStats(&ms)
			c.mu.Lock()
			c.heap = append(c.heap, float64(ms.HeapInuse)/1024/1024)
			c.mu.Unlock()
		case now := <-ticker.C:
			c.mu.Lock()
			scheduled := c.scheduled
			c.mu.Unlock()
			if scheduled == 0 {
				continue
			}
			if !started {
				started, last, lastTime = true, scheduled, now
				c.mu.Lock()
				c.start = now
				c.mu.Unlock()
				continue
			}
			n := scheduled - last
			if n == 0 {
				skipped++
				continue
			}
			tp := float64(n) / now.Sub(lastTime).Seconds()
			c.mu.Lock()
			for i := 0; i <= skipped; i++ {
				c.throughputs = append(c.throughputs, tp)
			}
			c.samples = append(c.samples, Sample{T: now.Sub(c.start).Seconds(), Value: tp})
			c.mu.Unlock()
			last, skipped, lastTime = scheduled, 0, now
		}
	}
}

// stopCollecting ends the window and records its data items.
func (e *executor) stopCollecting() {
	c := e.collector
	e.collector = nil
	end := time.Now()
	c.cancel()
	<-c.done
	_ = e.pods.RemoveEventHandler(c.handle)
	var cpu []ComponentCPU
	if e.cpuProf != nil {
		var wall time.Duration
		var err error
		cpu, wall, err = e.cpuProf.stop()
		e.cpuProf = nil
		if err != nil {
			e.wr.CPUNote = err.Error()
		} else {
			e.wr.CPU, e.wr.CPUWall = addCPU(e.wr.CPU, cpu), e.wr.CPUWall+wall
		}
	}
	// scheduler_perf's Name: its benchmark's sub-test name and the
	// collection's (the namespace of a createPods op).
	labels0 := map[string]string{"Name": dataItemName(e.p.name) + "/" + c.name}
	items := []DataItem{throughputItem(labels0, c.throughputs)}
	items = append(items, histogramItems(e.p.tc.MetricsCollectorConfig, labels0)...)
	items = append(items, memoryItems(labels0, c.heap, end.Sub(c.start))...)
	items = append(items, DataItem{Labels: with(labels0, "Metric", "SchedulingDuration"), Data: map[string]float64{"Duration": end.Sub(c.start).Seconds()}, Unit: "s"})
	items = append(items, cpuItems(labels0, cpu)...)
	// The measured pods' startup latency needs them Running: scheduling
	// is done, their kubelets may still be starting them.
	e.waitStarted(c.namespaces, labels.SelectorFromSet(c.selector))
	sched, startup := e.tracker.latencies(e.pods.GetIndexer(), c.namespaces, labels.SelectorFromSet(c.selector), time.Time{})
	items = append(items, latencyItem(with(labels0, "Metric", "kubesim_pod_scheduling_latency"), sched))
	items = append(items, latencyItem(with(labels0, "Metric", "kubesim_pod_startup_latency"), startup))
	e.wr.SchedulingLatency = append(e.wr.SchedulingLatency, sched...)
	e.wr.StartupLatency = append(e.wr.StartupLatency, startup...)
	e.wr.Throughput = append(e.wr.Throughput, c.samples...)
	if err := applyThreshold(items, e.wr.Threshold, e.wr.ThresholdMetric); err != nil {
		e.wr.ThresholdFailures = append(e.wr.ThresholdFailures, err.Error())
	}
	e.wr.DataItems = append(e.wr.DataItems, items...)
}

// waitStarted waits, at most startWait, until no bound pod of the
// namespaces is Pending.
func (e *executor) waitStarted(namespaces sets.Set[string], sel labels.Selector) {
	ctx, cancel := context.WithTimeout(e.bgCtx, startWait)
	defer cancel()
	_ = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		for ns := range namespaces {
			pods, err := e.podLister.Pods(ns).List(sel)
			if err != nil {
				return false, err
			}
			for _, p := range pods {
				if p.Spec.NodeName != "" && p.Status.Phase == corev1.PodPending {
					return false, nil
				}
			}
		}
		return true, nil
	})
}

// startWait bounds waitStarted: pods whose kubelet never starts them
// (a profile that fails them) are left out of the startup latency.
const startWait = 2 * time.Minute

// dataItemName is a workload's name in data items, as scheduler_perf's
// benchmark names it.
func dataItemName(workload string) string { return "BenchmarkPerfScheduling/" + workload }

func with(m map[string]string, k, v string) map[string]string {
	out := maps.Clone(m)
	out[k] = v
	return out
}

// throughputItem is scheduler_perf's SchedulingThroughput: the average and
// nearest-rank percentiles of the per-second samples.
func throughputItem(l map[string]string, samples []float64) DataItem {
	if len(samples) == 0 {
		// As scheduler_perf's: no samples (every pod scheduled within a
		// second), no Metric label and no data.
		return DataItem{Labels: maps.Clone(l)}
	}
	item := DataItem{Labels: with(l, "Metric", "SchedulingThroughput"), Unit: "pods/s"}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	rank := func(p int) float64 { return s[int(math.Ceil(float64(len(s)*p)/100))-1] }
	item.Data = map[string]float64{"Average": sum / float64(len(s)), "Perc50": rank(50), "Perc90": rank(90), "Perc95": rank(95), "Perc99": rank(99)}
	return item
}

func memoryItems(l map[string]string, heap []float64, d time.Duration) []DataItem {
	if len(heap) == 0 {
		return nil
	}
	growth := 0.0
	if d.Minutes() > 0 {
		growth = (heap[len(heap)-1] - heap[0]) / d.Minutes()
	}
	s := append([]float64(nil), heap...)
	sort.Float64s(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	rank := func(p int) float64 { return s[int(math.Ceil(float64(len(s)*p)/100))-1] }
	return []DataItem{
		{Labels: with(l, "Metric", "heap_memory_usage"), Unit: "MB", Data: map[string]float64{
			"Perc50": rank(50), "Perc90": rank(90), "Perc95": rank(95), "Perc99": rank(99), "Average": sum / float64(len(s)), "Max": s[len(s)-1]}},
		{Labels: with(l, "Metric", "memory_growth_rate"), Unit: "MB/min", Data: map[string]float64{"GrowthRate": growth}},
	}
}

func latencyItem(l map[string]string, lat []time.Duration) DataItem {
	item := DataItem{Labels: l, Unit: "ms", Data: map[string]float64{}}
	if len(lat) == 0 {
		return item
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	item.Data["Perc50"] = ms(percentile(lat, 0.50))
	item.Data["Perc90"] = ms(percentile(lat, 0.90))
	item.Data["Perc99"] = ms(percentile(lat, 0.99))
	item.Data["Max"] = ms(percentile(lat, 1))
	return item
}

// percentile is the nearest-rank percentile of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// pluginNames are the plugins scheduler_perf collects metrics for
// (its PluginNames).
var pluginNames = []string{
	names.PrioritySort, names.DefaultBinder, names.DefaultPreemption, names.DynamicResources,
	names.ImageLocality, names.InterPodAffinity, names.NodeAffinity, names.NodeName, names.NodePorts,
	names.NodeResourcesBalancedAllocation, names.NodeResourcesFit, names.NodeUnschedulable,
	names.NodeVolumeLimits, names.PodTopologySpread, names.SchedulingGates, names.TaintToleration,
	names.VolumeBinding, names.VolumeRestrictions, names.VolumeZone,
}

// defaultMetricsCollectorConfig is scheduler_perf's.
func defaultMetricsCollectorConfig() *MetricsCollectorConfig {
	return &MetricsCollectorConfig{Metrics: map[string][]*LabelValues{
		"scheduler_framework_extension_point_duration_seconds": {{Label: "extension_point", Values: schedmetrics.ExtensionPoints}},
		"scheduler_scheduling_attempt_duration_seconds": {{Label: "result", Values: []string{
			schedmetrics.ScheduledResult, schedmetrics.UnschedulableResult, schedmetrics.ErrorResult}}},
		"scheduler_pod_scheduling_duration_seconds": nil,
		"scheduler_plugin_execution_duration_seconds": {
			{Label: "plugin", Values: pluginNames},
			{Label: "extension_point", Values: schedmetrics.ExtensionPoints},
		},
		"scheduler_queueing_hint_execution_duration_seconds": {
			{Label: "plugin", Values: pluginNames},
			{Label: "event", Values: framework.AllClusterEventLabels()},
		},
		"scheduler_event_handling_duration_seconds": {{Label: "event", Values: framework.AllClusterEventLabels()}},
		"scheduler_podgroup_scheduling_attempt_duration_seconds": {{Label: "result", Values: []string{
			schedmetrics.WaitingOnPreemptionResult, schedmetrics.ScheduledResult, schedmetrics.UnschedulableResult, schedmetrics.ErrorResult}}},
		"scheduler_podgroup_scheduling_algorithm_duration_seconds": nil,
	}}
}

// histogramItems are the scheduler's histograms, as scheduler_perf's
// metricsCollector reads them from the process's registry: percentiles
// and average in milliseconds, for every label combination with samples.
func histogramItems(mcc *MetricsCollectorConfig, l map[string]string) []DataItem {
	if mcc == nil {
		mcc = defaultMetricsCollectorConfig()
	}
	gm, err := testutil.GatherMetrics(legacyregistry.DefaultGatherer)
	if err != nil {
		return nil
	}
	var items []DataItem
	for _, metric := range slices.Sorted(maps.Keys(mcc.Metrics)) {
		for _, lv := range uniqueLVCombos(mcc.Metrics[metric]) {
			vec, err := gm.GetHistogramVec(metric, lv)
			if err != nil || vec.Validate() != nil || vec.GetAggregatedSampleCount() == 0 {
				continue
			}
			labels := with(l, "Metric", metric)
			for k, v := range lv {
				labels[k] = v
			}
			ms := float64(time.Second / time.Millisecond)
			items = append(items, DataItem{Labels: labels, Unit: "ms", Data: map[string]float64{
				"Perc50": vec.Quantile(0.50) * ms, "Perc90": vec.Quantile(0.90) * ms,
				"Perc95": vec.Quantile(0.95) * ms, "Perc99": vec.Quantile(0.99) * ms, "Average": vec.Average() * ms,
			}})
		}
	}
	return items
}

// applyThreshold adds the threshold to the data items it applies to and
// says which miss it, as scheduler_perf's applyThreshold.
func applyThreshold(items []DataItem, threshold float64, sel ThresholdMetricSelector) error {
	if threshold == 0 {
		return nil
	}
	var errs []string
	for _, item := range items {
		if item.Labels["Metric"] != sel.Name || !labelsMatch(item.Labels, sel.Labels) {
			continue
		}
		if item.Data == nil {
			errs = append(errs, fmt.Sprintf("%s: no data present for %q metric %q bucket", item.Labels["Name"], sel.Name, sel.DataBucket))
			continue
		}
		item.Data[sel.DataBucket+"Threshold"] = threshold
		v, ok := item.Data[sel.DataBucket]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: no data present for %q metric %q bucket", item.Labels["Name"], sel.Name, sel.DataBucket))
			continue
		}
		if sel.ExpectLower && !(v < threshold) {
			errs = append(errs, fmt.Sprintf("%s: expected %q %q to be lower: got %f, want %f", item.Labels["Name"], sel.Name, sel.DataBucket, v, threshold))
		} else if !sel.ExpectLower && !(v > threshold) {
			errs = append(errs, fmt.Sprintf("%s: expected %q %q to be higher: got %f, want %f", item.Labels["Name"], sel.Name, sel.DataBucket, v, threshold))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// startSampling counts the workload's pods by phase every second.
func (e *executor) startSampling() {
	e.sampleStart = time.Now()
	e.goBackground(func(ctx context.Context) error {
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		var bar *progress
		if e.o.Progress != nil {
			bar = newProgress(e.o.Progress, e.o.Terminal, e.o.ProgressInterval, e.p.name, e.p.pods)
			defer bar.done()
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case now := <-ticker.C:
				s := e.sample(now)
				if bar != nil {
					bar.update(now, s.Scheduled+s.Running+s.Finished)
				}
			}
		}
	})
}

// sample records the pods by phase now.
func (e *executor) sample(now time.Time) PhaseSample {
	s := PhaseSample{T: now.Sub(e.sampleStart).Seconds()}
	for _, obj := range e.pods.GetStore().List() {
		p := obj.(*corev1.Pod)
		switch {
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			s.Finished++
		case p.Status.Phase == corev1.PodRunning:
			s.Running++
		case p.Spec.NodeName != "":
			s.Scheduled++
		default:
			s.Unscheduled++
		}
	}
	e.bgMu.Lock()
	e.wr.Phases = append(e.wr.Phases, s)
	e.bgMu.Unlock()
	return s
}

// stopSampling takes the last sample: the end state.
func (e *executor) stopSampling() { e.sample(time.Now()) }

// recordState records the end state: unschedulable pods by reason,
// scheduling attempts and preemptions, utilisation and API latency.
func (e *executor) recordState(context.Context) {
	wr := e.wr
	wr.Unschedulable = map[string]int{}
	nodes := map[string]*corev1.Node{}
	for _, obj := range e.nodes.GetStore().List() {
		n := obj.(*corev1.Node)
		nodes[n.Name] = n
	}
	requested := map[string]corev1.ResourceList{}
	podCount := map[string]int64{}
	pods := e.pods.GetStore().List()
	wr.Nodes, wr.Pods = len(nodes), len(pods)
	for _, obj := range pods {
		p := obj.(*corev1.Pod)
		if p.Spec.NodeName == "" {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					wr.Unschedulable[c.Message]++
				}
			}
			continue
		}
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		rl := requested[p.Spec.NodeName]
		if rl == nil {
			rl = corev1.ResourceList{}
			requested[p.Spec.NodeName] = rl
		}
		for name, q := range podRequests(p) {
			cur := rl[name]
			cur.Add(q)
			rl[name] = cur
		}
		podCount[p.Spec.NodeName]++
	}
	nodeNames := make([]string, 0, len(nodes))
	for n := range nodes {
		nodeNames = append(nodeNames, n)
	}
	sort.Strings(nodeNames)
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods} {
		u := Utilisation{Resource: string(res)}
		for _, name := range nodeNames {
			alloc, ok := nodes[name].Status.Allocatable[res]
			if !ok || alloc.IsZero() {
				continue
			}
			var req float64
			if res == corev1.ResourcePods {
				req = float64(podCount[name])
			} else {
				q := requested[name][res]
				req = q.AsApproximateFloat64()
			}
			a := alloc.AsApproximateFloat64()
			u.Requested += req
			u.Allocatable += a
			u.PerNode = append(u.PerNode, req/a)
		}
		wr.Utilisation = append(wr.Utilisation, u)
		if u.Allocatable > 0 {
			wr.DataItems = append(wr.DataItems, DataItem{Unit: "%", Labels: map[string]string{"Name": dataItemName(e.p.name), "Metric": "kubesim_utilisation", "resource": u.Resource},
				Data: map[string]float64{"Requested": u.Requested, "Allocatable": u.Allocatable, "Ratio": 100 * u.Requested / u.Allocatable}})
		}
	}
	if counters, err := testutil.GetCounterValuesFromGatherer(legacyregistry.DefaultGatherer, "scheduler_schedule_attempts_total", map[string]string{}, "result"); err == nil {
		wr.Attempts = counters
	}
	if v, err := testutil.GetCounterMetricValue(schedmetrics.PreemptionAttempts); err == nil {
		wr.Preemptions = v
	}
	if vec, err := testutil.GetHistogramVecFromGatherer(legacyregistry.DefaultGatherer, "scheduler_preemption_victims", nil); err == nil {
		wr.PreemptionVictims = vec.GetAggregatedSampleSum()
	}
	wr.Explanations = e.explanations(pods)
	wr.APILatency = apiLatency()
	for _, a := range wr.APILatency {
		wr.DataItems = append(wr.DataItems, DataItem{Unit: "ms", Labels: map[string]string{"Name": dataItemName(e.p.name), "Metric": "apiserver_request_duration_seconds", "verb": a.Verb},
			Data: map[string]float64{"Perc50": float64(a.P50.Microseconds()) / 1000, "Perc99": float64(a.P99.Microseconds()) / 1000, "Count": float64(a.Count)}})
	}
}

// podRequests are a pod's effective requests: the larger of its
// containers' sum and its largest init container, plus overhead.
func podRequests(p *corev1.Pod) corev1.ResourceList {
	sum := corev1.ResourceList{}
	for _, c := range p.Spec.Containers {
		for n, q := range c.Resources.Requests {
			cur := sum[n]
			cur.Add(q)
			sum[n] = cur
		}
	}
	for _, c := range p.Spec.InitContainers {
		for n, q := range c.Resources.Requests {
			if cur, ok := sum[n]; !ok || q.Cmp(cur) > 0 {
				sum[n] = q.DeepCopy()
			}
		}
	}
	for n, q := range p.Spec.Overhead {
		cur := sum[n]
		cur.Add(q)
		sum[n] = cur
	}
	return sum
}

// apiLatency reads the API server's request latency histogram by verb;
// long-running requests (WATCH, CONNECT) are not in it.
func apiLatency() []APILatency {
	var out []APILatency
	for _, verb := range []string{"POST", "PUT", "PATCH", "DELETE", "GET", "LIST"} {
		vec, err := testutil.GetHistogramVecFromGatherer(legacyregistry.DefaultGatherer, "apiserver_request_duration_seconds", map[string]string{"verb": verb})
		if err != nil || vec.GetAggregatedSampleCount() == 0 {
			continue
		}
		slo := time.Second
		if verb == "LIST" {
			slo = 30 * time.Second
		}
		p99 := time.Duration(vec.Quantile(0.99) * float64(time.Second))
		out = append(out, APILatency{Verb: verb, Count: vec.GetAggregatedSampleCount(), P50: time.Duration(vec.Quantile(0.5) * float64(time.Second)), P99: p99, SLO: slo, Met: p99 <= slo})
	}
	return out
}

// explanations samples the scheduler's records: the first two pods (by
// name) of each namespace and up to 10 unschedulable pods.
func (e *executor) explanations(pods []any) []*sim.Explanation {
	byNS := map[string][]*corev1.Pod{}
	var unsched []*corev1.Pod
	for _, obj := range pods {
		p := obj.(*corev1.Pod)
		if p.Spec.NodeName == "" {
			unsched = append(unsched, p)
			continue
		}
		byNS[p.Namespace] = append(byNS[p.Namespace], p)
	}
	var sample []*corev1.Pod
	nss := make([]string, 0, len(byNS))
	for ns := range byNS {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		ps := byNS[ns]
		sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
		sample = append(sample, ps[:min(2, len(ps))]...)
	}
	sort.Slice(unsched, func(i, j int) bool {
		return unsched[i].Namespace+"/"+unsched[i].Name < unsched[j].Namespace+"/"+unsched[j].Name
	})
	sample = append(sample, unsched[:min(10, len(unsched))]...)
	var out []*sim.Explanation
	for _, p := range sample {
		if ex, ok := e.cluster.Explain(p.Namespace, p.Name); ok {
			out = append(out, ex)
		}
	}
	return out
}
