package apiserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
	serverfilters "k8s.io/apiserver/pkg/server/filters"
	utilflowcontrol "k8s.io/apiserver/pkg/util/flowcontrol"
	flowcontrolrequest "k8s.io/apiserver/pkg/util/flowcontrol/request"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// isLongRunning tells the requests that are long-running (watches, proxies,
// exec, attach, logs, port-forwards), which no request timeout or
// concurrency seat holds for their whole life, as kube-apiserver's
// LongRunningFunc does.
var isLongRunning = serverfilters.BasicLongRunningRequestCheck(sets.NewString("watch", "proxy"), sets.NewString("attach", "exec", "proxy", "log", "portforward"))

// Defaults of kube-apiserver's flags (k8s.io/apiserver's ServerRunOptions).
const (
	defaultRequestTimeout              = 60 * time.Second
	defaultMaxRequestsInFlight         = 400
	defaultMaxMutatingRequestsInFlight = 200
	// objectCountPeriod is how often the stored objects are counted for the
	// work estimates of lists, as kube-apiserver's storage does each minute.
	objectCountPeriod = time.Minute
	// objectSizeSample is how many objects of a resource are measured for
	// its estimated average size.
	objectSizeSample = 100
)

// defaultFlowControl fills in and checks cfg's request limits as
// kube-apiserver's ServerRunOptions validate them.
func defaultFlowControl(cfg *Config) error {
	if cfg.RequestTimeout < 0 {
		return errors.New("request timeout can not be negative")
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	if cfg.MaxRequestsInFlight == 0 {
		cfg.MaxRequestsInFlight = defaultMaxRequestsInFlight
	}
	if cfg.MaxMutatingRequestsInFlight == 0 {
		cfg.MaxMutatingRequestsInFlight = defaultMaxMutatingRequestsInFlight
	}
	if !cfg.DisablePriorityAndFairness && serverConcurrencyLimit(*cfg) <= 0 {
		return errors.New("with API Priority and Fairness the max-in-flight limits must sum to a positive number: the server's concurrency limit")
	}
	return nil
}

// serverConcurrencyLimit is the concurrency API Priority and Fairness
// shares among the priority levels: the sum of the max-in-flight limits.
func serverConcurrencyLimit(cfg Config) int {
	return inFlightLimit(cfg.MaxRequestsInFlight) + inFlightLimit(cfg.MaxMutatingRequestsInFlight)
}

// inFlightLimit is a max-in-flight limit as WithMaxInFlightLimit takes it:
// 0 for none.
func inFlightLimit(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

// newFlowControl builds the server's API Priority and Fairness over its
// informers and its loopback client, as kube-apiserver does
// (utilflowcontrol.New with the sum of the max-in-flight limits), unless
// the configuration turns it off.
func (s *Server) newFlowControl(loopback kubernetes.Interface) {
	if s.cfg.DisablePriorityAndFairness {
		return
	}
	s.objectCounts = flowcontrolrequest.NewStorageObjectCountTracker()
	s.flowControl = utilflowcontrol.New(s.informers, loopback.FlowcontrolV1(), serverConcurrencyLimit(s.cfg))
}

// withFlowControl wraps h in API Priority and Fairness, or in the
// max-in-flight limits without it, as kube-apiserver's handler chain does:
// a request waits for a seat of its priority level, at most a quarter of
// the request timeout, or is answered 429 with Retry-After; each answer
// names the FlowSchema and PriorityLevelConfiguration that classified it
// (X-Kubernetes-PF-FlowSchema-UID, X-Kubernetes-PF-PriorityLevel-UID).
func (s *Server) withFlowControl(h http.Handler) http.Handler {
	if s.flowControl == nil {
		return serverfilters.WithMaxInFlightLimit(h, inFlightLimit(s.cfg.MaxRequestsInFlight), inFlightLimit(s.cfg.MaxMutatingRequestsInFlight), isLongRunning)
	}
	estimate := flowcontrolrequest.NewWorkEstimator(s.objectCounts.Get, s.flowControl.GetInterestedWatchCount, flowcontrolrequest.DefaultWorkEstimatorConfig(), s.flowControl.GetMaxSeats)
	return serverfilters.WithPriorityAndFairness(h, isLongRunning, s.flowControl, estimate, s.cfg.RequestTimeout/4)
}

// runFlowControl runs, until the server's lifetime ends, what
// kube-apiserver's post-start hooks priority-and-fairness-config-consumer,
// priority-and-fairness-filter (or max-in-flight-filter) and
// storage-object-count-tracker-hook run: the configuration controller,
// which also writes the FlowSchemas' status conditions, the concurrency
// watermarks, and the stored objects' counts.
func (s *Server) runFlowControl() {
	stop := s.lifetime.Done()
	if s.flowControl == nil {
		serverfilters.StartMaxInFlightWatermarkMaintenance(stop)
		return
	}
	go func() {
		if err := s.flowControl.Run(stop); err != nil {
			klog.ErrorS(err, "API Priority and Fairness stopped")
		}
	}()
	serverfilters.StartPriorityAndFairnessWatermarkMaintenance(stop)
	go s.objectCounts.RunUntil(stop)
	go s.countObjects(s.lifetime)
}

// countObjects counts each resource's stored objects and estimates their
// average size, at once and then every objectCountPeriod until ctx ends,
// for the work estimates of lists.
func (s *Server) countObjects(ctx context.Context) {
	t := s.cfg.Clock.NewTicker(objectCountPeriod)
	defer t.Stop()
	for {
		for gr, st := range s.registry.Stores {
			stats, err := st.Stats(ctx, objectSizeSample)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				klog.FromContext(ctx).Error(err, "Counting stored objects", "resource", gr)
				continue
			}
			s.objectCounts.Set(gr.String(), stats)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}
