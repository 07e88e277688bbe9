package kubeletsim

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/controller"
	"k8s.io/utils/clock"

	"github.com/kubesim/kubesim/internal/transform"
)

// Simulator runs simulated kubelets. Build it with New, run it with Start.
type Simulator struct {
	cfg      Config
	profiles map[string]Profile
	client   kubernetes.Interface
	clock    clock.WithTicker

	podInformer  cache.SharedIndexInformer
	nodeInformer cache.SharedIndexInformer
	factories    []informers.SharedInformerFactory // the simulator's own
	shared       informers.SharedInformerFactory   // Config.Informers
	// podQueue holds pod keys (namespace/name), nodeQueue node names; a
	// key is processed by one worker at a time, and AddAfter schedules
	// the next step of a pod's or node's life.
	podQueue  workqueue.TypedRateLimitingInterface[string]
	nodeQueue workqueue.TypedRateLimitingInterface[string]

	listener    net.Listener
	kubeletPort int32
	// events records the kubelets' events; nil when they are disabled.
	events *eventRecorders
	// deferred are nodes of the initial pools whose registration events
	// wait until all are registered.
	deferredMu sync.Mutex
	deferred   []*node

	// mu guards nodes, pods and prefixes. Lock order: mu, then a node's mu.
	mu       sync.RWMutex
	nodes    map[string]*node
	pods     map[string]*podState
	prefixes map[string]int // next index by node name prefix

	// workersMu guards the node workers' count, their context and group
	// (set by Start) and whether Start is stopping them.
	workersMu   sync.Mutex
	nodeWorkers int
	workersCtx  context.Context
	workers     *sync.WaitGroup
	stopping    bool

	registered chan struct{} // closed when the initial pools are registered
	eventsDone chan struct{} // closed when their registration events are recorded
	nodesUp    chan struct{} // closed when the initial pools' Nodes exist
	// created and registered record when the initial pools' Nodes, and
	// then their Leases, all existed.
	created, registeredAt time.Time
	pendingNodes          sync.WaitGroup
	timesMu               sync.Mutex
	done                  chan struct{} // closed when Start returns
	pending               sync.WaitGroup
	started               chan struct{}
}

// New validates cfg, fills in its defaults and builds a Simulator. It
// listens for the kubelet endpoint at once, so nodes can report its port.
func New(cfg Config) (*Simulator, error) {
	profiles, err := cfg.complete()
	if err != nil {
		return nil, err
	}
	s := &Simulator{
		cfg: cfg, profiles: profiles, client: cfg.Client, clock: cfg.Clock,
		nodes: map[string]*node{}, pods: map[string]*podState{}, prefixes: map[string]int{},
		registered: make(chan struct{}), eventsDone: make(chan struct{}), nodesUp: make(chan struct{}), started: make(chan struct{}), done: make(chan struct{}),
	}
	if !cfg.DisableEvents {
		s.events = newEventRecorders(cfg.Workers, s)
	}
	rl := workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 10*time.Second)
	s.podQueue = workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[string]{Name: "", Clock: cfg.Clock})
	nrl := workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 10*time.Second)
	s.nodeQueue = workqueue.NewTypedRateLimitingQueueWithConfig(nrl, workqueue.TypedRateLimitingQueueConfig[string]{Name: "", Clock: cfg.Clock})

	// One watch of every bound pod and one of every node; events for other
	// processes' nodes are dropped.
	// Managed fields are dropped from the caches, as the scheduler and the
	// controller manager drop them: the kubelets do not read them, and at
	// scale they are a good part of a pod's memory.
	if cfg.Informers != nil {
		s.podInformer = cfg.Informers.Core().V1().Pods().Informer()
		s.nodeInformer = cfg.Informers.Core().V1().Nodes().Informer()
		s.shared = cfg.Informers
	} else {
		podFactory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
		}), informers.WithTransform(transform.DropManagedFields))
		nodeFactory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithTransform(transform.DropManagedFields))
		s.podInformer = podFactory.Core().V1().Pods().Informer()
		s.nodeInformer = nodeFactory.Core().V1().Nodes().Informer()
		s.factories = []informers.SharedInformerFactory{podFactory, nodeFactory}
	}
	// kube-controller-manager's own index, added as its controllers add
	// it: only if the (shared) informer lacks it.
	if err := controller.AddPodNodeNameIndexer(s.podInformer); err != nil {
		return nil, err
	}
	if _, err := s.podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.enqueuePod,
		UpdateFunc: func(_, obj interface{}) { s.enqueuePod(obj) },
		DeleteFunc: s.enqueuePod,
	}); err != nil {
		return nil, err
	}
	if _, err := s.nodeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.nodeChanged,
		UpdateFunc: func(_, obj interface{}) { s.nodeChanged(obj) },
		DeleteFunc: s.nodeDeleted,
	}); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", cfg.ServeAddress)
	if err != nil {
		return nil, fmt.Errorf("unable to listen for the kubelet endpoint: %w", err)
	}
	s.listener = ln
	s.kubeletPort = int32(ln.Addr().(*net.TCPAddr).Port)
	for _, pool := range cfg.Pools {
		if _, err := s.addNodes(pool, &s.pending); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return s, nil
}

// Start runs the simulated kubelets until ctx is done. Nodes register as
// soon as it runs; NodesRegistered tells when the initial pools are in.
func (s *Simulator) Start(ctx context.Context) error {
	defer close(s.done)
	logger := klog.FromContext(ctx).WithName("kubeletsim")
	ctx = klog.NewContext(ctx, logger)
	srv, err := s.newKubeletServer(ctx)
	if err != nil {
		s.listener.Close()
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(s.listener, "", "") }()

	for _, f := range s.factories {
		f.Start(ctx.Done())
	}
	s.events.start(ctx, s.client.CoreV1())
	var wg sync.WaitGroup
	defer func() {
		s.workersMu.Lock()
		s.stopping = true
		s.workersMu.Unlock()
		s.podQueue.ShutDown()
		s.nodeQueue.ShutDown()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
		wg.Wait()
		s.events.shutdown()
		for _, f := range s.factories {
			f.Shutdown()
		}
	}()
	if !cache.WaitForCacheSync(ctx.Done(), s.podInformer.HasSynced, s.nodeInformer.HasSynced) {
		return fmt.Errorf("unable to sync the pod and node informers: %w", ctx.Err())
	}
	for range s.cfg.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); s.runWorker(ctx, s.podQueue, s.processPod) }()
	}
	s.workersMu.Lock()
	s.workersCtx, s.workers = ctx, &wg
	s.workersMu.Unlock()
	s.addNodeWorkers()
	s.mu.RLock()
	for name := range s.nodes {
		s.nodeQueue.Add(name)
	}
	s.mu.RUnlock()
	close(s.started)
	go func() {
		s.pendingNodes.Wait()
		s.timesMu.Lock()
		s.created = s.clock.Now()
		s.timesMu.Unlock()
		close(s.nodesUp)
	}()
	go func() {
		s.pending.Wait()
		s.timesMu.Lock()
		s.registeredAt = s.clock.Now()
		s.timesMu.Unlock()
		close(s.registered)
		if s.events != nil {
			s.recordDeferredEvents(ctx)
		}
		close(s.eventsDone)
	}()
	logger.Info("Simulated kubelets started", "nodes", len(s.NodeNames()), "kubeletEndpoint", s.listener.Addr().String())
	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		return fmt.Errorf("kubelet endpoint: %w", err)
	}
}

// NodesRegistered is closed once every node of the initial pools has
// registered its Node and Lease.
func (s *Simulator) NodesRegistered() <-chan struct{} { return s.registered }

// RegistrationEventsRecorded is closed once the registration events of
// the initial pools' nodes (Starting, NodeReady, ...), which wait until
// every node has registered and then go out paced, are recorded.
func (s *Simulator) RegistrationEventsRecorded() <-chan struct{} { return s.eventsDone }

// NodesCreated is closed once every node of the initial pools has
// registered its Node, reporting Ready; their Leases may not exist yet.
func (s *Simulator) NodesCreated() <-chan struct{} { return s.nodesUp }

// RegistrationTimes returns when the initial pools' Nodes (registered,
// reporting Ready) and then their Leases all existed; zero until then.
func (s *Simulator) RegistrationTimes() (nodes, leases time.Time) {
	s.timesMu.Lock()
	defer s.timesMu.Unlock()
	return s.created, s.registeredAt
}

// Done is closed when Start has returned.
func (s *Simulator) Done() <-chan struct{} { return s.done }

// KubeletAddress is where the kubelet endpoint listens.
func (s *Simulator) KubeletAddress() string { return s.listener.Addr().String() }

// NodeNames returns the names of the simulated nodes, sorted.
func (s *Simulator) NodeNames() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.nodes))
	for name := range s.nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// AddNodes adds a pool's nodes at run time and returns their names; they
// register in the background (wait for them with the API). Adding the same
// pool again adds more nodes, numbered on.
func (s *Simulator) AddNodes(ctx context.Context, pool NodePool) ([]string, error) {
	names, err := s.addNodes(pool, nil)
	if err != nil {
		return nil, err
	}
	select {
	case <-s.started:
		s.addNodeWorkers()
		for _, name := range names {
			s.nodeQueue.Add(name)
		}
	default: // Start enqueues every node
	}
	return names, nil
}

// addNodeWorkers starts node workers up to Config.NodeWorkers, or by
// default one for every NodesPerWorker nodes (at least Workers). Workers
// are not stopped when nodes go: an idle worker costs a parked goroutine.
func (s *Simulator) addNodeWorkers() {
	want := s.cfg.NodeWorkers
	if want == 0 {
		s.mu.RLock()
		n := len(s.nodes)
		s.mu.RUnlock()
		want = max(s.cfg.Workers, (n+NodesPerWorker-1)/NodesPerWorker)
	}
	s.workersMu.Lock()
	defer s.workersMu.Unlock()
	if s.stopping || s.workers == nil {
		return
	}
	for ; s.nodeWorkers < want; s.nodeWorkers++ {
		s.workers.Add(1)
		go func() { defer s.workers.Done(); s.runWorker(s.workersCtx, s.nodeQueue, s.processNode) }()
	}
}

// NodeWorkers returns how many node workers run.
func (s *Simulator) NodeWorkers() int {
	s.workersMu.Lock()
	defer s.workersMu.Unlock()
	return s.nodeWorkers
}

func (s *Simulator) addNodes(pool NodePool, pending *sync.WaitGroup) ([]string, error) {
	if err := pool.complete(s.profiles); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, pool.Count)
	for range pool.Count {
		i := s.prefixes[pool.NamePrefix]
		s.prefixes[pool.NamePrefix] = i + 1
		if !s.cfg.Shard.has(i) {
			continue // another process's node
		}
		name := pool.NamePrefix + strconv.Itoa(i)
		if _, ok := s.nodes[name]; ok {
			return names, fmt.Errorf("node %s is already simulated", name)
		}
		n := newNode(name, &pool, s.profiles[pool.Profile])
		n.recorder = s.events.forNode(name)
		if pending != nil {
			n.deferEvents = true
			pending.Add(1)
			n.onRegistered = pending.Done
			s.pendingNodes.Add(1)
			n.onCreated = s.pendingNodes.Done
		}
		s.nodes[name] = n
		names = append(names, name)
	}
	return names, nil
}

// RemoveNode stops simulating a node and deletes its Node and Lease, as
// when a machine is removed from a cluster; the pod garbage collector
// deletes its pods.
func (s *Simulator) RemoveNode(ctx context.Context, name string) error {
	s.mu.Lock()
	n, ok := s.nodes[name]
	delete(s.nodes, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("node %s is not simulated here", name)
	}
	n.mu.Lock()
	n.removed = true
	n.mu.Unlock()
	err := s.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("unable to delete node %s: %w", name, err)
	}
	err = s.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("unable to delete the lease of node %s: %w", name, err)
	}
	return nil
}

// SetFault injects a fault into a node, or heals it with FaultNone, by
// setting its kubesim.io/fault annotation: the kubeletsim process that
// simulates the node acts on it, wherever it runs.
func (s *Simulator) SetFault(ctx context.Context, name string, fault Fault) error {
	return SetFault(ctx, s.client, name, fault)
}

// SetFault sets a simulated node's fault through the API (see
// AnnotationFault); kubesim node's subcommands use it.
func SetFault(ctx context.Context, client kubernetes.Interface, name string, fault Fault) error {
	switch fault {
	case FaultNone, FaultNotReady, FaultStopped:
	default:
		return fmt.Errorf("unknown fault %q (want %q, %q or none)", fault, FaultNotReady, FaultStopped)
	}
	value := "null"
	if fault != FaultNone {
		value = strconv.Quote(string(fault))
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, AnnotationFault, value)
	if _, err := client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("unable to set fault %q on node %s: %w", fault, name, err)
	}
	return nil
}

// Cordon marks a node unschedulable, or schedulable again, as kubectl
// cordon and uncordon do.
func Cordon(ctx context.Context, client kubernetes.Interface, name string, unschedulable bool) error {
	patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, unschedulable)
	if _, err := client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("unable to cordon node %s: %w", name, err)
	}
	return nil
}

func (s *Simulator) node(name string) *node {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nodes[name]
}

func (s *Simulator) enqueuePod(obj interface{}) {
	var pod *corev1.Pod
	switch o := obj.(type) {
	case *corev1.Pod:
		pod = o
	case cache.DeletedFinalStateUnknown:
		pod, _ = o.Obj.(*corev1.Pod)
	}
	if pod == nil || s.node(pod.Spec.NodeName) == nil {
		return
	}
	s.podQueue.Add(pod.Namespace + "/" + pod.Name)
}

func (s *Simulator) nodeChanged(obj interface{}) {
	obj_, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	n := s.node(obj_.Name)
	if n == nil {
		return
	}
	if n.observe(obj_) {
		s.nodeQueue.Add(n.name)
		// Pods wait for their node's podCIDR; a fault stops or resumes them.
		s.enqueuePodsOf(n.name)
	}
}

func (s *Simulator) nodeDeleted(obj interface{}) {
	var name string
	switch o := obj.(type) {
	case *corev1.Node:
		name = o.Name
	case cache.DeletedFinalStateUnknown:
		if n, ok := o.Obj.(*corev1.Node); ok {
			name = n.Name
		}
	}
	n := s.node(name)
	if n == nil {
		return
	}
	// A kubelet whose Node is deleted does not register again until it
	// restarts: the node is gone from the simulation.
	if n.deletedFromAPI() {
		s.mu.Lock()
		if s.nodes[name] == n {
			delete(s.nodes, name)
		}
		s.mu.Unlock()
	}
}

func (s *Simulator) enqueuePodsOf(nodeName string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for key, st := range s.pods {
		if st.node == nodeName {
			s.podQueue.Add(key)
		}
	}
	// Pods not seen yet come from the informer's cache.
	pods, _ := s.podInformer.GetIndexer().ByIndex(controller.PodNodeNameKeyIndex, nodeName)
	for _, obj := range pods {
		if p, ok := obj.(*corev1.Pod); ok {
			s.podQueue.Add(p.Namespace + "/" + p.Name)
		}
	}
}

// runWorker processes keys until the queue shuts down. process returns
// when to process the key again (zero: not unless something changes) or
// an error, retried with back-off.
func (s *Simulator) runWorker(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], process func(context.Context, string) (time.Time, error)) {
	logger := klog.FromContext(ctx)
	for {
		key, quit := q.Get()
		if quit {
			return
		}
		next, err := process(ctx, key)
		switch {
		case err != nil && ctx.Err() == nil:
			if !apierrors.IsConflict(err) {
				logger.V(2).Info("Retrying", "key", key, "err", err)
			}
			q.AddRateLimited(key)
		case err == nil:
			q.Forget(key)
			if !next.IsZero() {
				q.AddAfter(key, next.Sub(s.clock.Now()))
			}
		}
		q.Done(key)
	}
}
