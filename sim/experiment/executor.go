package experiment

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/sim"
)

// executor runs a workload's ops against its cluster, as scheduler_perf's
// WorkloadExecutor runs them against its integration API server.
type executor struct {
	o       Options
	p       *plan
	tmpls   *templates
	cluster *sim.Cluster
	wr      *WorkloadResult
	logger  klog.Logger

	client  kubernetes.Interface
	dynamic dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper

	factory   informers.SharedInformerFactory
	pods      cache.SharedIndexInformer
	podLister corelisters.PodLister
	nodes     cache.SharedIndexInformer

	// podsPerNamespace counts the pods barriers wait for, as
	// scheduler_perf's numPodsScheduledPerNamespace.
	podsPerNamespace map[string]int
	nextNode         int
	// prefixes are the node name prefixes of the pools so far: each pool
	// needs its own.
	prefixes map[string]bool

	tracker     *podTracker
	sampleStart time.Time
	collector   *collection
	profile     *os.File
	// cpuProf measures the components' CPU while pods are measured.
	cpuProf *cpuProfile

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
	bgMu     sync.Mutex
	bgErrs   []error
}

func newExecutor(ctx context.Context, o Options, p *plan, tmpls *templates, cluster *sim.Cluster, wr *WorkloadResult) (*executor, error) {
	// The experiment is a client in kubesim's process: it calls the API
	// server's handler directly, as the scheduler and controllers do,
	// with the cluster admin's identity.
	cfg, err := cluster.API.InProcessRESTConfig("kubesim-experiment", "system:masters")
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 5000, 5000
	cfg.UserAgent = "kubesim-experiment"
	// Typed requests and watches in protobuf, as the control plane's own
	// clients: in JSON, decoding the experiment's pod creations and
	// encoding every pod change for its informer cost the API server more
	// than the rest of its watches. (The dynamic client of createAny
	// speaks JSON.)
	typed := rest.CopyConfig(cfg)
	typed.ContentType = "application/vnd.kubernetes.protobuf"
	typed.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	client, err := kubernetes.NewForConfig(typed)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	e := &executor{
		o: o, p: p, tmpls: tmpls, cluster: cluster, wr: wr,
		logger:           klog.FromContext(ctx).WithValues("workload", p.name),
		client:           client,
		dynamic:          dyn,
		mapper:           restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery())),
		podsPerNamespace: map[string]int{},
		tracker:          newPodTracker(),
		prefixes:         map[string]bool{},
	}
	e.bgCtx, e.bgCancel = context.WithCancel(ctx)
	e.factory = informers.NewSharedInformerFactory(client, 0)
	e.pods = e.factory.Core().V1().Pods().Informer()
	e.podLister = e.factory.Core().V1().Pods().Lister()
	e.nodes = e.factory.Core().V1().Nodes().Informer()
	if _, err := e.pods.AddEventHandler(e.tracker.handler()); err != nil {
		return nil, err
	}
	e.factory.Start(e.bgCtx.Done())
	for typ, ok := range e.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, fmt.Errorf("the %v informer did not sync", typ)
		}
	}
	e.startSampling()
	return e, nil
}

// stop stops what the executor started.
func (e *executor) stop() {
	e.bgCancel()
	e.bg.Wait()
	e.factory.Shutdown()
	if e.cpuProf != nil {
		e.cpuProf.abandon() // the workload failed while measuring
		e.cpuProf = nil
	}
	if e.profile != nil {
		pprof.StopCPUProfile()
		e.profile.Close()
	}
}

func (e *executor) goBackground(fn func(ctx context.Context) error) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		if err := fn(e.bgCtx); err != nil && e.bgCtx.Err() == nil {
			e.bgMu.Lock()
			e.bgErrs = append(e.bgErrs, err)
			e.bgMu.Unlock()
		}
	}()
}

func (e *executor) runOp(ctx context.Context, i int, op Op) error {
	// Names (namespace-N, node-N-) use the index in the unrolled ops, as
	// scheduler_perf's do.
	opIndex := i
	switch o := op.(type) {
	case *createNodesOp:
		return e.createNodes(ctx, opIndex, o)
	case *createNamespacesOp:
		return e.createNamespaces(ctx, o)
	case *createPodsOp:
		return e.createPods(ctx, opIndex, o)
	case *deletePodsOp:
		return e.deletePods(ctx, o)
	case *churnOp:
		return e.churn(ctx, opIndex, o)
	case *barrierOp:
		return e.barrier(ctx, o)
	case *sleepOp:
		select {
		case <-ctx.Done():
		case <-time.After(o.Duration.Duration):
		}
		return nil
	case *createAnyOp:
		return e.createAny(ctx, o)
	case *createNodePoolOp:
		names, err := e.cluster.Nodes.AddNodes(ctx, o.Pool)
		if err != nil {
			return err
		}
		e.nextNode += o.Pool.Count
		return e.afterNodes(ctx, &createNodesOp{}, names)
	case *waitForPodsOp:
		return e.waitForPods(ctx, o)
	case *updateAnyOp:
		return e.updateAny(ctx, o)
	case *startCollectingMetricsOp:
		if e.collector != nil {
			return errors.New("metrics collection is overlapping. Probably second collector was started before stopping a previous one")
		}
		e.collector = e.startCollecting(o.Name, o.Namespaces, o.LabelSelector)
		return nil
	case *stopCollectingMetricsOp:
		if e.collector == nil {
			return errors.New("missing startCollectingMetrics operation before stopping")
		}
		e.stopCollecting()
		return nil
	case *startCollectingProfileOp:
		if e.profile != nil {
			return errors.New("cpu profile collection is already ongoing")
		}
		if e.cpuProf != nil {
			// The workload's profile takes the place of the one that
			// measures the components' CPU.
			e.cpuProf.abandon()
			e.cpuProf = nil
			e.wr.CPUNote = "not measured: the workload wrote a CPU profile (startCollectingProfile)"
		}
		path := o.FilePath
		if e.o.OutDir != "" && !strings.HasPrefix(path, "/") {
			path = e.o.OutDir + "/" + path
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		e.profile = f
		return nil
	case *stopCollectingProfileOp:
		if e.profile == nil {
			return errors.New("missing startCollectingProfile operation before stopping")
		}
		pprof.StopCPUProfile()
		err := e.profile.Close()
		e.profile = nil
		return err
	}
	return fmt.Errorf("op %s is not supported", op.Opcode())
}

// createNodes adds the op's nodes as simulated kubelets and waits for
// their Nodes.
func (e *executor) createNodes(ctx context.Context, opIndex int, op *createNodesOp) error {
	pools, err := nodePools(e.tmpls, op, opIndex, e.nextNode, e.prefixes)
	if err != nil {
		return err
	}
	var names []string
	for _, pool := range pools {
		n, err := e.cluster.Nodes.AddNodes(ctx, pool)
		if err != nil {
			return err
		}
		names = append(names, n...)
	}
	e.nextNode += op.Count
	return e.afterNodes(ctx, op, names)
}

// afterNodes waits until the nodes are Ready, without the node lifecycle
// controller's taints, in the executor's cache (so, about when the
// scheduler's sees them), as scheduler_perf's nodes are from their
// creation, and creates their CSINodes.
func (e *executor) afterNodes(ctx context.Context, op *createNodesOp, names []string) error {
	for _, n := range csiNodes(op, names) {
		if _, err := e.client.StorageV1().CSINodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		for _, name := range names {
			obj, ok, _ := e.nodes.GetStore().GetByKey(name)
			if !ok || !nodeSchedulable(obj.(*corev1.Node)) {
				return false, nil
			}
		}
		return true, nil
	})
}

// nodeSchedulable: Ready, and none of the taints the node lifecycle
// controller puts on nodes that are not (node.kubernetes.io/not-ready,
// unreachable, ...).
func nodeSchedulable(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if strings.HasPrefix(t.Key, "node.kubernetes.io/") {
			return false
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (e *executor) createNamespace(ctx context.Context, ns *corev1.Namespace) error {
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 6}, func(ctx context.Context) (bool, error) {
		_, err := e.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return true, nil
		}
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return false, err
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}
	return nil
}

// ensureNamespace creates a namespace the first time a pod op names it.
func (e *executor) ensureNamespace(ctx context.Context, name string) error {
	if _, ok := e.podsPerNamespace[name]; ok {
		return nil
	}
	if err := e.createNamespace(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		return err
	}
	e.podsPerNamespace[name] = 0
	return nil
}

func (e *executor) createNamespaces(ctx context.Context, op *createNamespacesOp) error {
	base := &corev1.Namespace{}
	if op.NamespaceTemplatePath != nil {
		ot, err := e.tmpls.get(*op.NamespaceTemplatePath)
		if err != nil {
			return err
		}
		if err := ot.render(nil, 0, op.Count, base); err != nil {
			return err
		}
	}
	for i := 0; i < op.Count; i++ {
		ns := base.DeepCopy()
		ns.Name = fmt.Sprintf("%s-%d", op.Prefix, i)
		if err := e.createNamespace(ctx, ns); err != nil {
			return err
		}
		if _, ok := e.podsPerNamespace[ns.Name]; !ok {
			e.podsPerNamespace[ns.Name] = 0
		}
	}
	return nil
}

// podSource makes the pods of a createPods op.
type podSource struct {
	ot        *objectTemplate
	params    map[string]any
	batchSize int
	count     int
	static    *corev1.Pod
}

func (e *executor) podSource(op *createPodsOp) (*podSource, error) {
	path := op.PodTemplatePath
	if path == nil {
		path = e.p.tc.DefaultPodTemplatePath
	}
	s := &podSource{params: op.TemplateParams, batchSize: max(op.SignatureBatchSize, 1), count: op.Count}
	if path == nil {
		s.static = defaultPod()
		return s, nil
	}
	ot, err := e.tmpls.get(*path)
	if err != nil {
		return nil, err
	}
	s.ot = ot
	if ot.static(op.TemplateParams, op.Count) {
		s.static = &corev1.Pod{}
		if err := ot.render(op.TemplateParams, 0, op.Count, s.static); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *podSource) pod(i int) (*corev1.Pod, error) {
	var pod *corev1.Pod
	if s.static != nil {
		pod = s.static.DeepCopy()
	} else {
		pod = &corev1.Pod{}
		if err := s.ot.render(s.params, i, s.count, pod); err != nil {
			return nil, err
		}
	}
	if s.ot != nil {
		// scheduler_perf's podTemplateWithParams labels each pod.
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels["signature"] = fmt.Sprintf("signature-label-%d", i/s.batchSize)
	}
	return pod, nil
}

// defaultPod is scheduler_perf's pod without a template (makeBasePod).
func defaultPod() *corev1.Pod {
	rl := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("500Mi")}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "pod-"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:      "pause",
			Image:     "registry.k8s.io/pause:3.10.2",
			Ports:     []corev1.ContainerPort{{ContainerPort: 80}},
			Resources: corev1.ResourceRequirements{Limits: rl, Requests: rl.DeepCopy()},
		}}},
	}
}

// createPodsN creates count pods of a source in a namespace with 30
// workers, as scheduler_perf's CreatePod; first is the first pod's index.
func (e *executor) createPodsN(ctx context.Context, ns string, src *podSource, first, count int) error {
	var mu sync.Mutex
	var errs []error
	workers := min(30, max(count, 1))
	workqueue.ParallelizeUntil(ctx, workers, count, func(i int) {
		pod, err := src.pod(first + i)
		if err == nil {
			err = e.createPod(ctx, ns, pod)
		}
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("creating pods: %w (%d errors)", errs[0], len(errs))
	}
	return ctx.Err()
}

// createPod creates a pod, retrying what may pass (as
// testutils.CreatePodWithRetries), and records when it was created.
func (e *executor) createPod(ctx context.Context, ns string, pod *corev1.Pod) error {
	var created *corev1.Pod
	var start time.Time
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 6}, func(ctx context.Context) (bool, error) {
		start = time.Now()
		var err error
		created, err = e.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsAlreadyExists(err) && pod.Name != "":
			return true, nil
		case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) || apierrors.IsNotFound(err):
			return false, err
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if created != nil {
		e.tracker.created(created, start)
	}
	return nil
}

func (e *executor) createPods(ctx context.Context, opIndex int, op *createPodsOp) error {
	ns := fmt.Sprintf("namespace-%d", opIndex)
	if op.Namespace != nil {
		ns = *op.Namespace
	}
	if err := e.ensureNamespace(ctx, ns); err != nil {
		return err
	}
	src, err := e.podSource(op)
	if err != nil {
		return err
	}
	if op.CollectMetrics {
		if e.collector != nil {
			return errors.New("metrics collection is overlapping. Probably second collector was started before stopping a previous one")
		}
		e.collector = e.startCollecting(ns, []string{ns}, nil)
	}
	e.tracker.expect(op.Count)
	switch {
	case op.SteadyState:
		if err := e.createPodsSteadily(ctx, ns, src, op); err != nil {
			return err
		}
	default:
		if err := e.createPodsN(ctx, ns, src, 0, op.Count); err != nil {
			return err
		}
		if op.SkipWaitToCompletion {
			e.podsPerNamespace[ns] += op.Count
		} else if err := e.waitScheduled(ctx, ns, nil, op.Count, false); err != nil {
			return fmt.Errorf("error in waiting for pods to get scheduled: %w", err)
		}
	}
	if op.CollectMetrics {
		e.stopCollecting()
	}
	return nil
}

// createPodsSteadily keeps op.Count pods waiting for the scheduler for
// op.Duration: each pod seen scheduled is deleted and replaced, as
// scheduler_perf's steady-state mode.
func (e *executor) createPodsSteadily(ctx context.Context, ns string, src *podSource, op *createPodsOp) error {
	ctx, cancel := context.WithTimeout(ctx, op.Duration.Duration)
	defer cancel()
	scheduled := make(chan *corev1.Pod, op.Count)
	handle, err := e.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok && p.Namespace == ns && p.Spec.NodeName != "" {
				select {
				case scheduled <- p:
				case <-ctx.Done():
				}
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Pod)
			n, ok2 := newObj.(*corev1.Pod)
			if ok1 && ok2 && n.Namespace == ns && o.Spec.NodeName == "" && n.Spec.NodeName != "" {
				select {
				case scheduled <- n:
				case <-ctx.Done():
				}
			}
		},
	})
	if err != nil {
		return err
	}
	defer func() { _ = e.pods.RemoveEventHandler(handle) }()
	if err := e.createPodsN(ctx, ns, src, 0, op.Count); err != nil && ctx.Err() == nil {
		return err
	}
	count, next := 0, op.Count
	zero := int64(0)
	bg := metav1.DeletePropagationBackground
	for {
		select {
		case <-ctx.Done():
			if count == 0 {
				return errors.New("no pod at all got scheduled, either because of a problem or because the test interval was too small")
			}
			return nil
		case pod := <-scheduled:
			count++
			err := e.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, PropagationPolicy: &bg})
			if ctx.Err() != nil {
				continue
			}
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete scheduled pod: %w", err)
			}
			if err := e.createPodsN(ctx, ns, src, next, 1); err != nil && ctx.Err() == nil {
				return fmt.Errorf("create next batch of pods: %w", err)
			}
			next++
		}
	}
}

// waitScheduled waits until want pods of a namespace are scheduled (or,
// attempted, until they were at least tried), as scheduler_perf's
// waitUntilPodsScheduledInNamespace; it gives up after 10 minutes, as it.
// It looks every second, as it: the throughput collector's last sample
// depends on it (a measurement that ends as soon as the last pod is bound
// can end before its second sample).
func (e *executor) waitScheduled(ctx context.Context, ns string, selector map[string]string, want int, attempted bool) error {
	var pending *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, time.Second, 10*time.Minute, true, func(context.Context) (bool, error) {
		pods, err := e.podLister.Pods(ns).List(labels.SelectorFromSet(selector))
		if err != nil {
			return false, err
		}
		n := 0
		pending = nil
		for _, p := range pods {
			switch {
			case p.Spec.NodeName != "":
				n++
			case attempted && isAttempted(p):
				n++
			default:
				pending = p
			}
		}
		return n >= want, nil
	})
	if err != nil && pending != nil {
		err = fmt.Errorf("at least pod %s is not scheduled: %w", klog.KObj(pending), err)
	}
	return err
}

func (e *executor) waitForPods(ctx context.Context, op *waitForPodsOp) error {
	n := 0
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, op.Timeout.Duration, true, func(context.Context) (bool, error) {
		pods, err := e.podLister.Pods(op.Namespace).List(labels.SelectorFromSet(op.LabelSelector))
		if err != nil {
			return false, err
		}
		n = 0
		for _, p := range pods {
			if p.Status.Phase == op.Phase {
				n++
			}
		}
		return n >= op.Count, nil
	})
	if err != nil {
		return fmt.Errorf("%d of %d pods in namespace %s %s: %w", n, op.Count, op.Namespace, op.Phase, err)
	}
	return nil
}

func isAttempted(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return true
		}
	}
	return false
}

func (e *executor) barrier(ctx context.Context, op *barrierOp) error {
	namespaces := op.Namespaces
	for _, ns := range namespaces {
		if _, ok := e.podsPerNamespace[ns]; !ok {
			return fmt.Errorf("unknown namespace %s", ns)
		}
	}
	if len(namespaces) == 0 {
		for ns := range e.podsPerNamespace {
			namespaces = append(namespaces, ns)
		}
	}
	attempted := op.StageRequirement == "Attempted"
	for _, ns := range namespaces {
		if err := e.waitScheduled(ctx, ns, op.LabelSelector, e.podsPerNamespace[ns], attempted); err != nil {
			return fmt.Errorf("error waiting for pods in namespace %q: %w", ns, err)
		}
	}
	if !attempted {
		if len(op.Namespaces) == 0 {
			e.podsPerNamespace = map[string]int{}
		} else {
			for _, ns := range op.Namespaces {
				delete(e.podsPerNamespace, ns)
			}
		}
	}
	return nil
}

func (e *executor) deletePods(ctx context.Context, op *deletePodsOp) error {
	sel := labels.SelectorFromSet(op.LabelSelector)
	pods, err := e.podLister.Pods(op.Namespace).List(sel)
	if err != nil {
		return err
	}
	del := func(ctx context.Context) error {
		if op.DeletePodsPerSecond > 0 {
			ticker := time.NewTicker(time.Second / time.Duration(op.DeletePodsPerSecond))
			defer ticker.Stop()
			for _, p := range pods {
				select {
				case <-ticker.C:
					if err := e.client.CoreV1().Pods(op.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
						return fmt.Errorf("unable to delete pod %v: %w", p.Name, err)
					}
				case <-ctx.Done():
					return nil
				}
			}
			return nil
		}
		err := e.client.CoreV1().Pods(op.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("unable to delete pods in namespace %v: %w", op.Namespace, err)
		}
		return nil
	}
	if op.SkipWaitToCompletion {
		e.goBackground(del)
		return nil
	}
	return del(ctx)
}

// resourceFor maps an object's kind to its resource, namespaced or not.
func (e *executor) resourceFor(ctx context.Context, obj *unstructured.Unstructured, ns string) (dynamic.ResourceInterface, error) {
	gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
	if err != nil {
		return nil, err
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: obj.GetKind()}
	var mapping *meta.RESTMapping
	// A CRD created by an earlier op may take a moment to be served.
	err = wait.PollUntilContextTimeout(ctx, time.Second, 20*time.Second, true, func(context.Context) (bool, error) {
		var err error
		mapping, err = e.mapper.RESTMapping(gk, gv.Version)
		if err != nil {
			e.mapper.Reset()
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed mapping %q to resource: %w", gk, err)
	}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if ns == "" {
			return nil, fmt.Errorf("namespace not set, but %q is namespaced", mapping.GroupVersionKind)
		}
		return e.dynamic.Resource(mapping.Resource).Namespace(ns), nil
	}
	if ns != "" {
		return nil, fmt.Errorf("namespace %q set, but %q is cluster-scoped", ns, mapping.GroupVersionKind)
	}
	return e.dynamic.Resource(mapping.Resource), nil
}

func (e *executor) createAny(ctx context.Context, op *createAnyOp) error {
	if op.Namespace != "" {
		if err := e.ensureNamespace(ctx, op.Namespace); err != nil {
			return err
		}
	}
	ot, err := e.tmpls.get(op.TemplatePath)
	if err != nil {
		return err
	}
	count := 1
	if op.Count != nil {
		count = *op.Count
	}
	for i := 0; i < count; i++ {
		obj := &unstructured.Unstructured{}
		if err := ot.render(op.TemplateParams, i, count, obj); err != nil {
			return err
		}
		res, err := e.resourceFor(ctx, obj, op.Namespace)
		if err != nil {
			return fmt.Errorf("%s: %w", op.TemplatePath, err)
		}
		err = wait.PollUntilContextTimeout(ctx, time.Second, 20*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := res.Create(ctx, obj, metav1.CreateOptions{FieldValidation: "Strict"})
			if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
				return false, err
			}
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("%s: creating %s: %w", op.TemplatePath, klog.KObj(obj), err)
		}
	}
	return nil
}

func (e *executor) updateAny(ctx context.Context, op *updateAnyOp) error {
	ot, err := e.tmpls.get(op.TemplatePath)
	if err != nil {
		return err
	}
	count := 1
	if op.Count != nil {
		count = *op.Count
	}
	update := func(ctx context.Context) error {
		var ticker *time.Ticker
		if op.UpdatePerSecond > 0 {
			ticker = time.NewTicker(time.Second / time.Duration(op.UpdatePerSecond))
			defer ticker.Stop()
		}
		for i := 0; i < count; i++ {
			if ticker != nil {
				select {
				case <-ticker.C:
				case <-ctx.Done():
					return nil
				}
			}
			obj := &unstructured.Unstructured{}
			if err := ot.render(op.TemplateParams, i, count, obj); err != nil {
				return err
			}
			res, err := e.resourceFor(ctx, obj, op.Namespace)
			if err != nil {
				return err
			}
			data, err := obj.MarshalJSON()
			if err != nil {
				return err
			}
			if _, err := res.Patch(ctx, obj.GetName(), types.MergePatchType, data, metav1.PatchOptions{}, op.Subresources...); err != nil && ctx.Err() == nil {
				return fmt.Errorf("%s: updating %s: %w", op.TemplatePath, klog.KObj(obj), err)
			}
		}
		return nil
	}
	if op.UpdatePerSecond > 0 {
		e.goBackground(update)
		return nil
	}
	return update(ctx)
}

// churn creates (and, in recreate mode, deletes) objects every interval in
// the background until the workload ends, as scheduler_perf's churn op.
func (e *executor) churn(ctx context.Context, opIndex int, op *churnOp) error {
	ns := fmt.Sprintf("namespace-%d", opIndex)
	if op.Namespace != nil {
		ns = *op.Namespace
	}
	if err := e.createNamespace(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	type target struct {
		obj *unstructured.Unstructured
		res dynamic.ResourceInterface
	}
	var targets []target
	for _, path := range op.TemplatePaths {
		ot, err := e.tmpls.get(path)
		if err != nil {
			return err
		}
		obj := &unstructured.Unstructured{}
		if err := ot.render(nil, 0, 1, obj); err != nil {
			return err
		}
		gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
		if err != nil {
			return err
		}
		mapping, err := e.mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: obj.GetKind()}, gv.Version)
		if err != nil {
			return fmt.Errorf("unable to find GVR for %v: %w", obj.GroupVersionKind(), err)
		}
		var res dynamic.ResourceInterface = e.dynamic.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			res = e.dynamic.Resource(mapping.Resource).Namespace(ns)
		}
		targets = append(targets, target{obj: obj, res: res})
	}
	interval := time.Duration(op.IntervalMilliseconds) * time.Millisecond
	if interval == 0 {
		interval = 500 * time.Millisecond
	}
	e.goBackground(func(ctx context.Context) error {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		names := make([][]string, len(targets))
		for i := range names {
			names[i] = make([]string, max(op.Number, 1))
		}
		limit := op.Number
		if op.Mode == "create" && limit == 0 {
			limit = math.MaxInt32
		}
		for count := 0; op.Mode == "recreate" || count < limit; count++ {
			select {
			case <-ticker.C:
			case <-ctx.Done():
				return nil
			}
			for i, t := range targets {
				slot := 0
				if op.Mode == "recreate" {
					slot = count % op.Number
				}
				if op.Mode == "recreate" && names[i][slot] != "" {
					if err := t.res.Delete(ctx, names[i][slot], metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
						e.logger.Error(err, "Churn: deleting", "name", names[i][slot])
					}
					names[i][slot] = ""
					continue
				}
				live, err := t.res.Create(ctx, t.obj, metav1.CreateOptions{})
				if err == nil {
					names[i][slot] = live.GetName()
				}
			}
		}
		return nil
	})
	return nil
}

// finish records what the workload left: unschedulable pods by reason,
// utilisation, and errors of background ops.
func (e *executor) finish(ctx context.Context) {
	if e.collector != nil {
		e.stopCollecting()
	}
	e.bgMu.Lock()
	errs := e.bgErrs
	e.bgMu.Unlock()
	if len(errs) > 0 && e.wr.Err == nil {
		e.wr.Err = errors.Join(errs...)
	}
	e.stopSampling()
	e.recordState(ctx)
}
