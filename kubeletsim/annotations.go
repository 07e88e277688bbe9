package kubeletsim

// Pod annotations override the node pool's lifecycle profile for one pod.
// Every one is documented in the README.
const (
	// AnnotationRunDuration is how long the pod's containers run before
	// they exit (a Go duration: "30s"); "0" runs them until deleted.
	AnnotationRunDuration = "kubesim.io/run-duration"
	// AnnotationExitCode is the code they exit with ("1"): Jobs complete
	// or fail, restartPolicy Always and OnFailure restart them with
	// kubelet's back-off (CrashLoopBackOff).
	AnnotationExitCode = "kubesim.io/exit-code"
	// AnnotationOOMKilled ("true") makes containers end as OOMKilled, with
	// exit code 137, after their run duration.
	AnnotationOOMKilled = "kubesim.io/oom-killed"
	// AnnotationNeverReady ("true") keeps containers unready while they
	// run, as a failing readiness probe does.
	AnnotationNeverReady = "kubesim.io/never-ready"
	// AnnotationImagePullDelay and AnnotationStartDelay override the
	// profile's delays before each container starts.
	AnnotationImagePullDelay = "kubesim.io/image-pull-delay"
	AnnotationStartDelay     = "kubesim.io/start-delay"
	// AnnotationInitContainerDuration overrides how long each init
	// container runs.
	AnnotationInitContainerDuration = "kubesim.io/init-container-duration"
	// AnnotationTerminationDelay is how long containers take to exit after
	// SIGTERM (capped by the grace period, after which they are killed).
	AnnotationTerminationDelay = "kubesim.io/termination-delay"
	// AnnotationLogs replaces the profile's log lines (one per line).
	AnnotationLogs = "kubesim.io/logs"
)

// Node annotations and labels kubeletsim sets or reads.
const (
	// LabelNodePool names the pool a simulated node belongs to.
	LabelNodePool = "kubesim.io/node-pool"
	// LabelNodeType is "simulated" on simulated nodes and "real" on real
	// ones (package realnode), for nodeSelectors.
	LabelNodeType = "kubesim.io/node-type"
	// AnnotationFault injects a fault into a simulated node; removing it
	// heals the node. Values are the Fault constants.
	AnnotationFault = "kubesim.io/fault"
)

// Fault is a failure injected into a simulated node.
type Fault string

const (
	// FaultNone heals the node.
	FaultNone Fault = ""
	// FaultNotReady makes the kubelet report Ready=False (its container
	// runtime is down): the node lifecycle controller taints the node
	// not-ready and evicts its pods.
	FaultNotReady Fault = "NotReady"
	// FaultStopped stops the kubelet: no lease renewals, status updates or
	// pod work. After the lease expires the node lifecycle controller
	// marks the node Unknown, taints it unreachable and evicts its pods.
	FaultStopped Fault = "Stopped"
)
