package sim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apiserver/pkg/quota/v1/generic"
	"k8s.io/client-go/metadata"
	"k8s.io/klog/v2"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	"k8s.io/kubernetes/cmd/kube-controller-manager/names"
	"k8s.io/kubernetes/pkg/controller"
	"k8s.io/kubernetes/pkg/controller/garbagecollector"
	resourcequotacontroller "k8s.io/kubernetes/pkg/controller/resourcequota"
	quotainstall "k8s.io/kubernetes/pkg/quota/v1/install"
)

// discoverySyncPeriod is how often the garbage collector and the
// ResourceQuota controller read discovery for resources that appeared or
// went away. kube-controller-manager hard-codes 30 s: a CRD installed after
// start has its objects followed up to 30 s later, and until then an owner
// of that kind is a virtual node of the collector's graph, retried with
// back-off, so its dependents outlive it. A test fixture should not make
// tests wait for a timer: kubesim reads discovery every second. A read
// that finds the same resources changes nothing (both controllers compare
// the set and return); one that finds a change resyncs the monitors as
// upstream does, waiting at most this period for the new caches, as
// upstream waits at most its own period (on a timeout both log it and go
// on; the new informers keep syncing in the background).
const discoverySyncPeriod = time.Second

// discoverySyncControllers are the controllers that kubesim builds instead
// of their upstream descriptors: the garbage collector and the
// ResourceQuota controller, the genuine controllers wired as
// kube-controller-manager's core.go wires them, but for the period of their
// discovery sync.
var discoverySyncControllers = []struct {
	name  string
	build func(ctx context.Context, controllerCtx kcm.ControllerContext, name string) (kcm.Controller, error)
}{
	{names.GarbageCollectorController, newGarbageCollector},
	{names.ResourceQuotaController, newResourceQuotaController},
}

// buildDiscoverySyncControllers takes the discovery-syncing controllers out
// of descriptors and builds those that are enabled, as
// ControllerDescriptor.BuildController builds a controller.
func buildDiscoverySyncControllers(ctx context.Context, controllerCtx kcm.ControllerContext, descriptors map[string]*kcm.ControllerDescriptor) ([]kcm.Controller, error) {
	var controllers []kcm.Controller
	for _, c := range discoverySyncControllers {
		descriptor := descriptors[c.name]
		delete(descriptors, c.name)
		if descriptor == nil || !controllerCtx.IsControllerEnabled(descriptor) {
			continue
		}
		logger := klog.FromContext(ctx)
		ctrl, err := c.build(klog.NewContext(ctx, klog.LoggerWithName(logger, c.name)), controllerCtx, c.name)
		if err != nil {
			logger.Error(err, "Error initializing a controller", "controller", c.name)
			return nil, err
		}
		if ctrl == nil {
			logger.Info("Warning: skipping controller", "controller", c.name)
			continue
		}
		controllers = append(controllers, ctrl)
	}
	return controllers, nil
}

// newGarbageCollector is kube-controller-manager's
// newGarbageCollectorController with discoverySyncPeriod.
func newGarbageCollector(ctx context.Context, controllerCtx kcm.ControllerContext, name string) (kcm.Controller, error) {
	if !controllerCtx.ComponentConfig.GarbageCollectorController.EnableGarbageCollector {
		return nil, nil
	}
	client, err := controllerCtx.NewClient("generic-garbage-collector")
	if err != nil {
		return nil, err
	}
	discoveryClient, err := controllerCtx.ClientBuilder.DiscoveryClient("generic-garbage-collector")
	if err != nil {
		return nil, fmt.Errorf("failed to create the discovery client: %w", err)
	}
	config, err := controllerCtx.NewClientConfig("generic-garbage-collector")
	if err != nil {
		return nil, err
	}
	// As upstream: each deletion takes two calls.
	config.QPS *= 2
	metadataClient, err := metadata.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	gc, err := garbagecollector.NewComposedGarbageCollector(ctx, client, metadataClient, controllerCtx.RESTMapper, controllerCtx.GraphBuilder)
	if err != nil {
		return nil, fmt.Errorf("failed to init the generic garbage collector: %w", err)
	}
	workers := int(controllerCtx.ComponentConfig.GarbageCollectorController.ConcurrentGCSyncs)
	// Upstream's wait for the first sync of every monitor, before the
	// workers start.
	const initialSyncTimeout = 30 * time.Second
	return controllerLoop{name: name, run: concurrently(
		func(ctx context.Context) { gc.Run(ctx, workers, initialSyncTimeout) },
		func(ctx context.Context) { gc.Sync(ctx, discoveryClient, discoverySyncPeriod) },
	)}, nil
}

// newResourceQuotaController is kube-controller-manager's
// newResourceQuotaController with discoverySyncPeriod.
func newResourceQuotaController(ctx context.Context, controllerCtx kcm.ControllerContext, name string) (kcm.Controller, error) {
	client, err := controllerCtx.NewClient("resourcequota-controller")
	if err != nil {
		return nil, err
	}
	discoveryClient, err := controllerCtx.ClientBuilder.DiscoveryClient("resourcequota-controller")
	if err != nil {
		return nil, fmt.Errorf("failed to create the discovery client: %w", err)
	}
	discoveryFunc := discoveryClient.ServerPreferredNamespacedResources
	listerFuncForResource := generic.ListerFuncForResourceFunc(controllerCtx.InformerFactory.ForResource)
	quotaConfiguration, err := quotainstall.NewQuotaConfigurationForControllers(listerFuncForResource, controllerCtx.InformerFactory)
	if err != nil {
		return nil, err
	}
	rq, err := resourcequotacontroller.NewController(ctx, &resourcequotacontroller.ControllerOptions{
		QuotaClient:               client.CoreV1(),
		ResourceQuotaInformer:     controllerCtx.InformerFactory.Core().V1().ResourceQuotas(),
		ResyncPeriod:              controller.StaticResyncPeriodFunc(controllerCtx.ComponentConfig.ResourceQuotaController.ResourceQuotaSyncPeriod.Duration),
		InformerFactory:           controllerCtx.ObjectOrMetadataInformerFactory,
		ReplenishmentResyncPeriod: controllerCtx.ResyncPeriod,
		DiscoveryFunc:             discoveryFunc,
		IgnoredResourcesFunc:      quotaConfiguration.IgnoredResources,
		InformersStarted:          controllerCtx.InformersStarted,
		Registry:                  generic.NewRegistry(quotaConfiguration.Evaluators()),
		UpdateFilter:              quotainstall.DefaultUpdateFilter(),
	})
	if err != nil {
		return nil, err
	}
	workers := int(controllerCtx.ComponentConfig.ResourceQuotaController.ConcurrentResourceQuotaSyncs)
	return controllerLoop{name: name, run: concurrently(
		func(ctx context.Context) { rq.Run(ctx, workers) },
		func(ctx context.Context) { rq.Sync(ctx, discoveryFunc, discoverySyncPeriod) },
	)}, nil
}

// concurrently runs every fn until all return, as kube-controller-manager's
// concurrentRun.
func concurrently(fns ...func(context.Context)) func(context.Context) {
	return func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, fn := range fns {
			wg.Go(func() { fn(ctx) })
		}
		wg.Wait()
	}
}
