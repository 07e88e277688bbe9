package experiment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/featuregate"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/kubeletsim"
	"github.com/kubesim/kubesim/sim"
)

// Options configures Run.
type Options struct {
	// File is the workload file (scheduler_perf's performance-config.yaml
	// format).
	File string
	// Filter selects workloads by TestCase/Workload, as go test -bench
	// selects scheduler_perf's sub-benchmarks: each slash-separated part
	// is a regular expression matched against its part of the name.
	// Default: every workload.
	Filter string
	// Labels selects workloads by their and their test case's labels,
	// as scheduler_perf's -perf-scheduling-label-filter: comma-separated,
	// "foo" must be there, "-foo" must not. Default: none required.
	Labels string
	// Topic picks per-topic thresholds. Default: the name of the file's
	// directory (misc, affinity, ...), scheduler_perf's topic names.
	Topic string
	// OutDir receives results.json, summary.md and the plots. Default:
	// none are written.
	OutDir string
	// Progress receives progress: a live bar when Terminal, otherwise a
	// line every ProgressInterval. Default: none.
	Progress io.Writer
	// Terminal draws the progress as a bar that rewrites itself.
	Terminal bool
	// ProgressInterval is how often plain progress lines are written.
	// Default: 5s.
	ProgressInterval time.Duration
	// WorkloadTimeout bounds each workload. Default: 30m, scheduler_perf's
	// per-test timeout.
	WorkloadTimeout time.Duration
	// SchedulerConfigFile, when set, replaces each test case's
	// schedulerConfigPath (to compare configurations).
	SchedulerConfigFile string
	// Cluster, when set, adjusts each workload's cluster configuration
	// before it starts.
	Cluster func(*sim.Config)
	// KubeletHeartbeats keeps kubelet's node heartbeat cadence: 40 s
	// leases renewed every 10 s, which kube-controller-manager expects
	// within 50 s. By default an experiment's simulated nodes renew their
	// leases every 2.5 minutes (10 min leases, a 12.5 min grace period):
	// 5,000 nodes renewing every 10 s are 500 API writes a second, a
	// quarter of this 2-CPU machine taken from the scheduler, every minute
	// still a tenth of the API server's work in a 50,000-pod run, and
	// scheduler_perf's nodes send none. A node that dies is then noticed
	// after 12.5 minutes instead of 50 s.
	KubeletHeartbeats bool
	// GCPercent is the Go garbage collector's target (GOGC) while the
	// experiment runs: the API server, scheduler, controllers and nodes
	// of a 5,000-node cluster allocate fast, and at Go's default of 100
	// collecting took a third of the CPU. Memory grows instead (about 2.5
	// times the live heap more); a soft limit of three quarters of the
	// machine's memory makes the collector work harder before that runs
	// out. 0: 400, unless the GOGC environment variable is set; -1 leaves
	// the process's setting alone.
	GCPercent int
}

func (o *Options) complete() error {
	if o.File == "" {
		return errors.New("no workload file given")
	}
	if o.Topic == "" {
		abs, err := filepath.Abs(o.File)
		if err != nil {
			return err
		}
		o.Topic = filepath.Base(filepath.Dir(abs))
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = 5 * time.Second
	}
	if o.WorkloadTimeout == 0 {
		o.WorkloadTimeout = 30 * time.Minute
	}
	return nil
}

// Result is what a run measured.
type Result struct {
	// Topic is the threshold topic the run used.
	Topic string
	// Workloads are the workloads run, in the file's order.
	Workloads []*WorkloadResult
}

// DataItems are every workload's data items, as scheduler_perf writes
// them for perf-dash.
func (r *Result) DataItems() DataItems {
	items := DataItems{Version: "v1"}
	for _, w := range r.Workloads {
		items.DataItems = append(items.DataItems, w.DataItems...)
	}
	return items
}

// Failed lists the workloads that failed, with why: an error, or a
// threshold missed.
func (r *Result) Failed() []string {
	var out []string
	for _, w := range r.Workloads {
		if w.Err != nil {
			out = append(out, fmt.Sprintf("%s: %v", w.Name, w.Err))
		}
		for _, f := range w.ThresholdFailures {
			out = append(out, fmt.Sprintf("%s: %s", w.Name, f))
		}
	}
	return out
}

// plan is a workload ready to run: its ops with the parameters filled in
// and createPodSets unrolled, every template checked.
type plan struct {
	tc           *TestCase
	w            *Workload
	name         string
	ops          []Op
	opIndex      []int // each op's index in the template, for names and messages
	featureGates map[string]bool
	schedConfig  string
	pods         int // pods the createPods ops create (steady-state ones: their backlog)
}

// Run runs the selected workloads of a workload file, one fresh cluster
// each, and writes the results into Options.OutDir. A file, filter or
// workload that is wrong fails before any workload starts. A workload
// that fails (an error, not a missed threshold) is recorded and the
// others still run; Result.Failed lists both kinds.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.complete(); err != nil {
		return nil, err
	}
	f, err := Load(o.File)
	if err != nil {
		return nil, err
	}
	plans, err := prepare(f, o)
	if err != nil {
		return nil, err
	}
	if len(plans) == 0 {
		return nil, fmt.Errorf("%s: no workload matches filter %q and labels %q", o.File, o.Filter, o.Labels)
	}
	res := &Result{Topic: o.Topic}
	defer setGC(o.GCPercent)()
	tmpls := newTemplates(filepath.Dir(f.Path))
	for _, p := range plans {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		wr := runWorkload(ctx, o, p, tmpls)
		res.Workloads = append(res.Workloads, wr)
		if o.OutDir != "" {
			// Written after each workload: a long run that is stopped
			// keeps what it measured.
			if err := writeOutputs(o.OutDir, res); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// prepare selects the workloads and checks everything about them that can
// be checked before a cluster starts.
func prepare(f *File, o Options) ([]*plan, error) {
	filter, err := compileFilter(o.Filter)
	if err != nil {
		return nil, err
	}
	labelFilter := strings.Split(o.Labels, ",")
	tmpls := newTemplates(filepath.Dir(f.Path))
	known := utilfeature.DefaultMutableFeatureGate.GetAll()
	var plans []*plan
	for _, tc := range f.TestCases {
		for _, w := range tc.Workloads {
			if !selected(filter, tc.Name, w.Name) || !hasLabels(labelFilter, append(append([]string(nil), tc.Labels...), w.Labels...)) {
				continue
			}
			p := &plan{tc: tc, w: w, name: tc.Name + "/" + w.Name, featureGates: map[string]bool{}}
			fail := func(line int, where string, err error) error {
				return &FileError{File: f.Path, Line: line, Where: p.name + where, Err: err}
			}
			for k, v := range tc.FeatureGates {
				p.featureGates[k] = v
			}
			for k, v := range w.FeatureGates {
				p.featureGates[k] = v
			}
			for k := range p.featureGates {
				if _, ok := known[featuregate.Feature(k)]; !ok {
					return nil, fail(w.line, "", fmt.Errorf("unknown feature gate %q", k))
				}
			}
			p.schedConfig = tc.SchedulerConfigPath
			if o.SchedulerConfigFile != "" {
				p.schedConfig = o.SchedulerConfigFile
			} else if p.schedConfig != "" && !filepath.IsAbs(p.schedConfig) {
				p.schedConfig = filepath.Join(filepath.Dir(f.Path), p.schedConfig)
			}
			if p.schedConfig != "" {
				if _, err := scheduleroptions.LoadConfigFromFile(klog.Background(), p.schedConfig); err != nil {
					return nil, fail(tc.line, "", fmt.Errorf("schedulerConfigPath: %w", err))
				}
			}
			prm := newParams(w)
			for i, op := range tc.WorkloadTemplate {
				where := fmt.Sprintf(": op %d (%s)", i, op.Opcode())
				patched, err := op.patch(prm)
				if err != nil {
					return nil, fail(tc.opLines[i], where, err)
				}
				ops := []Op{patched}
				if ps, ok := patched.(*createPodSetsOp); ok {
					ops = nil
					for j := 0; j < ps.Count; j++ {
						c := ps.CreatePodsOp
						ns := fmt.Sprintf("%s-%d", ps.NamespacePrefix, j)
						c.Namespace = &ns
						pc, err := c.patch(prm)
						if err != nil {
							return nil, fail(tc.opLines[i], where, err)
						}
						ops = append(ops, pc)
					}
				}
				for _, op := range ops {
					if err := checkTemplates(tmpls, tc, op); err != nil {
						return nil, fail(tc.opLines[i], where, err)
					}
					if cp, ok := op.(*createPodsOp); ok {
						p.pods += cp.Count
					}
					p.ops = append(p.ops, op)
					p.opIndex = append(p.opIndex, i)
				}
			}
			if unused := prm.unused(); len(unused) > 0 {
				return nil, fail(w.line, "", fmt.Errorf("the parameters %v are defined on workload %s, but unused; please make sure there are no typos", unused, w.Name))
			}
			plans = append(plans, p)
		}
	}
	return plans, nil
}

// checkTemplates renders an op's templates once, so that a missing file,
// a template error or an object that does not decode fails before the run.
func checkTemplates(t *templates, tc *TestCase, op Op) error {
	check := func(path *string, params map[string]any, count int, out any) error {
		if path == nil {
			return nil
		}
		ot, err := t.get(*path)
		if err != nil {
			return err
		}
		return ot.render(params, 0, max(count, 1), out)
	}
	switch o := op.(type) {
	case *createNodesOp:
		return check(o.NodeTemplatePath, o.TemplateParams, o.Count, &corev1.Node{})
	case *createNamespacesOp:
		return check(o.NamespaceTemplatePath, nil, o.Count, &corev1.Namespace{})
	case *createPodsOp:
		path := o.PodTemplatePath
		if path == nil {
			path = tc.DefaultPodTemplatePath
		}
		if err := check(path, o.TemplateParams, o.Count, &corev1.Pod{}); err != nil {
			return err
		}
		if err := check(o.PersistentVolumeTemplatePath, nil, 1, &corev1.PersistentVolume{}); err != nil {
			return err
		}
		return check(o.PersistentVolumeClaimTemplatePath, nil, 1, &corev1.PersistentVolumeClaim{})
	case *createAnyOp:
		n := 1
		if o.Count != nil {
			n = *o.Count
		}
		return check(&o.TemplatePath, o.TemplateParams, n, &unstructured.Unstructured{})
	case *updateAnyOp:
		n := 1
		if o.Count != nil {
			n = *o.Count
		}
		return check(&o.TemplatePath, o.TemplateParams, n, &unstructured.Unstructured{})
	case *churnOp:
		for i := range o.TemplatePaths {
			if err := check(&o.TemplatePaths[i], nil, 1, &unstructured.Unstructured{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// runWorkload runs one workload on a cluster of its own.
func runWorkload(ctx context.Context, o Options, p *plan, tmpls *templates) *WorkloadResult {
	wr := &WorkloadResult{Name: p.name, TestCase: p.tc.Name, Workload: p.w.Name, Params: p.w.Params,
		Threshold: p.w.Threshold.Get(o.Topic), ThresholdMetric: *p.w.ThresholdMetricSelector}
	start := time.Now()
	defer func() { wr.Duration = time.Since(start) }()
	logger := klog.FromContext(ctx).WithValues("workload", p.name)
	logger.Info("Starting workload")

	restore, err := setFeatureGates(p.featureGates)
	if err != nil {
		wr.Err = err
		return wr
	}
	defer restore()

	ctx, cancel := context.WithTimeoutCause(ctx, o.WorkloadTimeout, fmt.Errorf("timed out after the %s per-workload timeout", o.WorkloadTimeout))
	defer cancel()

	cfg := sim.Config{
		APIServer: apiserver.Config{
			// As scheduler_perf's kube-apiserver: its pod templates set
			// spec.priority, which the Priority plugin refuses.
			DisableAdmissionPlugins: []string{"ServiceAccount", "TaintNodesByCondition", "Priority"},
			// As scheduler_perf's kube-apiserver too, whose test server
			// leaves --authorization-mode at AlwaysAllow: no graph of
			// every pod for the Node authorizer and no RBAC evaluation
			// per request (the components still authenticate as
			// themselves).
			AuthorizationModes: []string{apiserver.AuthorizationModeAlwaysAllow},
		},
		// As scheduler_perf's cluster: no default StorageClass (the
		// DefaultStorageClass admission plugin would give it to its
		// claims), no load balancers, no metrics scraping.
		DisableAddons:       true,
		SchedulerConfigFile: p.schedConfig,
		// scheduler_perf's client limits.
		QPS:   5000,
		Burst: 5000,
		// The nodes' events (Pulled, Created, Started) are not measured;
		// the scheduler's (Scheduled, FailedScheduling) still are.
		DisableNodeEvents: true,
		NodeProfiles:      p.tc.NodeProfiles,
		TimeScale:         p.tc.TimeScale,
	}
	if !o.KubeletHeartbeats {
		cfg.NodeLeaseDuration = 10 * time.Minute
		cfg.NodeMonitorGracePeriod = 12*time.Minute + 30*time.Second
	}
	// The nodes of a first createNodes op register before the scheduler
	// and the controllers start, as after a control-plane restart: much
	// faster for thousands of nodes than adding them to a running cluster.
	first := 0
	if len(p.ops) > 0 {
		if cp, ok := p.ops[0].(*createNodePoolOp); ok {
			cfg.Nodes = []kubeletsim.NodePool{cp.Pool}
			first = 1
		} else if cn, ok := p.ops[0].(*createNodesOp); ok {
			pools, err := nodePools(tmpls, cn, 0, 0, map[string]bool{})
			if err != nil {
				wr.Err = err
				return wr
			}
			cfg.Nodes = pools
			first = 1
		}
	}
	if o.Cluster != nil {
		o.Cluster(&cfg)
	}
	// Each workload's metrics start from zero, as scheduler_perf resets
	// them after each.
	legacyregistry.Reset()
	runtime.GC()
	cluster, err := sim.Start(ctx, cfg)
	if err != nil {
		wr.Err = fmt.Errorf("starting the cluster: %w", err)
		return wr
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			logger.Error(err, "Stopping the cluster")
		}
	}()
	e, err := newExecutor(ctx, o, p, tmpls, cluster, wr)
	if err != nil {
		wr.Err = err
		return wr
	}
	defer e.stop()
	for _, pool := range cfg.Nodes {
		e.prefixes[pool.NamePrefix] = true
	}
	if first == 1 {
		n := 0
		for _, pool := range cfg.Nodes {
			n += pool.Count
		}
		e.nextNode = n
		cn, _ := p.ops[0].(*createNodesOp)
		if cn == nil {
			cn = &createNodesOp{}
		}
		if err := e.afterNodes(ctx, cn, cluster.Nodes.NodeNames()); err != nil {
			wr.Err = fmt.Errorf("op 0 (%s): %w", p.ops[0].Opcode(), err)
			return wr
		}
	}
	for i := first; i < len(p.ops); i++ {
		if err := ctx.Err(); err != nil {
			wr.Err = fmt.Errorf("op %d (%s): %w", p.opIndex[i], p.ops[i].Opcode(), context.Cause(ctx))
			break
		}
		if err := e.runOp(ctx, i, p.ops[i]); err != nil {
			wr.Err = fmt.Errorf("op %d (%s): %w", p.opIndex[i], p.ops[i].Opcode(), err)
			break
		}
	}
	e.finish(ctx)
	logger.Info("Workload done", "duration", time.Since(start).Round(time.Millisecond), "err", wr.Err)
	return wr
}

// setGC applies Options.GCPercent and returns what restores the
// process's settings.
func setGC(percent int) func() {
	if percent < 0 || (percent == 0 && os.Getenv("GOGC") != "") {
		return func() {}
	}
	if percent == 0 {
		percent = 400
	}
	old := debug.SetGCPercent(percent)
	oldLimit := debug.SetMemoryLimit(-1)
	if total := memTotal(); total > 0 && oldLimit == math.MaxInt64 {
		debug.SetMemoryLimit(total / 4 * 3)
	}
	return func() {
		debug.SetGCPercent(old)
		debug.SetMemoryLimit(oldLimit)
	}
}

// memTotal is the machine's memory in bytes, 0 when unknown.
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return kb * 1024
		}
	}
	return 0
}

// setFeatureGates sets the workload's feature gates in the process (the
// scheduler and the controllers run in it) and returns what restores them.
func setFeatureGates(gates map[string]bool) (func(), error) {
	if len(gates) == 0 {
		return func() {}, nil
	}
	old := map[string]bool{}
	for k := range gates {
		old[k] = utilfeature.DefaultFeatureGate.Enabled(featuregate.Feature(k))
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(gates); err != nil {
		return nil, fmt.Errorf("feature gates: %w", err)
	}
	return func() {
		if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(old); err != nil {
			klog.Background().Error(err, "Restoring feature gates")
		}
	}, nil
}

// nodePools turns a createNodes op into simulated node pools: the node
// template (scheduler_perf's default node without one) rendered for each
// node, the op's strategy applied, identical nodes in one pool. Each pool
// gets a name prefix of its own (kubeletsim's pools may not share one),
// recorded in used: scheduler_perf's node names are random, what tells
// nodes apart is their labels, capacity and taints.
func nodePools(t *templates, op *createNodesOp, opIndex, firstIndex int, used map[string]bool) ([]kubeletsim.NodePool, error) {
	base := defaultNode()
	var ot *objectTemplate
	static := true
	if op.NodeTemplatePath != nil {
		var err error
		if ot, err = t.get(*op.NodeTemplatePath); err != nil {
			return nil, err
		}
		static = ot.static(op.TemplateParams, op.Count)
		base = &corev1.Node{}
		if err := ot.render(op.TemplateParams, 0, op.Count, base); err != nil {
			return nil, err
		}
	}
	var pools []kubeletsim.NodePool
	for i := 0; i < op.Count; i++ {
		node := base
		if !static {
			node = &corev1.Node{}
			if err := ot.render(op.TemplateParams, i, op.Count, node); err != nil {
				return nil, err
			}
		}
		pool := poolOf(node, opIndex)
		switch {
		case op.LabelNodePrepareStrategy != nil:
			s := op.LabelNodePrepareStrategy
			pool.Labels[s.LabelKey] = s.LabelValues[(firstIndex+i)%len(s.LabelValues)]
		case op.UniqueNodeLabelStrategy != nil:
			pool.Labels[op.UniqueNodeLabelStrategy.LabelKey] = fmt.Sprintf("%s%d", pool.NamePrefix, firstIndex+i)
		case op.NodeAllocatableStrategy != nil:
			for name, v := range op.NodeAllocatableStrategy.NodeAllocatable {
				q, err := resource.ParseQuantity(v)
				if err != nil {
					return nil, fmt.Errorf("nodeAllocatableStrategy: %s: %w", name, err)
				}
				pool.Allocatable[corev1.ResourceName(name)] = q
			}
		}
		merged := false
		for j := range pools {
			if samePool(&pools[j], &pool) {
				pools[j].Count++
				merged = true
				break
			}
		}
		if !merged {
			pools = append(pools, pool)
		}
	}
	// Own prefixes: the first pool keeps the template's when it is free.
	for j := range pools {
		prefix := pools[j].NamePrefix
		for k := 0; used[prefix]; k++ {
			prefix = fmt.Sprintf("%s%d-", pools[j].NamePrefix, k)
		}
		used[prefix] = true
		pools[j].NamePrefix = prefix
		pools[j].Name = strings.TrimSuffix(prefix, "-")
	}
	return pools, nil
}

// defaultNode is scheduler_perf's node without a template (makeBaseNode).
func defaultNode() *corev1.Node {
	rl := corev1.ResourceList{
		corev1.ResourcePods:   resource.MustParse("110"),
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
	}
	return &corev1.Node{Status: corev1.NodeStatus{Capacity: rl, Allocatable: rl.DeepCopy()}}
}

// poolOf is a pool of one node like node: its capacity, allocatable
// (the capacity if unset, as the API server defaults it), labels,
// annotations and taints. The name follows generateName, as
// scheduler_perf's nodes, with an index instead of random letters.
func poolOf(node *corev1.Node, opIndex int) kubeletsim.NodePool {
	prefix := node.GenerateName
	if prefix == "" {
		prefix = fmt.Sprintf("node-%d-", opIndex)
	}
	if node.Name != "" {
		prefix = node.Name + "-"
	}
	pool := kubeletsim.NodePool{
		Name:        strings.TrimSuffix(prefix, "-"),
		Count:       1,
		NamePrefix:  prefix,
		Capacity:    node.Status.Capacity.DeepCopy(),
		Allocatable: node.Status.Allocatable.DeepCopy(),
		Labels:      map[string]string{},
		Annotations: node.Annotations,
		Taints:      node.Spec.Taints,
	}
	if pool.Capacity == nil {
		pool.Capacity = corev1.ResourceList{}
	}
	if len(pool.Allocatable) == 0 {
		pool.Allocatable = pool.Capacity.DeepCopy()
	}
	for k, v := range node.Labels {
		pool.Labels[k] = v
	}
	return pool
}

func samePool(a, b *kubeletsim.NodePool) bool {
	if a.NamePrefix != b.NamePrefix || len(a.Labels) != len(b.Labels) || len(a.Taints) != len(b.Taints) ||
		len(a.Annotations) != len(b.Annotations) || !equalResources(a.Capacity, b.Capacity) || !equalResources(a.Allocatable, b.Allocatable) {
		return false
	}
	for k, v := range a.Labels {
		if b.Labels[k] != v {
			return false
		}
	}
	for k, v := range a.Annotations {
		if b.Annotations[k] != v {
			return false
		}
	}
	for i := range a.Taints {
		if !a.Taints[i].MatchTaint(&b.Taints[i]) || a.Taints[i].Value != b.Taints[i].Value {
			return false
		}
	}
	return true
}

func equalResources(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

// csiNodes creates the CSINode objects of a nodeAllocatableStrategy's
// CSI drivers, as scheduler_perf's strategy does.
func csiNodes(op *createNodesOp, names []string) []*storagev1.CSINode {
	s := op.NodeAllocatableStrategy
	if s == nil || (len(s.CsiNodeAllocatable) == 0 && len(s.MigratedPlugins) == 0) {
		return nil
	}
	drivers := make([]string, 0, len(s.CsiNodeAllocatable))
	for d := range s.CsiNodeAllocatable {
		drivers = append(drivers, d)
	}
	sort.Strings(drivers)
	var out []*storagev1.CSINode
	for _, name := range names {
		n := &storagev1.CSINode{}
		n.Name = name
		n.Annotations = map[string]string{corev1.MigratedPluginsAnnotationKey: strings.Join(s.MigratedPlugins, ",")}
		for _, d := range drivers {
			var alloc *storagev1.VolumeNodeResources
			if r := s.CsiNodeAllocatable[d]; r != nil {
				alloc = &storagev1.VolumeNodeResources{Count: r.Count}
			}
			n.Spec.Drivers = append(n.Spec.Drivers, storagev1.CSINodeDriver{Name: d, NodeID: name, Allocatable: alloc})
		}
		out = append(out, n)
	}
	return out
}

// writeOutputs writes results.json, summary.md and the plots.
func writeOutputs(dir string, res *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeResultsJSON(filepath.Join(dir, "results.json"), res); err != nil {
		return err
	}
	if err := writePlots(dir, res); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "summary.md"), []byte(summary(res)), 0o644)
}
