package kubeletsim

import (
	"context"
	"fmt"
	"hash/fnv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/klog/v2"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
	kubeletevents "k8s.io/kubernetes/pkg/kubelet/events"
)

// eventRecorders send the simulated kubelets' events (source component
// "kubelet", host the node's name) as kubelet's recorder does: core/v1
// Events through client-go's broadcaster, which aggregates and
// rate-limits them per object and drops them when its queue is full,
// so events never hold a kubelet up. There is a fixed set of
// broadcasters, each with its queue and its writer, and a node always
// uses the same one.
type eventRecorders struct {
	broadcasters []record.EventBroadcaster
}

func newEventRecorders(n int, s *Simulator) *eventRecorders {
	r := &eventRecorders{}
	for range n {
		r.broadcasters = append(r.broadcasters, record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{Clock: s.clock})))
	}
	return r
}

// start writes the events through client until ctx is done.
func (r *eventRecorders) start(ctx context.Context, client typedcorev1.EventsGetter) {
	if r == nil {
		return
	}
	for _, b := range r.broadcasters {
		b.StartStructuredLogging(5)
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.Events("")})
	}
}

func (r *eventRecorders) shutdown() {
	if r == nil {
		return
	}
	for _, b := range r.broadcasters {
		b.Shutdown()
	}
}

// forNode is the recorder of the kubelet of the named node; nil when
// events are disabled.
func (r *eventRecorders) forNode(name string) record.EventRecorder {
	if r == nil {
		return nil
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	b := r.broadcasters[h.Sum32()%uint32(len(r.broadcasters))]
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: name})
}

// nodeEvent records an event about the node, as kubelet's
// recordNodeStatusEvent does: "Node <name> status is now: <reason>".
func (n *node) statusEvent(reason string) {
	n.event(corev1.EventTypeNormal, reason, fmt.Sprintf("Node %s status is now: %s", n.name, reason))
}

// event records an event about the node. n.mu is held.
func (n *node) event(eventtype, reason, message string) {
	if n.recorder == nil {
		return
	}
	n.recorder.Event(&corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: n.name, UID: n.uid}, eventtype, reason, message)
}

// registrationEvents are kubelet's events when it starts and registers
// its node: its conditions turning to what they are, and Ready. n.mu is
// held.
func (n *node) registrationEvents() {
	n.event(corev1.EventTypeNormal, kubeletevents.StartingKubelet, "Starting kubelet.")
	n.statusEvent("NodeHasSufficientMemory")
	n.statusEvent("NodeHasNoDiskPressure")
	n.statusEvent("NodeHasSufficientPID")
	n.event(corev1.EventTypeNormal, kubeletevents.SuccessfulNodeAllocatableEnforcement, "Updated Node Allocatable limit across pods")
	if n.reportedReady {
		n.statusEvent(kubeletevents.NodeReady)
	}
}

// deferredEventsPerSecond paces the registration events of the initial
// pools' nodes, recorded once they are all registered: six events a node,
// which for thousands of nodes would otherwise compete with the
// registrations themselves and overflow the broadcasters' queues.
const deferredEventsPerSecond = 200 // nodes

// deferEvents keeps the registration events of a node of the initial
// pools for later.
func (s *Simulator) deferEvents(n *node) {
	s.deferredMu.Lock()
	defer s.deferredMu.Unlock()
	s.deferred = append(s.deferred, n)
}

// recordDeferredEvents records the initial pools' registration events,
// paced, until ctx is done.
func (s *Simulator) recordDeferredEvents(ctx context.Context) {
	s.deferredMu.Lock()
	nodes := s.deferred
	s.deferred = nil
	s.deferredMu.Unlock()
	limiter := flowcontrol.NewTokenBucketRateLimiter(deferredEventsPerSecond, deferredEventsPerSecond)
	defer limiter.Stop()
	for _, n := range nodes {
		if err := limiter.Wait(ctx); err != nil {
			return
		}
		n.mu.Lock()
		if !n.removed {
			n.registrationEvents()
		}
		n.mu.Unlock()
	}
}

// podEvent is an event about a pod, or one of its containers when
// container is set, found while its status is computed.
type podEvent struct {
	container         *corev1.Container
	eventtype, reason string
	message           string
}

// recordPodEvents records the events found for pod.
func recordPodEvents(ctx context.Context, rec record.EventRecorder, pod *corev1.Pod, evs []podEvent) {
	if rec == nil {
		return
	}
	for _, e := range evs {
		if e.container == nil {
			rec.Event(pod, e.eventtype, e.reason, e.message)
			continue
		}
		ref, err := kubecontainer.GenerateContainerRef(pod, e.container)
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Unable to reference a container", "pod", klog.KObj(pod), "container", e.container.Name, "err", err)
			continue
		}
		rec.Event(ref, e.eventtype, e.reason, e.message)
	}
}

// The steps of one run of a container that have events, in order.
type runStep uint8

const (
	stepNone runStep = iota
	stepBackOff
	stepPulling
	stepPulled
	stepStarted
)

// report adds the events of the steps of run reached at, after the
// last one reported: a container's events are reported once, in order.
func (st *podState) report(r *containerRun, run int32, step runStep, evs ...podEvent) {
	if run < r.evRun || (run == r.evRun && step <= r.evStep) {
		return
	}
	r.evRun, r.evStep = run, step
	st.events = append(st.events, evs...)
}

// killingEvents are kubelet's events when it stops a pod's running
// containers: "Stopping container <name>".
func killingEvents(pod *corev1.Pod) []podEvent {
	var evs []podEvent
	add := func(specs []corev1.Container, statuses []corev1.ContainerStatus) {
		for i := range specs {
			for _, cs := range statuses {
				if cs.Name == specs[i].Name && cs.State.Running != nil {
					evs = append(evs, podEvent{container: &specs[i], eventtype: corev1.EventTypeNormal, reason: kubeletevents.KillingContainer,
						message: fmt.Sprintf("Stopping container %s", specs[i].Name)})
				}
			}
		}
	}
	add(pod.Spec.Containers, pod.Status.ContainerStatuses)
	add(pod.Spec.InitContainers, pod.Status.InitContainerStatuses)
	return evs
}

// imageSize is the size a simulated image reports when pulled: between
// 10 and 266 MB, the same for every pull of an image.
func imageSize(image string) int64 {
	h := fnv.New32a()
	h.Write([]byte(image))
	return 10_000_000 + int64(h.Sum32()%256_000_000)
}
