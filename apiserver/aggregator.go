package apiserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	discoveryendpoint "k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
	"k8s.io/component-base/metrics/legacyregistry"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	apiregistrationv1helper "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1/helper"
	aggregatorapiserver "k8s.io/kube-aggregator/pkg/apiserver"
	aggregatorclient "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	aggregatorinformers "k8s.io/kube-aggregator/pkg/client/informers/externalversions"
	"k8s.io/kube-aggregator/pkg/controllers/autoregister"
	localavailability "k8s.io/kube-aggregator/pkg/controllers/status/local"
	availabilitymetrics "k8s.io/kube-aggregator/pkg/controllers/status/metrics"
	remoteavailability "k8s.io/kube-aggregator/pkg/controllers/status/remote"
	controlplaneapiserver "k8s.io/kubernetes/pkg/controlplane/apiserver"
	"k8s.io/kubernetes/pkg/controlplane/controller/clusterauthenticationtrust"
	"k8s.io/kubernetes/pkg/controlplane/controller/crdregistration"

	"github.com/kubesim/kubesim/internal/pki"
)

// apiVersionPriorities are kube-apiserver's APIService priorities
// (cmd/kube-apiserver/app/aggregator.go's apiVersionPriorities, which is
// not exported: the generic servers' priorities and these).
func apiVersionPriorities() map[schema.GroupVersion]controlplaneapiserver.APIServicePriority {
	p := controlplaneapiserver.DefaultGenericAPIServicePriorities()
	for gv, v := range map[schema.GroupVersion]controlplaneapiserver.APIServicePriority{
		{Group: "", Version: "v1"}:                        {Group: 18000, Version: 1},
		{Group: "apps", Version: "v1"}:                    {Group: 17800, Version: 15},
		{Group: "autoscaling", Version: "v1"}:             {Group: 17500, Version: 15},
		{Group: "autoscaling", Version: "v2"}:             {Group: 17500, Version: 30},
		{Group: "autoscaling", Version: "v2beta1"}:        {Group: 17500, Version: 9},
		{Group: "autoscaling", Version: "v2beta2"}:        {Group: 17500, Version: 1},
		{Group: "batch", Version: "v1"}:                   {Group: 17400, Version: 15},
		{Group: "batch", Version: "v1beta1"}:              {Group: 17400, Version: 9},
		{Group: "batch", Version: "v2alpha1"}:             {Group: 17400, Version: 9},
		{Group: "networking.k8s.io", Version: "v1"}:       {Group: 17200, Version: 15},
		{Group: "networking.k8s.io", Version: "v1beta1"}:  {Group: 17200, Version: 9},
		{Group: "policy", Version: "v1"}:                  {Group: 17100, Version: 15},
		{Group: "policy", Version: "v1beta1"}:             {Group: 17100, Version: 9},
		{Group: "storage.k8s.io", Version: "v1"}:          {Group: 16800, Version: 15},
		{Group: "storage.k8s.io", Version: "v1beta1"}:     {Group: 16800, Version: 9},
		{Group: "storage.k8s.io", Version: "v1alpha1"}:    {Group: 16800, Version: 1},
		{Group: "scheduling.k8s.io", Version: "v1"}:       {Group: 16600, Version: 15},
		{Group: "scheduling.k8s.io", Version: "v1beta1"}:  {Group: 16600, Version: 9},
		{Group: "scheduling.k8s.io", Version: "v1alpha3"}: {Group: 16600, Version: 3},
		{Group: "node.k8s.io", Version: "v1"}:             {Group: 16300, Version: 15},
		{Group: "node.k8s.io", Version: "v1alpha1"}:       {Group: 16300, Version: 1},
		{Group: "node.k8s.io", Version: "v1beta1"}:        {Group: 16300, Version: 9},
		{Group: "resource.k8s.io", Version: "v1"}:         {Group: 16200, Version: 21},
		{Group: "resource.k8s.io", Version: "v1beta2"}:    {Group: 16200, Version: 15},
		{Group: "resource.k8s.io", Version: "v1beta1"}:    {Group: 16200, Version: 9},
		{Group: "resource.k8s.io", Version: "v1alpha3"}:   {Group: 16200, Version: 1},
		{Group: "lifecycle.k8s.io", Version: "v1alpha1"}:  {Group: 15700, Version: 1},
	} {
		p[gv] = v
	}
	return p
}

// availabilityMetrics are the availability controllers' metrics, in the
// process's legacy registry once, as kube-aggregator registers them.
var (
	availabilityMetrics     = availabilitymetrics.New()
	availabilityMetricsOnce sync.Once
)

// aggregator runs kube-aggregator's controllers of the server's own
// APIServices, as kube-apiserver's aggregator does: the autoregister
// controller creates an APIService for every group version the server
// serves (with kube-apiserver's priorities) and for every CRD version
// (crdregistration), and the local availability controller marks them
// Available.
type aggregator struct {
	informers    aggregatorinformers.SharedInformerFactory
	autoregister interface {
		AddAPIServiceToSync(*apiregistrationv1.APIService)
		AddAPIServiceToSyncOnStart(*apiregistrationv1.APIService)
		Run(workers int, stopCh <-chan struct{})
	}
	crds interface {
		Run(workers int, stopCh <-chan struct{})
		WaitForInitialSync()
	}
	local *localavailability.AvailableConditionController
	// onStart are the APIServices the server registers at start, as the
	// autoregister controller creates them (the bootstrap does).
	onStart []*apiregistrationv1.APIService

	// Aggregated API servers: APIServices backed by a Service are proxied
	// (remote), their discovery merged (discovery), their availability
	// checked (remoteAvailability), with the front proxy's client
	// certificate, which the extension-apiserver-authentication ConfigMap
	// tells aggregated servers to trust (trust).
	remote             remoteAPIs
	discovery          aggregatorapiserver.DiscoveryAggregationController
	remoteAvailability *remoteavailability.AvailableConditionController
	trust              *clusterauthenticationtrust.Controller
	proxyCert          *pki.KeyPair
}

// proxyCertKey is the front proxy's client certificate and key.
func (a *aggregator) proxyCertKey() ([]byte, []byte) { return a.proxyCert.CertPEM, a.proxyCert.KeyPEM }

func newAggregator(s *Server, loopback *rest.Config) (*aggregator, error) {
	client, err := aggregatorclient.NewForConfig(rest.CopyConfig(loopback))
	if err != nil {
		return nil, err
	}
	factory := aggregatorinformers.NewSharedInformerFactory(client, 5*time.Minute)
	apiServices := factory.Apiregistration().V1().APIServices()
	auto := autoregister.NewAutoRegisterController(apiServices, client.ApiregistrationV1())
	a := &aggregator{informers: factory, autoregister: auto,
		crds: crdregistration.NewCRDRegistrationController(s.crdInformers.Apiextensions().V1().CustomResourceDefinitions(), auto)}
	availabilityMetricsOnce.Do(func() { err = availabilityMetrics.Register(legacyregistry.Register, legacyregistry.CustomRegister) })
	if err != nil {
		return nil, err
	}
	if a.local, err = localavailability.New(apiServices, client.ApiregistrationV1(), availabilityMetrics); err != nil {
		return nil, err
	}
	// The front proxy: its own CA, and the client certificate whose name
	// aggregated servers allow to pass users in X-Remote-* headers.
	frontProxyCA, err := pki.LoadOrCreateCA(s.pkiDir, "front-proxy-ca", "front-proxy-ca")
	if err != nil {
		return nil, err
	}
	if a.proxyCert, err = frontProxyCA.Issue(pki.CertOptions{CommonName: frontProxyClient}); err != nil {
		return nil, err
	}
	clientCA, err := dynamiccertificates.NewStaticCAContent("client-ca", s.ca.CertPEM)
	if err != nil {
		return nil, err
	}
	requestHeaderCA, err := dynamiccertificates.NewStaticCAContent("request-header-ca", frontProxyCA.CertPEM)
	if err != nil {
		return nil, err
	}
	a.trust = clusterauthenticationtrust.NewClusterAuthenticationTrustController(clusterauthenticationtrust.ClusterAuthenticationInfo{
		ClientCA:                         clientCA,
		RequestHeaderUsernameHeaders:     headerrequest.StaticStringSlice{"X-Remote-User"},
		RequestHeaderUIDHeaders:          headerrequest.StaticStringSlice{"X-Remote-Uid"},
		RequestHeaderGroupHeaders:        headerrequest.StaticStringSlice{"X-Remote-Group"},
		RequestHeaderExtraHeaderPrefixes: headerrequest.StaticStringSlice{"X-Remote-Extra-"},
		RequestHeaderAllowedNames:        headerrequest.StaticStringSlice{frontProxyClient},
		RequestHeaderCA:                  requestHeaderCA,
	}, s.loopback)
	a.discovery = aggregatorapiserver.NewDiscoveryManager(s.aggregated.WithSource(discoveryendpoint.AggregatorSource))
	if a.remoteAvailability, err = remoteavailability.New(apiServices, s.informers.Core().V1().Services(), s.informers.Discovery().V1().EndpointSlices(),
		client.ApiregistrationV1(), &transport.DialHolder{Dial: s.dialService}, a.proxyCertKey, s.serviceResolver, availabilityMetrics); err != nil {
		return nil, err
	}
	a.remote = remoteAPIs{server: s, proxies: map[schema.GroupVersion]*proxyHandler{}, versions: map[string]map[string]*apiregistrationv1.APIService{}}
	if _, err := apiServices.Informer().AddEventHandler(a.remote.handlers()); err != nil {
		return nil, err
	}
	// One APIService per group version the server serves, as
	// apiServicesToRegister makes them from kube-apiserver's listed paths;
	// a group version without a priority gets none, as there.
	priorities := apiVersionPriorities()
	versions := append([]schema.GroupVersion{}, s.registry.Core.Versions[0].GroupVersion)
	for _, g := range s.registry.Groups {
		for _, gv := range g.Versions {
			versions = append(versions, gv.GroupVersion)
		}
	}
	for _, gv := range versions {
		p, ok := priorities[gv]
		if !ok {
			continue
		}
		svc := localAPIService(gv, int(p.Group), int(p.Version))
		auto.AddAPIServiceToSyncOnStart(svc)
		// As the autoregister controller creates it (its copy, labelled).
		onStart := svc.DeepCopy()
		onStart.Labels = map[string]string{autoregister.AutoRegisterManagedLabel: "onstart"}
		a.onStart = append(a.onStart, onStart)
	}
	return a, nil
}

// localAPIService is the APIService of a group version the server (or an
// in-process server) serves itself.
func localAPIService(gv schema.GroupVersion, groupPriority, versionPriority int) *apiregistrationv1.APIService {
	return &apiregistrationv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: gv.Version + "." + gv.Group},
		Spec: apiregistrationv1.APIServiceSpec{
			Group: gv.Group, Version: gv.Version,
			GroupPriorityMinimum: int32(groupPriority), VersionPriority: int32(versionPriority),
		},
	}
}

// run starts the controllers until ctx is done.
func (a *aggregator) run(ctx context.Context) {
	a.informers.Start(ctx.Done())
	// The controllers wait for their informers by polling every 100 ms
	// (cache.WaitForCacheSync) unless they have synced already: waited
	// for here, without polling.
	a.informers.WaitForCacheSync(ctx.Done())
	go a.crds.Run(5, ctx.Done())
	go func() {
		// As kube-apiserver's autoregistration hook: the CRDs' APIServices
		// are known before any is removed as stale.
		a.crds.WaitForInitialSync()
		a.autoregister.Run(5, ctx.Done())
	}()
	go a.local.Run(5, ctx.Done())
	go a.remoteAvailability.Run(5, ctx.Done())
	go a.discovery.Run(ctx.Done(), make(chan struct{}))
	go a.trust.Run(ctx, 1)
}

// frontProxyClient is the front proxy client certificate's name, as
// kubeadm names it.
const frontProxyClient = "front-proxy-client"

// waitAvailable waits until the server's own APIServices are Available,
// as kube-apiserver's readyz check autoregister-completion.
func (a *aggregator) waitAvailable(ctx context.Context) error {
	lister := a.informers.Apiregistration().V1().APIServices().Lister()
	for {
		pending := 0
		for _, want := range a.onStart {
			svc, err := lister.Get(want.Name)
			if err != nil || !apiregistrationv1helper.IsAPIServiceConditionTrue(svc, apiregistrationv1.Available) {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			all, _ := lister.List(labels.Everything())
			return fmt.Errorf("%d of the server's APIServices are not Available (%d listed): %w", pending, len(all), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
