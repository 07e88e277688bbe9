package sim

import (
	"context"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	clientgokubescheme "k8s.io/client-go/kubernetes/scheme"
	v1core "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/controller-manager/pkg/clientbuilder"
	controllerhealthz "k8s.io/controller-manager/pkg/healthz"
	"k8s.io/klog/v2"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmconfig "k8s.io/kubernetes/cmd/kube-controller-manager/app/config"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

// newControllers builds the genuine kube-controller-manager controllers as
// its Run builds them without leader election or serving (options,
// controller context, controllers), starts their informers and waits for
// them to sync; the returned function runs the controllers until ctx is
// done. The service-account token controller (legacy token Secrets) is not
// run: it needs the signing key of TokenRequest.
func newControllers(ctx context.Context, cfg Config, restConfig *rest.Config, caFile string) (func() error, error) {
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
	s.SAController.RootCAFile = caFile
	if err := s.Validate(known, disabled, aliases); err != nil {
		return nil, err
	}
	restConfig = rest.CopyConfig(restConfig)
	client, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(restConfig), kcmoptions.KubeControllerManagerUserAgent))
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

	builder := clientbuilder.SimpleControllerClientBuilder{ClientConfig: restConfig}
	controllerCtx, err := kcm.CreateControllerContext(ctx, completed, builder, builder)
	if err != nil {
		broadcaster.Shutdown()
		return nil, err
	}
	controllers, err := kcm.BuildControllers(ctx, controllerCtx, kcm.NewControllerDescriptors(), nil, controllerhealthz.NewMutableHealthzHandler())
	if err != nil {
		broadcaster.Shutdown()
		return nil, err
	}
	controllerCtx.InformerFactory.Start(ctx.Done())
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
