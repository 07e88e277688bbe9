package kubeletsim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	kubeletevents "k8s.io/kubernetes/pkg/kubelet/events"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
	kubeletstatus "k8s.io/kubernetes/pkg/kubelet/status"
	kubetypes "k8s.io/kubernetes/pkg/kubelet/types"
	"k8s.io/kubernetes/pkg/kubelet/util/format"
	schedulerframework "k8s.io/kubernetes/pkg/scheduler/framework"
	statusutil "k8s.io/kubernetes/pkg/util/pod"
	"k8s.io/utils/ptr"
)

// Kubelet's container restart back-off: 10s, doubling to 5m, forgotten
// after a container ran twice the maximum.
const (
	backOffInitial = 10 * time.Second
	backOffMax     = 300 * time.Second
)

// podState is what a simulated kubelet knows of one pod: when it was
// admitted, its IP, and its containers' runs. It is touched only by the
// worker processing the pod's key.
type podState struct {
	key  string
	uid  types.UID
	node string

	admitted, rejected bool
	admittedAt         time.Time
	podIP              string
	init, regular      []*containerRun
	// killAt is when the pod's deletion was seen (SIGTERM); its
	// containers have exited by killDone, killed if killedHard.
	killAt, killDone time.Time
	killedHard       bool
	// terminal: the pod's IP and admission slot are released.
	terminal bool
	// written is the last status written, at writtenRV: the cache may not
	// show it yet.
	written   *corev1.PodStatus
	writtenRV string
	// events are the kubelet events found by the last step, to record.
	events []podEvent
}

// containerRun is the life of one container of a pod across restarts.
type containerRun struct {
	// startAt is when the current run starts (or started).
	startAt time.Time
	// restarts counts the runs after the first that have started;
	// pendingRestart says the run at startAt is one.
	restarts       int32
	pendingRestart bool
	// exits counts exits since the back-off was last reset.
	exits    int
	backOff  time.Duration // before the pending restart
	lastTerm *corev1.ContainerStateTerminated
	// final is the container's last state when it will not run again.
	final *corev1.ContainerStateTerminated
	// evRun and evStep are the run and its step whose events were last
	// reported.
	evRun  int32
	evStep runStep
}

// podLifecycle is a pod's profile with its annotations applied and its
// durations scaled to the clock.
type podLifecycle struct {
	pull, start, initRun, run, termDelay time.Duration
	exitCode                             int32
	oomKilled, neverReady                bool
	scale                                float64
	logs                                 []string
}

func (l podLifecycle) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) / l.scale)
}

// lifecycleOf applies a pod's annotations to its node's profile. A value
// that does not parse is ignored (the profile's stands), and logged.
func (s *Simulator) lifecycleOf(ctx context.Context, pod *corev1.Pod, p Profile) podLifecycle {
	l := podLifecycle{pull: p.ImagePullDelay.Duration, start: p.StartDelay.Duration, initRun: p.InitContainerDuration.Duration,
		run: p.RunDuration.Duration, termDelay: p.TerminationDelay.Duration, exitCode: p.ExitCode, scale: s.cfg.TimeScale, logs: p.LogLines}
	a := pod.Annotations
	duration := func(key string, into *time.Duration) {
		if v, ok := a[key]; ok {
			d, err := time.ParseDuration(v)
			if v == "0" {
				d, err = 0, nil
			}
			if err != nil || d < 0 {
				klog.FromContext(ctx).V(2).Info("Ignoring an invalid annotation", "pod", klog.KObj(pod), "annotation", key, "value", v)
				return
			}
			*into = d
		}
	}
	duration(AnnotationImagePullDelay, &l.pull)
	duration(AnnotationStartDelay, &l.start)
	duration(AnnotationInitContainerDuration, &l.initRun)
	duration(AnnotationRunDuration, &l.run)
	duration(AnnotationTerminationDelay, &l.termDelay)
	if v, ok := a[AnnotationExitCode]; ok {
		if code, err := strconv.ParseInt(v, 10, 32); err == nil && code >= 0 && code <= 255 {
			l.exitCode = int32(code)
		} else {
			klog.FromContext(ctx).V(2).Info("Ignoring an invalid annotation", "pod", klog.KObj(pod), "annotation", AnnotationExitCode, "value", v)
		}
	}
	l.oomKilled = a[AnnotationOOMKilled] == "true"
	l.neverReady = a[AnnotationNeverReady] == "true"
	if v, ok := a[AnnotationLogs]; ok {
		l.logs = strings.Split(strings.TrimSuffix(v, "\n"), "\n")
	}
	l.pull, l.start, l.initRun, l.run, l.termDelay = l.scaled(l.pull), l.scaled(l.start), l.scaled(l.initRun), l.scaled(l.run), l.scaled(l.termDelay)
	return l
}

// processPod does what is due for one pod: admission, status, graceful
// termination; it returns when the pod's next step is due.
func (s *Simulator) processPod(ctx context.Context, key string) (time.Time, error) {
	obj, exists, err := s.podInformer.GetIndexer().GetByKey(key)
	if err != nil {
		return time.Time{}, err
	}
	if !exists {
		s.forgetPod(key)
		return time.Time{}, nil
	}
	pod := obj.(*corev1.Pod)
	n := s.node(pod.Spec.NodeName)
	if n == nil {
		s.forgetPod(key)
		return time.Time{}, nil
	}
	n.mu.Lock()
	idle := n.fault == FaultStopped || n.removed || !n.registered
	n.mu.Unlock()
	if idle {
		return time.Time{}, nil // the node enqueues its pods when it comes back
	}
	st := s.podState(key, pod)
	defer func() {
		recordPodEvents(ctx, n.recorder, pod, st.events)
		st.events = st.events[:0]
	}()
	now := s.clock.Now()
	lc := s.lifecycleOf(ctx, pod, n.profile)

	if pod.DeletionTimestamp != nil {
		if !st.admitted || st.terminal || isTerminal(pod.Status.Phase) {
			return time.Time{}, s.deletePod(ctx, pod)
		}
		if st.killAt.IsZero() {
			grace := lc.scaled(time.Duration(ptr.Deref(pod.DeletionGracePeriodSeconds, 30)) * time.Second)
			d := lc.termDelay
			if d > grace {
				d, st.killedHard = grace, true
			}
			st.killAt, st.killDone = now, now.Add(d)
			st.events = append(st.events, killingEvents(pod)...)
		}
	} else if !st.admitted && (st.rejected || isTerminal(pod.Status.Phase)) {
		return time.Time{}, nil
	}

	if !st.admitted {
		admitted, err := s.admit(ctx, n, pod, st, now)
		if err != nil || !admitted {
			return now.Add(time.Second), err
		}
		if st.rejected {
			return time.Time{}, nil
		}
	} else {
		// Admission counts the cached revision: an older one would stay in
		// memory beside it.
		n.mu.Lock()
		if _, ok := n.admitted[st.key]; ok {
			n.admitted[st.key] = pod
		}
		n.mu.Unlock()
	}

	status, next := st.advance(pod, lc, s.hostIP(), now)
	if isTerminal(status.Phase) {
		s.release(n, st)
	}
	if !st.killDone.IsZero() && !now.Before(st.killDone) {
		next = time.Time{}
	}
	if err := s.writeStatus(ctx, pod, st, status); err != nil {
		return time.Time{}, err
	}
	if !st.killDone.IsZero() && !now.Before(st.killDone) {
		return time.Time{}, s.deletePod(ctx, pod)
	}
	return next, nil
}

// podState returns the state of the pod at key, starting afresh when the
// key names a new pod.
func (s *Simulator) podState(key string, pod *corev1.Pod) *podState {
	s.mu.Lock()
	st := s.pods[key]
	if st != nil && st.uid == pod.UID {
		s.mu.Unlock()
		return st
	}
	s.mu.Unlock()
	if st != nil {
		s.forgetPod(key)
	}
	st = &podState{key: key, uid: pod.UID, node: pod.Spec.NodeName}
	st.init = make([]*containerRun, len(pod.Spec.InitContainers))
	for i := range st.init {
		st.init[i] = &containerRun{}
	}
	st.regular = make([]*containerRun, len(pod.Spec.Containers))
	for i := range st.regular {
		st.regular[i] = &containerRun{}
	}
	s.mu.Lock()
	s.pods[key] = st
	s.mu.Unlock()
	return st
}

// forgetPod drops a pod the kubelet no longer has.
func (s *Simulator) forgetPod(key string) {
	s.mu.Lock()
	st := s.pods[key]
	delete(s.pods, key)
	var n *node
	if st != nil {
		n = s.nodes[st.node]
	}
	s.mu.Unlock()
	if st != nil && n != nil {
		s.release(n, st)
	}
}

// release frees the pod's IP and admission slot.
func (s *Simulator) release(n *node, st *podState) {
	if st.terminal {
		return
	}
	st.terminal = true
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.admitted, st.key)
	if st.podIP != "" && n.ips != nil {
		n.ips.release(st.podIP)
	}
}

// admit runs kubelet's admission predicates (resources, node name and
// selector, affinity, taints, host ports, OS) against the pods the node
// has admitted; a pod it rejects fails with kubelet's reason. It returns
// false, without a decision, when the node has no podCIDR yet.
func (s *Simulator) admit(ctx context.Context, n *node, pod *corev1.Pod, st *podState, now time.Time) (bool, error) {
	n.mu.Lock()
	if n.obj == nil || (n.ips == nil && !pod.Spec.HostNetwork) {
		n.mu.Unlock()
		return false, nil // the network is not ready until the node has a podCIDR
	}
	nodeObj := n.obj
	others := make([]*corev1.Pod, 0, len(n.admitted))
	for _, p := range n.admitted {
		others = append(others, p)
	}
	handler := lifecycle.NewPredicateAdmitHandler(func(context.Context, bool) (*corev1.Node, error) { return nodeObj, nil },
		lifecycle.NewAdmissionFailureHandlerStub(), func(*schedulerframework.NodeInfo, *lifecycle.PodAdmitAttributes) error { return nil })
	result := handler.Admit(ctx, &lifecycle.PodAdmitAttributes{Pod: pod, OtherPods: others, Operation: lifecycle.AddOperation})
	if result.Admit {
		if !pod.Spec.HostNetwork {
			ip, err := n.ips.allocate()
			if err != nil {
				n.mu.Unlock()
				return false, fmt.Errorf("unable to start pod %s: %w", klog.KObj(pod), err)
			}
			st.podIP = ip
		}
		n.admitted[st.key] = pod
	}
	n.mu.Unlock()
	if result.Admit {
		st.admitted, st.admittedAt = true, now
		// A usage annotation that does not parse is reported once, when
		// the pod starts; the pod runs with its profile's usage.
		if _, errs := usageOf(pod, n.profile); len(errs) > 0 {
			for _, err := range errs {
				st.events = append(st.events, podEvent{eventtype: corev1.EventTypeWarning, reason: "InvalidUsage", message: err.Error() + "; the node's profile's usage applies"})
			}
		}
		return true, nil
	}
	klog.FromContext(ctx).V(2).Info("Pod rejected", "pod", klog.KObj(pod), "node", n.name, "reason", result.Reason, "message", result.Message)
	st.events = append(st.events, podEvent{eventtype: corev1.EventTypeWarning, reason: result.Reason, message: result.Message})
	status := corev1.PodStatus{
		Phase: corev1.PodFailed, Reason: result.Reason, Message: "Pod was rejected: " + result.Message,
		QOSClass: pod.Status.QOSClass, ObservedGeneration: pod.Generation,
	}
	for _, c := range pod.Status.Conditions {
		if !kubetypes.PodConditionByKubelet(c.Type) {
			status.Conditions = append(status.Conditions, c)
		}
	}
	if err := s.writeStatus(ctx, pod, st, status); err != nil {
		return false, err
	}
	st.rejected, st.terminal = true, true
	return true, nil
}

// writeStatus patches the pod's status as kubelet's status manager does,
// unless it is what the API (or the last write) already has.
func (s *Simulator) writeStatus(ctx context.Context, pod *corev1.Pod, st *podState, status corev1.PodStatus) error {
	if st.written != nil && st.writtenRV != pod.ResourceVersion {
		st.written = nil // the cache has moved past the write: it holds it, or what replaced it
	}
	if equality.Semantic.DeepEqual(status, pod.Status) {
		return nil
	}
	if st.written != nil && st.writtenRV == pod.ResourceVersion && equality.Semantic.DeepEqual(status, *st.written) {
		return nil
	}
	_, _, _, err := statusutil.PatchPodStatus(ctx, s.client, pod.Namespace, pod.Name, pod.UID, pod.Status, status)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // deleted, or replaced by a pod of the same name: its events follow
	}
	if err != nil {
		return fmt.Errorf("unable to update the status of pod %s: %w", klog.KObj(pod), err)
	}
	st.written, st.writtenRV = &status, pod.ResourceVersion
	return nil
}

// deletePod removes a terminated pod, as kubelet's status manager does once
// its containers are gone: with no grace period, for this pod's UID only.
func (s *Simulator) deletePod(ctx context.Context, pod *corev1.Pod) error {
	err := s.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("unable to delete pod %s: %w", klog.KObj(pod), err)
	}
	return nil
}

func isTerminal(phase corev1.PodPhase) bool {
	return phase == corev1.PodSucceeded || phase == corev1.PodFailed
}

// probeDelay is how long after a container starts its probe first
// succeeds: its initialDelaySeconds.
func probeDelay(p *corev1.Probe, l podLifecycle) time.Duration {
	if p == nil {
		return 0
	}
	return l.scaled(time.Duration(p.InitialDelaySeconds) * time.Second)
}

// backOff is kubelet's delay before restarting a container after its
// exits-th exit since the back-off was reset: at once the first time, then
// 10s doubling to 5m.
func backOff(exits int, l podLifecycle) time.Duration {
	if exits <= 1 {
		return 0
	}
	d := backOffInitial
	for i := 2; i < exits && d < backOffMax; i++ {
		d *= 2
	}
	return l.scaled(min(d, backOffMax))
}

func metaTime(t time.Time) metav1.Time { return metav1.NewTime(t).Rfc3339Copy() }

// advance brings the pod's containers up to now and returns the status
// kubelet would report, and when it next changes (zero: not by itself).
func (st *podState) advance(pod *corev1.Pod, l podLifecycle, hostIP string, now time.Time) (corev1.PodStatus, time.Time) {
	var next time.Time
	// at is the time the containers are brought to: the end of a graceful
	// termination, if it is over.
	at := now
	terminating := !st.killDone.IsZero() && !now.Before(st.killDone)
	if terminating {
		at = st.killDone
	} else if !st.killDone.IsZero() {
		next = st.killDone
	}
	wake := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	status := corev1.PodStatus{
		QOSClass:           pod.Status.QOSClass,
		ObservedGeneration: pod.Generation,
		StartTime:          ptr.To(metaTime(st.admittedAt)),
		HostIP:             hostIP,
		HostIPs:            []corev1.HostIP{{IP: hostIP}},
	}
	podIP := st.podIP
	if pod.Spec.HostNetwork {
		podIP = hostIP
	}
	status.PodIP, status.PodIPs = podIP, []corev1.PodIP{{IP: podIP}}

	// starting reports the events of a container's run starting at
	// r.startAt, its image pulled from pullFrom for pull.
	starting := func(c *corev1.Container, r *containerRun, run int32, pullFrom time.Time, pull time.Duration) {
		if at.Before(pullFrom) {
			return
		}
		if pull > 0 || c.ImagePullPolicy == corev1.PullAlways {
			st.report(r, run, stepPulling, podEvent{container: c, eventtype: corev1.EventTypeNormal, reason: kubeletevents.PullingImage,
				message: fmt.Sprintf("Pulling image %q", c.Image)})
			pulled := pullFrom.Add(pull)
			if at.Before(pulled) {
				wake(pulled)
				return
			}
			st.report(r, run, stepPulled, podEvent{container: c, eventtype: corev1.EventTypeNormal, reason: kubeletevents.PulledImage,
				message: fmt.Sprintf("Successfully pulled image %q in %v (%v including waiting). Image size: %d bytes.", c.Image, pull, pull, imageSize(c.Image))})
		} else {
			st.report(r, run, stepPulled, podEvent{container: c, eventtype: corev1.EventTypeNormal, reason: kubeletevents.PulledImage,
				message: fmt.Sprintf("Container image %q already present on machine and can be accessed by the pod", c.Image)})
		}
		if at.Before(r.startAt) {
			return
		}
		st.report(r, run, stepStarted,
			podEvent{container: c, eventtype: corev1.EventTypeNormal, reason: kubeletevents.CreatedContainer, message: "Container created"},
			podEvent{container: c, eventtype: corev1.EventTypeNormal, reason: kubeletevents.StartedContainer, message: "Container started"})
	}

	running := func(cs *corev1.ContainerStatus, c *corev1.Container, r *containerRun) {
		cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metaTime(r.startAt)}}
		cs.ContainerID = containerID(pod.UID, c.Name, r.restarts)
		startedAt := r.startAt.Add(probeDelay(c.StartupProbe, l))
		readyAt := startedAt.Add(probeDelay(c.ReadinessProbe, l))
		cs.Started = ptr.To(!at.Before(startedAt))
		cs.Ready = !l.neverReady && !at.Before(readyAt)
		wake(startedAt)
		if !l.neverReady {
			wake(readyAt)
		}
	}

	// Init containers run one after the other; a sidecar (restartable
	// init container) lets the next start once it has started.
	t := st.admittedAt
	initDone := true
	for i := range pod.Spec.InitContainers {
		c, r := &pod.Spec.InitContainers[i], st.init[i]
		cs := containerStatus(c)
		switch {
		case !initDone:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
		default:
			if r.startAt.IsZero() {
				r.startAt = t.Add(l.pull + l.start)
			}
			starting(c, r, 0, r.startAt.Add(-l.pull-l.start), l.pull)
			if at.Before(r.startAt) {
				cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
				wake(r.startAt)
				initDone = false
				break
			}
			if podutil.IsRestartableInitContainer(c) {
				running(&cs, c, r)
				startedAt := r.startAt.Add(probeDelay(c.StartupProbe, l))
				if at.Before(startedAt) {
					initDone = false
				}
				t = startedAt
				break
			}
			end := r.startAt.Add(l.initRun)
			if at.Before(end) {
				running(&cs, c, r)
				cs.Ready = false
				wake(end)
				initDone = false
				break
			}
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
				StartedAt: metaTime(r.startAt), FinishedAt: metaTime(end), ContainerID: containerID(pod.UID, c.Name, r.restarts)}
			cs.ContainerID = cs.State.Terminated.ContainerID
			t = end
		}
		status.InitContainerStatuses = append(status.InitContainerStatuses, cs)
	}

	for i := range pod.Spec.Containers {
		c, r := &pod.Spec.Containers[i], st.regular[i]
		cs := containerStatus(c)
		if !initDone {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
			status.ContainerStatuses = append(status.ContainerStatuses, cs)
			continue
		}
		if r.startAt.IsZero() {
			r.startAt = t.Add(l.pull + l.start)
		}
		for iter := 0; ; iter++ {
			if r.final != nil {
				cs.State.Terminated = r.final
				cs.ContainerID = r.final.ContainerID
				break
			}
			// The events of the run starting, or of the back-off before it.
			switch run := r.restarts; {
			case !r.pendingRestart && run == 0:
				starting(c, r, 0, r.startAt.Add(-l.pull-l.start), l.pull)
			case !r.pendingRestart:
				starting(c, r, run, r.startAt, 0)
			case at.Before(r.startAt):
				if r.backOff > 0 {
					st.report(r, run+1, stepBackOff, podEvent{container: c, eventtype: corev1.EventTypeWarning, reason: kubeletevents.BackOffStartContainer,
						message: fmt.Sprintf("Back-off restarting failed container %s in pod %s", c.Name, format.Pod(pod))})
				}
			default:
				starting(c, r, run+1, r.startAt, 0)
			}
			if at.Before(r.startAt) {
				if r.lastTerm == nil {
					cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
				} else {
					cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
						Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", r.backOff, c.Name, pod.Name, pod.Namespace, pod.UID)}
				}
				wake(r.startAt)
				break
			}
			if r.pendingRestart {
				r.restarts++
				r.pendingRestart = false
			}
			end := r.startAt.Add(l.run)
			if l.run <= 0 || at.Before(end) || iter > 1000 {
				running(&cs, c, r)
				if l.run > 0 {
					wake(end)
				}
				break
			}
			term := &corev1.ContainerStateTerminated{ExitCode: l.exitCode, Reason: "Completed",
				StartedAt: metaTime(r.startAt), FinishedAt: metaTime(end), ContainerID: containerID(pod.UID, c.Name, r.restarts)}
			switch {
			case l.oomKilled:
				term.ExitCode, term.Reason = 137, "OOMKilled"
			case term.ExitCode != 0:
				term.Reason = "Error"
			}
			policy := pod.Spec.RestartPolicy
			if policy == corev1.RestartPolicyNever || (policy == corev1.RestartPolicyOnFailure && term.ExitCode == 0) {
				r.final = term
				continue
			}
			if end.Sub(r.startAt) > 2*l.scaled(backOffMax) {
				r.exits = 0
			}
			r.exits++
			r.lastTerm, r.pendingRestart = term, true
			r.backOff = backOff(r.exits, l)
			r.startAt = end.Add(r.backOff)
		}
		if r.lastTerm != nil {
			cs.LastTerminationState.Terminated = r.lastTerm
		}
		cs.RestartCount = r.restarts
		status.ContainerStatuses = append(status.ContainerStatuses, cs)
	}

	status.Phase = phase(pod, initDone, status.ContainerStatuses)
	if terminating {
		// The containers got SIGTERM at killAt and are gone by killDone.
		exit, reason := int32(0), "Completed"
		if st.killedHard {
			exit, reason = 137, "Error"
		}
		stop := func(statuses []corev1.ContainerStatus) {
			for i := range statuses {
				cs := &statuses[i]
				if cs.State.Running != nil {
					cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Reason: reason,
						StartedAt: cs.State.Running.StartedAt, FinishedAt: metaTime(st.killDone), ContainerID: cs.ContainerID}}
					cs.Ready, cs.Started = false, ptr.To(false)
				}
			}
		}
		stop(status.InitContainerStatuses)
		stop(status.ContainerStatuses)
		status.Phase = corev1.PodSucceeded
		for _, cs := range status.ContainerStatuses {
			if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
				status.Phase = corev1.PodFailed
			}
		}
		next = time.Time{}
	}
	if isTerminal(status.Phase) && !terminating {
		// Once the regular containers are done, kubelet stops the
		// sidecars: they exit when the last regular container did.
		var finished metav1.Time
		for _, cs := range status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil && t.FinishedAt.After(finished.Time) {
				finished = t.FinishedAt
			}
		}
		for i := range status.InitContainerStatuses {
			cs := &status.InitContainerStatuses[i]
			if cs.State.Running != nil {
				cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
					StartedAt: cs.State.Running.StartedAt, FinishedAt: finished, ContainerID: cs.ContainerID}}
				cs.Ready, cs.Started = false, ptr.To(false)
			}
		}
	}
	if isTerminal(status.Phase) {
		for i := range status.ContainerStatuses {
			status.ContainerStatuses[i].Ready = false
		}
	}

	// Conditions: the ones kubelet does not own are kept; its own are
	// generated by kubelet's code, with transition times kept while a
	// condition's status holds.
	for _, c := range pod.Status.Conditions {
		if !kubetypes.PodConditionByKubelet(c.Type) && c.Type != corev1.PodReadyToStartContainers {
			status.Conditions = append(status.Conditions, c)
		}
	}
	sandbox := corev1.PodCondition{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue,
		ObservedGeneration: podutil.CalculatePodConditionObservedGeneration(&pod.Status, pod.Generation, corev1.PodReadyToStartContainers)}
	if isTerminal(status.Phase) {
		sandbox.Status = corev1.ConditionFalse
	}
	all := append(append([]corev1.ContainerStatus(nil), status.InitContainerStatuses...), status.ContainerStatuses...)
	old := &pod.Status
	status.Conditions = append(status.Conditions, sandbox,
		kubeletstatus.GeneratePodInitializedCondition(pod, old, all, status.Phase))
	status.Conditions = append(status.Conditions,
		kubeletstatus.GeneratePodReadyCondition(pod, old, status.Conditions, all, status.Phase),
		kubeletstatus.GenerateContainersReadyCondition(pod, old, all, status.Phase),
		corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue,
			ObservedGeneration: podutil.CalculatePodConditionObservedGeneration(old, pod.Generation, corev1.PodScheduled)})
	for i := range status.Conditions {
		c := &status.Conditions[i]
		if !kubetypes.PodConditionByKubelet(c.Type) && c.Type != corev1.PodReadyToStartContainers {
			continue
		}
		c.LastTransitionTime = metaTime(now)
		if _, prev := podutil.GetPodConditionFromList(pod.Status.Conditions, c.Type); prev != nil && prev.Status == c.Status {
			c.LastTransitionTime = prev.LastTransitionTime
		}
	}
	if isTerminal(status.Phase) {
		next = time.Time{}
	}
	return status, next
}

// phase is kubelet's pod phase from its containers' states.
func phase(pod *corev1.Pod, initDone bool, statuses []corev1.ContainerStatus) corev1.PodPhase {
	if !initDone {
		return corev1.PodPending
	}
	var waiting, running, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.LastTerminationState.Terminated != nil:
			stopped++
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case pod.Spec.RestartPolicy == corev1.RestartPolicyAlways:
		return corev1.PodRunning
	case stopped == succeeded:
		return corev1.PodSucceeded
	case pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
		return corev1.PodFailed
	default:
		return corev1.PodRunning // OnFailure: restarting
	}
}

// containerStatus is a container's status before its state is known.
func containerStatus(c *corev1.Container) corev1.ContainerStatus {
	sum := sha256.Sum256([]byte(c.Image))
	image := c.Image
	if !strings.Contains(image, "/") {
		image = "docker.io/library/" + image
	}
	return corev1.ContainerStatus{Name: c.Name, Image: image, ImageID: strings.SplitN(image, ":", 2)[0] + "@sha256:" + hex.EncodeToString(sum[:]), Started: ptr.To(false)}
}

// containerID names a container run, stably across status computations.
func containerID(uid types.UID, name string, run int32) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d", uid, name, run))
	return "kubesim://" + hex.EncodeToString(sum[:])
}
