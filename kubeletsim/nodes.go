package kubeletsim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	kubeletevents "k8s.io/kubernetes/pkg/kubelet/events"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/apiserver"
)

// node is one simulated kubelet.
type node struct {
	name    string
	pool    *NodePool
	profile Profile
	// onCreated and onRegistered are called once the node's Node, and then
	// its Lease, first exist.
	onCreated, onRegistered func()
	// recorder records the kubelet's events; nil when they are disabled.
	recorder record.EventRecorder
	// deferEvents says the node's registration events wait until the
	// initial pools are registered (it is in one of them).
	deferEvents bool

	// mu guards what follows.
	mu         sync.Mutex
	registered bool
	removed    bool
	uid        types.UID
	lease      *coordinationv1.Lease
	leaseDue   time.Time
	statusDue  time.Time
	// reported is the fault the last status reported; fault is the one
	// asked for.
	reported, fault Fault
	// reportedReady is whether the node last reported Ready.
	reportedReady bool
	obj           *corev1.Node // latest from the API
	// unschedulable is whether the node was cordoned when last seen, as
	// kubelet's last NodeSchedulable/NodeNotSchedulable event says.
	unschedulable bool
	ips           *ipAllocator
	// admitted are the pods admitted and not yet terminal, by key: the
	// pods kubelet's admission counts.
	admitted map[string]*corev1.Pod
	// usage keeps the node's CPU counter (metrics.go); set at its first
	// scrape.
	usage *nodeUsage
}

func newNode(name string, pool *NodePool, profile Profile) *node {
	return &node{name: name, pool: pool, profile: profile, admitted: map[string]*corev1.Pod{}}
}

// observe records the node as the API has it; it returns whether the
// kubelet has something to do about it (a new fault, a podCIDR).
func (n *node) observe(obj *corev1.Node) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.removed || (n.uid != "" && obj.UID != n.uid) {
		return false
	}
	changed := false
	fault := Fault(obj.Annotations[AnnotationFault])
	if fault != n.fault {
		n.fault, changed = fault, true
	}
	if obj.Spec.Unschedulable != n.unschedulable {
		changed = true
	}
	if obj.Spec.PodCIDR != "" && n.ips == nil {
		if ips, err := newIPAllocator(obj.Spec.PodCIDR); err == nil {
			n.ips, changed = ips, true
		}
	}
	n.obj = obj
	return changed
}

// deletedFromAPI records that the Node object is gone; it returns whether
// the node was registered (and so is now gone from the simulation).
func (n *node) deletedFromAPI() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.registered {
		return false
	}
	n.removed = true
	return true
}

// renewInterval is kubelet's: a quarter of the lease duration, with 4%
// jitter.
func (s *Simulator) renewInterval() time.Duration {
	base := s.cfg.LeaseDuration / 4
	return base + time.Duration(rand.Float64()*0.04*float64(base))
}

// processNode registers the node, renews its lease and reports its status
// when due, and returns when it is next due.
func (s *Simulator) processNode(ctx context.Context, name string) (time.Time, error) {
	n := s.node(name)
	if n == nil {
		return time.Time{}, nil
	}
	n.mu.Lock()
	wasRegistered := n.registered
	next, err := s.processNodeLocked(ctx, n)
	registered := n.registered
	n.mu.Unlock()
	if registered && !wasRegistered {
		// Pods bound before the node registered wait for it.
		s.enqueuePodsOf(name)
	}
	return next, err
}

func (s *Simulator) processNodeLocked(ctx context.Context, n *node) (time.Time, error) {
	if n.removed || n.fault == FaultStopped {
		return time.Time{}, nil // a stopped kubelet does nothing
	}
	now := s.clock.Now()
	if !n.registered {
		// The Node first; its Lease on the next turn, after the other
		// nodes waiting to register (kubelet's lease controller starts
		// beside registration, and a lease is not due for 40s).
		if err := s.register(ctx, n, now); err != nil {
			return time.Time{}, err
		}
		return now, nil
	}
	if n.lease == nil {
		if err := s.renewLease(ctx, n, now); err != nil {
			return time.Time{}, err
		}
		// Spread renewals over the interval, so that nodes registered
		// together do not renew together.
		n.leaseDue = now.Add(time.Duration(rand.Float64() * float64(s.renewInterval())))
		if n.onRegistered != nil {
			n.onRegistered()
			n.onRegistered = nil
		}
	}
	if n.obj != nil && n.obj.Spec.Unschedulable != n.unschedulable {
		n.unschedulable = n.obj.Spec.Unschedulable
		if n.unschedulable {
			n.statusEvent(kubeletevents.NodeNotSchedulable)
		} else {
			n.statusEvent(kubeletevents.NodeSchedulable)
		}
	}
	if !now.Before(n.leaseDue) {
		if err := s.renewLease(ctx, n, now); err != nil {
			return time.Time{}, err
		}
		n.leaseDue = now.Add(s.renewInterval())
	}
	if !now.Before(n.statusDue) || n.reported != n.fault {
		if err := s.reportStatus(ctx, n, now); err != nil {
			return time.Time{}, err
		}
		n.statusDue = now.Add(s.cfg.StatusReportPeriod)
	}
	next := n.leaseDue
	if n.statusDue.Before(next) {
		next = n.statusDue
	}
	return next, nil
}

// register creates the Node with its status, as kubelet's first
// registration, and its Lease. A Node that exists (a restarted simulator)
// is taken over.
func (s *Simulator) register(ctx context.Context, n *node, now time.Time) error {
	obj := s.nodeObject(n, now)
	created, err := s.client.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = s.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		n.reported = "" // report the status now
		n.statusDue = now
	} else if err == nil {
		n.statusDue = now.Add(s.cfg.StatusReportPeriod)
	}
	if err != nil {
		return fmt.Errorf("unable to register node %s: %w", n.name, err)
	}
	n.uid = created.UID
	n.fault = Fault(created.Annotations[AnnotationFault])
	if n.obj == nil {
		n.obj = created
	}
	if created.Spec.PodCIDR != "" && n.ips == nil {
		n.ips, _ = newIPAllocator(created.Spec.PodCIDR)
	}
	n.registered = true
	n.reportedReady = n.fault != FaultNotReady
	if n.deferEvents {
		s.deferEvents(n)
	} else {
		n.registrationEvents()
	}
	if n.onCreated != nil {
		n.onCreated()
		n.onCreated = nil
	}
	return nil
}

// renewLease creates or renews the node's Lease in kube-node-lease, owned
// by the Node, as kubelet's lease controller does.
func (s *Simulator) renewLease(ctx context.Context, n *node, now time.Time) error {
	leases := s.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	renew := metav1.NewMicroTime(now)
	if n.lease != nil {
		// A shallow copy with a new renew time: the request only reads it
		// (a deep copy of each lease was 8% of kubeletsim's CPU with
		// 5,000 idle nodes).
		lease := *n.lease
		lease.Spec.RenewTime = &renew
		updated, err := leases.Update(ctx, &lease, metav1.UpdateOptions{})
		if err == nil {
			n.lease = updated
			return nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("unable to renew the lease of node %s: %w", n.name, err)
		}
		n.lease = nil
	}
	if n.lease == nil && n.registered {
		return s.createLease(ctx, n, renew)
	}
	return nil
}

// createLease creates the node's lease, or takes over one left behind.
func (s *Simulator) createLease(ctx context.Context, n *node, renew metav1.MicroTime) error {
	leases := s.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.name, Namespace: corev1.NamespaceNodeLease,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.name, UID: n.uid}},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(n.name),
			LeaseDurationSeconds: ptr.To(int32(s.cfg.LeaseDuration / time.Second)),
			RenewTime:            &renew,
		},
	}
	created, err := leases.Create(ctx, lease, metav1.CreateOptions{})
	if err == nil {
		n.lease = created
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("unable to create the lease of node %s: %w", n.name, err)
	}
	// A lease left by an earlier simulator: take it over.
	existing, err := leases.Get(ctx, n.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("unable to get the lease of node %s: %w", n.name, err)
	}
	existing.Spec = lease.Spec
	existing.OwnerReferences = lease.OwnerReferences
	updated, err := leases.Update(ctx, existing, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("unable to renew the lease of node %s: %w", n.name, err)
	}
	n.lease = updated
	return nil
}

// reportStatus patches the node's conditions, as kubelet's periodic status
// update does: heartbeats, and Ready as the fault says.
func (s *Simulator) reportStatus(ctx context.Context, n *node, now time.Time) error {
	prev := n.obj
	conditions := nodeConditions(n.fault, now, prev)
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": conditions}})
	if err != nil {
		return err
	}
	updated, err := s.client.CoreV1().Nodes().Patch(ctx, n.name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		n.removed = true // deleted: a kubelet does not register again until restarted
		return nil
	}
	if err != nil {
		return fmt.Errorf("unable to update the status of node %s: %w", n.name, err)
	}
	klog.FromContext(ctx).V(4).Info("Reported node status", "node", n.name, "fault", n.fault)
	n.obj, n.reported = updated, n.fault
	if ready := n.fault != FaultNotReady; ready != n.reportedReady {
		n.reportedReady = ready
		if ready {
			n.statusEvent(kubeletevents.NodeReady)
		} else {
			n.statusEvent(kubeletevents.NodeNotReady)
		}
	}
	return nil
}

// nodeConditions are kubelet's node conditions; transition times are kept
// from prev when a condition's status is unchanged.
func nodeConditions(fault Fault, now time.Time, prev *corev1.Node) []corev1.NodeCondition {
	t := metav1.NewTime(now).Rfc3339Copy()
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	if fault == FaultNotReady {
		conds[3].Status, conds[3].Reason = corev1.ConditionFalse, "KubeletNotReady"
		conds[3].Message = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:kubesim: simulated fault"
	}
	for i := range conds {
		conds[i].LastHeartbeatTime, conds[i].LastTransitionTime = t, t
		if prev == nil {
			continue
		}
		for _, old := range prev.Status.Conditions {
			if old.Type == conds[i].Type && old.Status == conds[i].Status {
				conds[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	return conds
}

// nodeObject is the Node kubelet registers: its labels, taints, capacity,
// addresses, kubelet endpoint and system information.
func (s *Simulator) nodeObject(n *node, now time.Time) *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:      n.name,
		corev1.LabelOSStable:      runtime.GOOS,
		corev1.LabelArchStable:    runtime.GOARCH,
		"beta.kubernetes.io/os":   runtime.GOOS,
		"beta.kubernetes.io/arch": runtime.GOARCH,
		LabelNodePool:             n.pool.Name,
		LabelNodeType:             "simulated",
	}
	for k, v := range n.pool.Labels {
		labels[k] = v
	}
	annotations := map[string]string{
		"volumes.kubernetes.io/controller-managed-attach-detach": "true",
		AnnotationResourceMetricsPath:                            "/nodes/" + n.name + "/metrics/resource",
	}
	for k, v := range n.pool.Annotations {
		annotations[k] = v
	}
	id := sha256.Sum256([]byte(n.name))
	machineID := hex.EncodeToString(id[:16])
	v := apiserver.Version()
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: labels, Annotations: annotations},
		Spec:       corev1.NodeSpec{Taints: append([]corev1.Taint(nil), n.pool.Taints...)},
		Status: corev1.NodeStatus{
			Capacity:    n.pool.Capacity.DeepCopy(),
			Allocatable: n.pool.Allocatable.DeepCopy(),
			Conditions:  nodeConditions(FaultNone, now, nil),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: s.cfg.NodeIP},
				{Type: corev1.NodeHostName, Address: n.name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: s.kubeletPort}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID:               machineID,
				SystemUUID:              fmt.Sprintf("%s-%s-%s-%s-%s", machineID[:8], machineID[8:12], machineID[12:16], machineID[16:20], machineID[20:32]),
				BootID:                  string(types.UID(fmt.Sprintf("%x", rand.Uint64()))),
				KernelVersion:           "kubesim",
				OSImage:                 "kubesim simulated node",
				ContainerRuntimeVersion: "kubesim://" + v.GitVersion,
				KubeletVersion:          v.GitVersion,
				OperatingSystem:         runtime.GOOS,
				Architecture:            runtime.GOARCH,
			},
		},
	}
}

// hostIP is the address pods of the node report as hostIP.
func (s *Simulator) hostIP() string {
	return net.ParseIP(s.cfg.NodeIP).String()
}
