package sim

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/latest"
	"k8s.io/kubernetes/pkg/scheduler/profile"
)

// newScheduler builds the genuine kube-scheduler (k8s.io/kubernetes/pkg/scheduler)
// as kube-scheduler's Setup builds it, starts its informers and waits for them
// to sync; the returned function schedules until ctx is done. Its pods are
// interned with the controller manager's (pods).
func newScheduler(ctx context.Context, cfg Config, restConfig *rest.Config, pods *podInterner, ex *explainer) (func() error, error) {
	logger := klog.FromContext(ctx).WithName("kube-scheduler").V(componentVerbosity)
	ctx = klog.NewContext(ctx, logger)
	cc, err := latest.Default()
	if err != nil {
		return nil, err
	}
	if cfg.SchedulerConfigFile != "" {
		if cc, err = options.LoadConfigFromFile(logger, cfg.SchedulerConfigFile); err != nil {
			return nil, err
		}
	}
	restConfig = rest.CopyConfig(restConfig)
	restConfig.UserAgent = userAgent("kube-scheduler", "scheduler")
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	informerFactory := scheduler.NewInformerFactory(client, 0, nil)
	// The scheduler's pod informer drops managed fields, as upstream's, and
	// shares each pod revision with the controller manager's cache.
	if err := informerFactory.Core().V1().Pods().Informer().SetTransform(pods.transform); err != nil {
		return nil, err
	}
	// Its nodes' labels are canonical strings, as the controller manager's.
	if err := informerFactory.Core().V1().Nodes().Informer().SetTransform(pods.transform); err != nil {
		return nil, err
	}
	dynInformerFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, corev1.NamespaceAll, nil)
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	sched, err := scheduler.New(ctx, client, informerFactory, dynInformerFactory,
		profile.NewRecorderFactory(broadcaster),
		scheduler.WithComponentConfigVersion(cc.TypeMeta.APIVersion),
		scheduler.WithKubeConfig(restConfig),
		scheduler.WithProfiles(cc.Profiles...),
		scheduler.WithPercentageOfNodesToScore(cc.PercentageOfNodesToScore),
		scheduler.WithPodMaxBackoffSeconds(cc.PodMaxBackoffSeconds),
		scheduler.WithPodInitialBackoffSeconds(cc.PodInitialBackoffSeconds),
		scheduler.WithExtenders(cc.Extenders...),
		scheduler.WithParallelism(cc.Parallelism),
	)
	if err != nil {
		return nil, err
	}
	ex.wrap(sched)
	if _, err := informerFactory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				ex.forget(p.Namespace, p.Name)
			}
		},
	}); err != nil {
		return nil, err
	}
	broadcaster.StartRecordingToSink(ctx.Done())
	// As kube-scheduler's Run: informers, their caches, their handlers.
	informerFactory.Start(ctx.Done())
	dynInformerFactory.Start(ctx.Done())
	for typ, ok := range informerFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, fmt.Errorf("the scheduler's %v informer did not sync", typ)
		}
	}
	dynInformerFactory.WaitForCacheSync(ctx.Done())
	return func() error {
		defer broadcaster.Shutdown()
		defer informerFactory.Shutdown()
		defer dynInformerFactory.Shutdown()
		// As kube-scheduler's Run, the event handlers have seen the
		// informers' initial lists before it schedules. (It polls every
		// 100 ms; Start does not wait for it.)
		if err := sched.WaitForHandlersSync(ctx); err != nil {
			return err
		}
		sched.Run(ctx)
		return nil
	}, nil
}
