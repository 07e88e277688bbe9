package sim

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Lease timings of kube-scheduler's and kube-controller-manager's
// --leader-elect-* defaults.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
	// rebuildBackoff paces rebuilds that fail (storage still away).
	rebuildBackoff = 5 * time.Second
)

// leaderElected returns comp.run itself without leader election; with it,
// a function that waits for the lease kube-system/NAME and runs the
// component while it holds it. A component that loses its lease (its
// storage away longer than the renew deadline, another replica ahead)
// stops, as the upstream component exits; here it is then rebuilt and
// stands for election again, as the restarted component would, while the
// API server goes on serving. Informers are started and synced before, so
// a standby replica takes over at once.
func (c *Cluster) leaderElected(ctx context.Context, cfg Config, comp *component) func() error {
	if !cfg.LeaderElection {
		return comp.run
	}
	logger := klog.FromContext(ctx).WithValues("lease", "kube-system/"+comp.name, "identity", cfg.LeaderElectionIdentity)
	return func() error {
		for term := 0; ; term++ {
			if term > 0 && !c.rebuild(ctx, logger, comp) {
				return nil
			}
			lost, err := c.lead(ctx, cfg, comp, logger)
			if !lost || ctx.Err() != nil {
				return err
			}
			logger.Info("Lost the lease: the component stopped; rebuilding it to stand for election again", "err", err)
		}
	}
}

// rebuild builds comp for a new term, retrying until it succeeds or ctx
// is done (false).
func (c *Cluster) rebuild(ctx context.Context, logger klog.Logger, comp *component) bool {
	for {
		termCtx, cancel := context.WithCancel(ctx)
		restConfig, run, err := comp.build(termCtx)
		if err == nil {
			comp.cfg, comp.run, comp.cancel = restConfig, run, cancel
			return true
		}
		cancel()
		logger.Error(err, "Unable to rebuild the component; retrying", "after", rebuildBackoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(rebuildBackoff):
		}
	}
}

// lead stands for election and runs comp while it leads. It returns
// whether the lease was lost (rather than ctx done), and the component's
// error.
func (c *Cluster) lead(ctx context.Context, cfg Config, comp *component, logger klog.Logger) (lost bool, err error) {
	leConfig := rest.CopyConfig(comp.cfg)
	leConfig.UserAgent = userAgent(comp.name, "leader-election")
	client, err := kubernetes.NewForConfig(leConfig)
	if err != nil {
		return false, err
	}
	leading, elected := make(chan struct{}), make(chan struct{})
	leCtx, stopElection := context.WithCancel(ctx)
	defer stopElection()
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1ObjectMeta("kube-system", comp.name),
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.LeaderElectionIdentity},
		},
		LeaseDuration:   leaseDuration,
		RenewDeadline:   renewDeadline,
		RetryPeriod:     retryPeriod,
		ReleaseOnCancel: true,
		Name:            comp.name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				logger.Info("Acquired the lease")
				close(leading)
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil && leCtx.Err() == nil {
					lost = true
				}
				// The component's term ends with its leadership.
				comp.cancel()
			},
		},
	})
	if err != nil {
		return false, err
	}
	go func() {
		defer close(elected)
		le.Run(leCtx)
	}()
	select {
	case <-leading:
		err = comp.run()
		// The component ended (its term, or an error): give the lease up.
		stopElection()
	case <-elected:
		comp.cancel()
	}
	<-elected
	return lost, err
}

func metav1ObjectMeta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
