package sim

import (
	"context"
	"errors"
	"fmt"
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
)

// leaderElected returns run itself without leader election; with it, a
// function that waits for the lease kube-system/name, runs run while it
// holds it, and stops the whole cluster if it loses it, as the upstream
// components exit then. Informers are started and synced before, so a
// standby replica takes over at once.
func (c *Cluster) leaderElected(ctx context.Context, cfg Config, restConfig *rest.Config, name string, run func() error) func() error {
	if !cfg.LeaderElection {
		return run
	}
	return func() error {
		leConfig := rest.CopyConfig(restConfig)
		leConfig.UserAgent = userAgent(name, "leader-election")
		client, err := kubernetes.NewForConfig(leConfig)
		if err != nil {
			return err
		}
		identity := cfg.LeaderElectionIdentity
		logger := klog.FromContext(ctx).WithValues("lease", "kube-system/"+name, "identity", identity)
		leading, elected := make(chan struct{}), make(chan struct{})
		var lost error
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1ObjectMeta("kube-system", name),
				Client:     client.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
			},
			LeaseDuration:   leaseDuration,
			RenewDeadline:   renewDeadline,
			RetryPeriod:     retryPeriod,
			ReleaseOnCancel: true,
			Name:            name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					logger.Info("Acquired the lease")
					close(leading)
				},
				OnStoppedLeading: func() {
					if ctx.Err() == nil {
						lost = fmt.Errorf("%s lost its lease kube-system/%s", name, name)
						logger.Error(lost, "Stopping the cluster, as the component exits")
						c.cancel()
					}
				},
			},
		})
		if err != nil {
			return err
		}
		// Run returns once the lease is lost or ctx is done; the component
		// runs until the cluster's ctx is done, which losing the lease
		// brings about.
		go func() {
			defer close(elected)
			le.Run(ctx)
		}()
		select {
		case <-leading:
			err = run()
		case <-elected:
			select {
			case <-leading:
				err = run()
			default:
			}
		}
		<-elected
		return errors.Join(err, lost)
	}
}

func metav1ObjectMeta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
