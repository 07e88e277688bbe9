package kubeletsim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/kubeletsim"
)

// cluster is an API server (no controllers) with simulated nodes on a fake
// clock. Pods are bound by hand and podCIDRs set as node IPAM would.
type cluster struct {
	client kubernetes.Interface
	clock  *testingclock.FakeClock
	sim    *kubeletsim.Simulator
}

func startCluster(t *testing.T, pools ...kubeletsim.NodePool) *cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	api, err := apiserver.New(apiserver.Config{AnyPort: true})
	if err != nil {
		t.Fatal(err)
	}
	apiDone := make(chan struct{})
	go func() { defer close(apiDone); api.Start(ctx) }()
	<-api.Ready()
	client := kubernetes.NewForConfigOrDie(api.RESTConfig())
	// No controllers run: the default service account is made by hand.
	if _, err := client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clk := testingclock.NewFakeClock(time.Now())
	s, err := kubeletsim.New(kubeletsim.Config{Client: client, Clock: clk, Pools: pools, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	simDone := make(chan struct{})
	go func() { defer close(simDone); s.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-simDone; <-apiDone })
	<-s.NodesRegistered()
	for i, name := range s.NodeNames() {
		patch := []byte(`{"spec":{"podCIDR":"10.244.` + string(rune('0'+i)) + `.0/24","podCIDRs":["10.244.` + string(rune('0'+i)) + `.0/24"]}}`)
		if _, err := client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return &cluster{client: client, clock: clk, sim: s}
}

// waitPod waits (in real time) until the pod satisfies cond.
func (c *cluster) waitPod(t *testing.T, name string, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			last = nil
			return cond(nil), nil
		}
		if err != nil {
			return false, err
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s never got %s; last status: %+v", name, what, last)
	}
	return last
}

func condition(p *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

func newPod(name string, annotations map[string]string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeName:   "node-0",
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func TestNodesRegisterWithLeases(t *testing.T) {
	c := startCluster(t, kubeletsim.NodePool{Count: 2, Labels: map[string]string{"topology.kubernetes.io/zone": "a"},
		Capacity: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("4")},
		Taints:   []corev1.Taint{{Key: "gpu", Effect: corev1.TaintEffectNoSchedule}}})
	ctx := context.Background()
	nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 2 {
		t.Fatalf("got %d nodes, want 2", len(nodes.Items))
	}
	for _, n := range nodes.Items {
		ready := false
		for _, cond := range n.Status.Conditions {
			ready = ready || (cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue)
		}
		gpu := n.Status.Allocatable["nvidia.com/gpu"]
		// (kube-apiserver's TaintNodesByCondition adds not-ready:NoSchedule
		// at creation; the node lifecycle controller lifts it.)
		if !ready || n.Labels["topology.kubernetes.io/zone"] != "a" || gpu.Value() != 4 || n.Spec.Taints[0].Key != "gpu" || n.Status.DaemonEndpoints.KubeletEndpoint.Port == 0 {
			t.Errorf("node %s: ready %v, labels %v, gpu %v, taints %v, endpoint %v", n.Name, ready, n.Labels, gpu.String(), n.Spec.Taints, n.Status.DaemonEndpoints)
		}
		lease, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *lease.Spec.HolderIdentity != n.Name || lease.OwnerReferences[0].UID != n.UID {
			t.Errorf("lease %s: holder %s, owners %v", lease.Name, *lease.Spec.HolderIdentity, lease.OwnerReferences)
		}
	}
	// The lease is renewed every quarter of its duration (10s).
	before, _ := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "node-0", metav1.GetOptions{})
	c.clock.Step(11 * time.Second)
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		after, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "node-0", metav1.GetOptions{})
		return err == nil && after.Spec.RenewTime.After(before.Spec.RenewTime.Time), err
	})
	if err != nil {
		t.Fatalf("lease not renewed: %v", err)
	}
}

func TestPodLifecycle(t *testing.T) {
	c := startCluster(t, kubeletsim.NodePool{Count: 1, Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}})
	ctx := context.Background()
	create := func(t *testing.T, p *corev1.Pod) {
		t.Helper()
		if _, err := c.client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	running := func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == corev1.PodRunning }

	t.Run("readiness after the probe's initial delay", func(t *testing.T) {
		create(t, newPod("ready", nil, func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{InitialDelaySeconds: 10, ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		}))
		p := c.waitPod(t, "ready", "Running", running)
		cs := p.Status.ContainerStatuses[0]
		if cs.Ready || !*cs.Started || cs.ContainerID == "" || cs.ImageID == "" || p.Status.PodIP == "" || p.Status.HostIP == "" || condition(p, corev1.PodReady) != corev1.ConditionFalse {
			t.Fatalf("before the delay: %+v", p.Status)
		}
		c.clock.Step(10 * time.Second)
		c.waitPod(t, "ready", "Ready", func(p *corev1.Pod) bool { return condition(p, corev1.PodReady) == corev1.ConditionTrue })
	})

	t.Run("a running pod is held once: admission counts the cached object", func(t *testing.T) {
		create(t, newPod("held", nil, nil))
		p := c.waitPod(t, "held", "Running", running)
		// The status write that made it Running reaches the cache; the
		// node's admission then counts that object, not the revision it
		// admitted, which would stay in memory beside it.
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			admitted, cached := c.sim.AdmittedAndCached("node-0", "default/held")
			return admitted != nil && admitted == cached && cached.ResourceVersion == p.ResourceVersion, nil
		})
		if err != nil {
			admitted, cached := c.sim.AdmittedAndCached("node-0", "default/held")
			t.Fatalf("admission holds revision %s, the cache %s (API: %s)", admitted.ResourceVersion, cached.ResourceVersion, p.ResourceVersion)
		}
	})

	t.Run("image pull shows ContainerCreating", func(t *testing.T) {
		create(t, newPod("pull", map[string]string{kubeletsim.AnnotationImagePullDelay: "5s"}, nil))
		p := c.waitPod(t, "pull", "a status", func(p *corev1.Pod) bool { return p != nil && len(p.Status.ContainerStatuses) == 1 })
		if w := p.Status.ContainerStatuses[0].State.Waiting; p.Status.Phase != corev1.PodPending || w == nil || w.Reason != "ContainerCreating" {
			t.Fatalf("while pulling: %+v", p.Status)
		}
		c.clock.Step(5 * time.Second)
		c.waitPod(t, "pull", "Running", running)
	})

	t.Run("init containers run in order, then a sidecar, then the containers", func(t *testing.T) {
		create(t, newPod("init", map[string]string{kubeletsim.AnnotationInitContainerDuration: "5s"}, func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "one", Image: "busybox"}, {Name: "side", Image: "envoy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}, {Name: "two", Image: "busybox"}}
		}))
		p := c.waitPod(t, "init", "init one running", func(p *corev1.Pod) bool {
			return p != nil && len(p.Status.InitContainerStatuses) == 3 && p.Status.InitContainerStatuses[0].State.Running != nil
		})
		if p.Status.InitContainerStatuses[2].State.Waiting == nil || condition(p, corev1.PodInitialized) != corev1.ConditionFalse {
			t.Fatalf("during init one: %+v", p.Status)
		}
		c.clock.Step(5 * time.Second)
		p = c.waitPod(t, "init", "init two running", func(p *corev1.Pod) bool { return p.Status.InitContainerStatuses[2].State.Running != nil })
		if p.Status.InitContainerStatuses[0].State.Terminated == nil || p.Status.InitContainerStatuses[1].State.Running == nil || p.Status.Phase != corev1.PodPending {
			t.Fatalf("during init two: %+v", p.Status)
		}
		c.clock.Step(5 * time.Second)
		p = c.waitPod(t, "init", "Running", running)
		if !p.Status.InitContainerStatuses[1].Ready || condition(p, corev1.PodReady) != corev1.ConditionTrue {
			t.Fatalf("after init: %+v", p.Status)
		}
	})

	t.Run("crash loop with kubelet's back-off", func(t *testing.T) {
		create(t, newPod("crash", map[string]string{kubeletsim.AnnotationRunDuration: "1s", kubeletsim.AnnotationExitCode: "3"}, nil))
		c.waitPod(t, "crash", "Running", running)
		c.clock.Step(time.Second) // exits, restarted at once
		c.waitPod(t, "crash", "one restart", func(p *corev1.Pod) bool { return p.Status.ContainerStatuses[0].RestartCount == 1 })
		c.clock.Step(time.Second) // exits again: back-off 10s
		p := c.waitPod(t, "crash", "CrashLoopBackOff", func(p *corev1.Pod) bool {
			w := p.Status.ContainerStatuses[0].State.Waiting
			return w != nil && w.Reason == "CrashLoopBackOff"
		})
		last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
		if last == nil || last.ExitCode != 3 || last.Reason != "Error" || p.Status.Phase != corev1.PodRunning {
			t.Fatalf("in back-off: %+v", p.Status)
		}
		c.clock.Step(10 * time.Second)
		c.waitPod(t, "crash", "two restarts", func(p *corev1.Pod) bool { return p.Status.ContainerStatuses[0].RestartCount == 2 })
	})

	t.Run("restartPolicy Never completes", func(t *testing.T) {
		create(t, newPod("done", map[string]string{kubeletsim.AnnotationRunDuration: "30s"}, func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }))
		c.waitPod(t, "done", "Running", running)
		c.clock.Step(30 * time.Second)
		p := c.waitPod(t, "done", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
		if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.Reason != "Completed" {
			t.Fatalf("completed: %+v", p.Status)
		}
	})

	t.Run("OOMKilled fails a Never pod", func(t *testing.T) {
		create(t, newPod("oom", map[string]string{kubeletsim.AnnotationRunDuration: "1s", kubeletsim.AnnotationOOMKilled: "true"}, func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }))
		c.waitPod(t, "oom", "Running", running)
		c.clock.Step(time.Second)
		p := c.waitPod(t, "oom", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if term := p.Status.ContainerStatuses[0].State.Terminated; term.Reason != "OOMKilled" || term.ExitCode != 137 {
			t.Fatalf("OOM: %+v", term)
		}
	})

	t.Run("admission rejects what does not fit", func(t *testing.T) {
		create(t, newPod("big", nil, func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3")}
		}))
		p := c.waitPod(t, "big", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if p.Status.Reason != "OutOfcpu" || p.Status.Message != "Pod was rejected: Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000" {
			t.Fatalf("rejection: %q %q", p.Status.Reason, p.Status.Message)
		}
		create(t, newPod("selector", nil, func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }))
		p = c.waitPod(t, "selector", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if p.Status.Reason != "NodeAffinity" {
			t.Fatalf("rejection: %q %q", p.Status.Reason, p.Status.Message)
		}
	})

	t.Run("graceful deletion waits for the containers to exit", func(t *testing.T) {
		create(t, newPod("term", map[string]string{kubeletsim.AnnotationTerminationDelay: "20s"}, func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](60) }))
		c.waitPod(t, "term", "Running", running)
		if err := c.client.CoreV1().Pods("default").Delete(ctx, "term", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		c.waitPod(t, "term", "deletionTimestamp", func(p *corev1.Pod) bool { return p != nil && p.DeletionTimestamp != nil })
		// The node has seen the deletion, and set its containers' exit 20 s
		// from the fake clock's now, once it says it stops them: stepping
		// the clock before that would move the exit along with it.
		c.waitEvents(t, "default", "term", "Killing: Stopping container c")
		c.clock.Step(19 * time.Second)
		if _, err := c.client.CoreV1().Pods("default").Get(ctx, "term", metav1.GetOptions{}); err != nil {
			t.Fatalf("gone before its containers exited: %v", err)
		}
		c.clock.Step(time.Second)
		c.waitPod(t, "term", "deleted", func(p *corev1.Pod) bool { return p == nil })
	})
}

// stepAndWaitRenewal steps the clock and waits for the named node to renew
// its lease: the nodes' work due by then is done.
func (c *cluster) stepAndWaitRenewal(t *testing.T, node string, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	before, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.clock.Step(d)
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.After(before.Spec.RenewTime.Time), err
	})
	if err != nil {
		t.Fatalf("node %s did not renew its lease: %v", node, err)
	}
}

// TestNodeWorkersScaleWithNodes: each node worker waits for the API
// server's answer, so the pool grows with the nodes (one worker for every
// NodesPerWorker nodes, at least Workers) to keep their leases on
// kubelet's cadence; nodes added at run time add workers.
func TestNodeWorkersScaleWithNodes(t *testing.T) {
	c := startCluster(t, kubeletsim.NodePool{Count: 1})
	ctx := context.Background()
	if got := c.sim.NodeWorkers(); got != 2 {
		t.Errorf("1 node: %d node workers, want Workers (2)", got)
	}
	const added = 2*kubeletsim.NodesPerWorker + 20
	if _, err := c.sim.AddNodes(ctx, kubeletsim.NodePool{Name: "many", Count: added}); err != nil {
		t.Fatal(err)
	}
	if got, want := c.sim.NodeWorkers(), 3; got != want {
		t.Errorf("%d nodes: %d node workers, want %d", added+1, got, want)
	}
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		leases, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).List(ctx, metav1.ListOptions{})
		return err == nil && len(leases.Items) == added+1, nil
	})
	if err != nil {
		t.Fatalf("the added nodes never all had leases: %v", err)
	}
}

func TestNodesAtRunTime(t *testing.T) {
	c := startCluster(t, kubeletsim.NodePool{Count: 1})
	ctx := context.Background()
	leaseOf := func(name string) error {
		_, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
		return err
	}

	t.Run("added nodes register and run pods", func(t *testing.T) {
		names, err := c.sim.AddNodes(ctx, kubeletsim.NodePool{Name: "extra", Count: 2, Labels: map[string]string{"tier": "extra"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != 2 || names[0] != "extra-0" || names[1] != "extra-1" {
			t.Fatalf("names: %v", names)
		}
		err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			for _, name := range names {
				if n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil || n.Labels["tier"] != "extra" || leaseOf(name) != nil {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("added nodes never registered with their leases: %v", err)
		}
		patch := []byte(`{"spec":{"podCIDR":"10.244.9.0/24","podCIDRs":["10.244.9.0/24"]}}`)
		if _, err := c.client.CoreV1().Nodes().Patch(ctx, "extra-1", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.client.CoreV1().Pods("default").Create(ctx, newPod("on-extra", nil, func(p *corev1.Pod) { p.Spec.NodeName = "extra-1" }), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := c.waitPod(t, "on-extra", "Running", func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == corev1.PodRunning })
		if !strings.HasPrefix(p.Status.PodIP, "10.244.9.") {
			t.Errorf("pod IP %s, not from the added node's podCIDR", p.Status.PodIP)
		}
		if again, err := c.sim.AddNodes(ctx, kubeletsim.NodePool{Name: "extra", Count: 1}); err != nil || again[0] != "extra-2" {
			t.Errorf("adding to the pool again: %v, %v", again, err)
		}
	})

	t.Run("a removed node is deleted with its lease, and stops", func(t *testing.T) {
		if err := c.sim.RemoveNode(ctx, "extra-0"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.client.CoreV1().Nodes().Get(ctx, "extra-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("node after removal: %v", err)
		}
		if err := leaseOf("extra-0"); !apierrors.IsNotFound(err) {
			t.Errorf("lease after removal: %v", err)
		}
		for _, name := range c.sim.NodeNames() {
			if name == "extra-0" {
				t.Errorf("still simulated: %v", c.sim.NodeNames())
			}
		}
		if err := c.sim.RemoveNode(ctx, "extra-0"); err == nil {
			t.Error("removing it again succeeded")
		}
		// Its kubelet is gone: once the others have renewed their leases,
		// it has not registered again.
		c.stepAndWaitRenewal(t, "extra-1", 11*time.Second)
		if _, err := c.client.CoreV1().Nodes().Get(ctx, "extra-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("node registered again: %v", err)
		}
	})

	t.Run("a stopped kubelet renews nothing and starts nothing until it resumes", func(t *testing.T) {
		if err := c.sim.SetFault(ctx, "node-0", kubeletsim.FaultStopped); err != nil {
			t.Fatal(err)
		}
		// The fault reaches the kubelet through its Node's watch.
		before, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "node-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			return c.sim.FaultOf("node-0") == kubeletsim.FaultStopped, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.client.CoreV1().Pods("default").Create(ctx, newPod("stopped", nil, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Another node's renewal and pod tell the work due was done.
		if _, err := c.client.CoreV1().Pods("default").Create(ctx, newPod("witness", nil, func(p *corev1.Pod) { p.Spec.NodeName = "extra-1" }), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.stepAndWaitRenewal(t, "extra-1", 30*time.Second)
		c.waitPod(t, "witness", "Running", func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == corev1.PodRunning })
		after, _ := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "node-0", metav1.GetOptions{})
		if !after.Spec.RenewTime.Equal(before.Spec.RenewTime) {
			t.Errorf("a stopped kubelet renewed its lease: %v, then %v", before.Spec.RenewTime, after.Spec.RenewTime)
		}
		if p, _ := c.client.CoreV1().Pods("default").Get(ctx, "stopped", metav1.GetOptions{}); p.Status.Phase != corev1.PodPending || len(p.Status.ContainerStatuses) != 0 {
			t.Errorf("a stopped kubelet started a pod: %+v", p.Status)
		}
		if err := c.sim.SetFault(ctx, "node-0", kubeletsim.FaultNone); err != nil {
			t.Fatal(err)
		}
		c.waitPod(t, "stopped", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			l, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "node-0", metav1.GetOptions{})
			return err == nil && l.Spec.RenewTime.After(before.Spec.RenewTime.Time), err
		})
		if err != nil {
			t.Fatalf("lease not renewed after the kubelet resumed: %v", err)
		}
	})
}
