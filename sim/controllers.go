package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/server/healthz"
	cacheddiscovery "k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgokubescheme "k8s.io/client-go/kubernetes/scheme"
	v1core "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/keyutil"
	controllersmetrics "k8s.io/component-base/metrics/prometheus/controllers"
	"k8s.io/controller-manager/pkg/clientbuilder"
	"k8s.io/controller-manager/pkg/informerfactory"
	"k8s.io/klog/v2"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmconfig "k8s.io/kubernetes/cmd/kube-controller-manager/app/config"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	"k8s.io/kubernetes/cmd/kube-controller-manager/names"
	"k8s.io/kubernetes/pkg/controller/garbagecollector"
	serviceaccountcontroller "k8s.io/kubernetes/pkg/controller/serviceaccount"
	"k8s.io/kubernetes/pkg/serviceaccount"

	"github.com/kubesim/kubesim/internal/transform"
)

// controllerFiles are the files kube-controller-manager reads: the cluster
// CA (--root-ca-file), which the root-ca-cert-publisher puts in every
// namespace's kube-root-ca.crt and token Secrets carry, and the
// service-account signing key (--service-account-private-key-file), which
// the token controller signs legacy token Secrets with.
type controllerFiles struct {
	CA                string
	ServiceAccountKey string
}

// newControllers builds the genuine kube-controller-manager controllers as
// its Run builds them without leader election or serving (options,
// controller context, controllers), starts their informers and waits for
// them to sync; the returned function runs the controllers until ctx is
// done. shared, when set, is the shared informer factory built beforehand
// by newControllerInformers.
func newControllers(ctx, informersCtx context.Context, cfg Config, restConfig *rest.Config, files controllerFiles, shared informers.SharedInformerFactory) (func() error, error) {
	logger := klog.FromContext(ctx).WithName("kube-controller-manager").V(componentVerbosity)
	ctx = klog.NewContext(ctx, logger)
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	known, disabled, aliases := kcm.KnownControllers(), kcm.ControllersDisabledByDefault(), kcm.ControllerAliases()
	// Registering the flags sets the defaults that only flags carry (the
	// CIDR allocator type, ...), as the command line does.
	s.Flags(known, disabled, aliases)
	s.Generic.Controllers = cfg.Controllers
	s.Generic.LeaderElection.LeaderElect = false
	s.Generic.ClientConnection.QPS = cfg.QPS
	s.Generic.ClientConnection.Burst = int32(cfg.Burst)
	s.SecureServing.BindPort = 0
	s.KubeCloudShared.AllocateNodeCIDRs = true
	s.KubeCloudShared.ClusterCIDR = cfg.ClusterCIDR
	s.NodeIPAMController.ServiceCIDR = cfg.ServiceCIDR
	if cfg.NodeMonitorGracePeriod > 0 {
		s.NodeLifecycleController.NodeMonitorGracePeriod = metav1.Duration{Duration: cfg.NodeMonitorGracePeriod}
	}
	s.SAController.RootCAFile = files.CA
	s.SAController.ServiceAccountKeyFile = files.ServiceAccountKey
	if err := s.Validate(known, disabled, aliases); err != nil {
		return nil, err
	}
	restConfig = rest.CopyConfig(restConfig)
	kcmConfig := rest.CopyConfig(restConfig)
	kcmConfig.UserAgent = userAgent(kcmoptions.KubeControllerManagerUserAgent, kcmoptions.KubeControllerManagerUserAgent)
	client, err := kubernetes.NewForConfig(kcmConfig)
	if err != nil {
		return nil, err
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	c := &kcmconfig.Config{
		Client:                    client,
		Kubeconfig:                restConfig,
		EventBroadcaster:          broadcaster,
		EventRecorder:             broadcaster.NewRecorder(clientgokubescheme.Scheme, v1.EventSource{Component: kcmoptions.KubeControllerManagerUserAgent}),
		ControllerShutdownTimeout: s.ControllerShutdownTimeout,
		ComponentGlobalsRegistry:  s.ComponentGlobalsRegistry,
	}
	if err := s.ApplyTo(c, known, disabled, aliases); err != nil {
		return nil, err
	}
	completed := c.Complete()
	completed.EventBroadcaster.StartRecordingToSink(&v1core.EventSinkImpl{Interface: client.CoreV1().Events("")})

	builder := componentClientBuilder{config: restConfig, command: kcmoptions.KubeControllerManagerUserAgent}
	controllerCtx, err := createControllerContext(ctx, completed, builder, shared)
	if err != nil {
		broadcaster.Shutdown()
		return nil, err
	}
	// kube-controller-manager's Run gives the token controller its root
	// client builder, which the descriptor NewControllerDescriptors returns
	// lacks; it is built here as Run builds it, and started first.
	descriptors := kcm.NewControllerDescriptors()
	delete(descriptors, names.ServiceAccountTokenController)
	// The ValidatingAdmissionPolicy status controller is built over the
	// process's schemas of the built-in kinds (vapstatus.go).
	vapStatus := descriptors[names.ValidatingAdmissionPolicyStatusController]
	delete(descriptors, names.ValidatingAdmissionPolicyStatusController)
	// The garbage collector and the quota controller follow discovery
	// every second rather than every 30 s (discoverysync.go).
	synced, err := buildDiscoverySyncControllers(ctx, controllerCtx, descriptors)
	if err != nil {
		broadcaster.Shutdown()
		return nil, err
	}
	controllers, err := kcm.BuildControllers(ctx, controllerCtx, descriptors, nil, unservedHealthChecks{})
	if err != nil {
		broadcaster.Shutdown()
		return nil, err
	}
	controllers = append(controllers, synced...)
	if vapStatus != nil && controllerCtx.IsControllerEnabled(vapStatus) {
		c, err := newValidatingAdmissionPolicyStatusController(controllerCtx)
		if err != nil {
			broadcaster.Shutdown()
			return nil, err
		}
		controllers = append(controllers, c)
	}
	if controllerCtx.IsControllerEnabled(kcm.NewControllerDescriptors()[names.ServiceAccountTokenController]) {
		tokens, err := newTokensController(ctx, controllerCtx, builder, files)
		if err != nil {
			broadcaster.Shutdown()
			return nil, err
		}
		controllers = append([]kcm.Controller{tokens}, controllers...)
	}
	// The shared informers live as long as the cluster (the simulated
	// kubelets read them too): a controller manager rebuilt after losing
	// its lease adds its handlers to them.
	controllerCtx.InformerFactory.Start(informersCtx.Done())
	controllerCtx.ObjectOrMetadataInformerFactory.Start(ctx.Done())
	close(controllerCtx.InformersStarted)
	for typ, ok := range controllerCtx.InformerFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			broadcaster.Shutdown()
			return nil, fmt.Errorf("the controllers' %v informer did not sync", typ)
		}
	}
	return func() error {
		defer broadcaster.Shutdown()
		defer controllerCtx.InformerFactory.Shutdown()
		if !kcm.RunControllers(ctx, controllerCtx, controllers, 0, completed.ControllerShutdownTimeout) {
			return errors.New("the controllers did not stop within their shutdown timeout")
		}
		return nil
	}, nil
}

// newTokensController is kube-controller-manager's serviceaccount-token
// controller: it fills legacy token Secrets (type
// kubernetes.io/service-account-token) with a token signed by the
// service-account key, the CA and the namespace.
func newTokensController(ctx context.Context, controllerCtx kcm.ControllerContext, builder clientbuilder.ControllerClientBuilder, files controllerFiles) (kcm.Controller, error) {
	key, err := keyutil.PrivateKeyFromFile(files.ServiceAccountKey)
	if err != nil {
		return nil, fmt.Errorf("error reading key for service account token controller: %w", err)
	}
	rootCA, err := os.ReadFile(files.CA)
	if err != nil {
		return nil, err
	}
	client, err := builder.Client("tokens-controller")
	if err != nil {
		return nil, err
	}
	generator, err := serviceaccount.JWTTokenGenerator(serviceaccount.LegacyIssuer, key)
	if err != nil {
		return nil, err
	}
	c, err := serviceaccountcontroller.NewTokensController(klog.FromContext(ctx),
		controllerCtx.InformerFactory.Core().V1().ServiceAccounts(),
		controllerCtx.InformerFactory.Core().V1().Secrets(),
		client,
		serviceaccountcontroller.TokensControllerOptions{TokenGenerator: generator, RootCA: rootCA})
	if err != nil {
		return nil, fmt.Errorf("error creating Tokens controller: %w", err)
	}
	workers := int(controllerCtx.ComponentConfig.SAController.ConcurrentSATokenSyncs)
	return controllerLoop{name: names.ServiceAccountTokenController, run: func(ctx context.Context) { c.Run(ctx, workers) }}, nil
}

// controllerLoop is a kube-controller-manager Controller running run.
type controllerLoop struct {
	name string
	run  func(context.Context)
}

func (c controllerLoop) Name() string            { return c.name }
func (c controllerLoop) Run(ctx context.Context) { c.run(ctx) }

// newSharedInformers is kube-controller-manager's shared informer factory,
// as CreateControllerContext builds it.
func newSharedInformers(builder clientbuilder.ControllerClientBuilder, resync time.Duration, transform cache.TransformFunc) (informers.SharedInformerFactory, error) {
	versionedClient, err := builder.Client("shared-informers")
	if err != nil {
		return nil, err
	}
	informerName, err := cache.NewInformerName(kcmoptions.KubeControllerManagerUserAgent)
	if err != nil {
		informerName, err = cache.NewInformerName(fmt.Sprintf("%s-%d", kcmoptions.KubeControllerManagerUserAgent, informerNames.Add(1)))
	}
	if err != nil {
		return nil, err
	}
	return informers.NewSharedInformerFactoryWithOptions(versionedClient, resync, informers.WithTransform(transform), informers.WithInformerName(informerName)), nil
}

// newControllerInformers builds kube-controller-manager's shared informer
// factory ahead of the controllers, with its default resync period, so that
// the simulated kubelets watch pods and nodes through it: one cache of
// every pod in the process rather than one each. Its pods are interned
// with the scheduler's.
func newControllerInformers(restConfig *rest.Config, pods *podInterner) (informers.SharedInformerFactory, error) {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	c := &kcmconfig.Config{}
	c.ComponentConfig.Generic.MinResyncPeriod = s.Generic.MinResyncPeriod
	builder := componentClientBuilder{config: restConfig, command: kcmoptions.KubeControllerManagerUserAgent}
	return newSharedInformers(builder, kcm.ResyncPeriod(c.Complete())(), pods.transform)
}

// informerNames numbers the informer names of the clusters of one process.
var informerNames atomic.Int64

// createControllerContext is kube-controller-manager's
// CreateControllerContext, but for the name of the shared informers: client-go
// allows a name once per process (for metrics), and several clusters run
// in one test binary. The first is "kube-controller-manager", as upstream's.
// sharedInformers is non-nil when the factory was built beforehand, by
// newControllerInformers.
func createControllerContext(ctx context.Context, s *kcmconfig.CompletedConfig, builder clientbuilder.ControllerClientBuilder, sharedInformers informers.SharedInformerFactory) (kcm.ControllerContext, error) {
	if sharedInformers == nil {
		var err error
		if sharedInformers, err = newSharedInformers(builder, kcm.ResyncPeriod(s)(), transform.DropManagedFields); err != nil {
			return kcm.ControllerContext{}, err
		}
	}
	metadataConfig, err := builder.Config("metadata-informers")
	if err != nil {
		return kcm.ControllerContext{}, err
	}
	metadataClient, err := metadata.NewForConfig(metadataConfig)
	if err != nil {
		return kcm.ControllerContext{}, err
	}
	metadataInformers := metadatainformer.NewSharedInformerFactoryWithOptions(metadataClient, kcm.ResyncPeriod(s)(), metadatainformer.WithTransform(transform.DropManagedFields))
	discoveryClient, err := builder.DiscoveryClient("controller-discovery")
	if err != nil {
		return kcm.ControllerContext{}, err
	}
	restMapper := restmapper.NewDeferredDiscoveryRESTMapper(cacheddiscovery.NewMemCacheClient(discoveryClient))
	go wait.Until(restMapper.Reset, 30*time.Second, ctx.Done())

	controllerCtx := kcm.ControllerContext{
		ClientBuilder:                   builder,
		InformerFactory:                 sharedInformers,
		ObjectOrMetadataInformerFactory: informerfactory.NewInformerFactory(sharedInformers, metadataInformers),
		ComponentConfig:                 s.ComponentConfig,
		RESTMapper:                      restMapper,
		InformersStarted:                make(chan struct{}),
		ResyncPeriod:                    kcm.ResyncPeriod(s),
		ControllerManagerMetrics:        controllersmetrics.NewControllerManagerMetrics(kcmoptions.KubeControllerManagerUserAgent),
	}
	if controllerCtx.ComponentConfig.GarbageCollectorController.EnableGarbageCollector &&
		controllerCtx.IsControllerEnabled(kcm.NewControllerDescriptors()[names.GarbageCollectorController]) {
		ignored := make(map[schema.GroupResource]struct{})
		for _, r := range controllerCtx.ComponentConfig.GarbageCollectorController.GCIgnoredResources {
			ignored[schema.GroupResource{Group: r.Group, Resource: r.Resource}] = struct{}{}
		}
		controllerCtx.GraphBuilder = garbagecollector.NewDependencyGraphBuilder(ctx, metadataClient, controllerCtx.RESTMapper, ignored,
			controllerCtx.ObjectOrMetadataInformerFactory, controllerCtx.InformersStarted)
	}
	controllersmetrics.Register()
	return controllerCtx, nil
}

// unservedHealthChecks takes the controllers' health checks, which
// kube-controller-manager serves on its /healthz and kubesim serves
// nowhere. (A MutableHealthzHandler took a stack trace per check it
// registered, 4 ms of CPU each start of a cluster.)
type unservedHealthChecks struct{}

func (unservedHealthChecks) AddHealthChecker(...healthz.HealthChecker) {}
