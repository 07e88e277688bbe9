package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	discoveryv1ac "k8s.io/client-go/applyconfigurations/discovery/v1"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregatorclient "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/utils/ptr"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/addons/loadbalancer"
	"github.com/kubesim/kubesim/addons/metrics"
	"github.com/kubesim/kubesim/addons/storage"
	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/internal/pki"
	"github.com/kubesim/kubesim/kubeletsim"
)

// addonsComponent is the name the add-ons run under: their pprof label,
// user agent and (with LeaderElection) lease.
const addonsComponent = "kubesim-addons"

// addonsUser is the add-ons' identity: a service account of kube-system, as
// a cluster's add-ons run (its object is not created).
const addonsUser = "system:serviceaccount:kube-system:kubesim-addons"

// newAddons builds the cluster add-ons kind and cloud providers give a
// cluster: the default StorageClass and its provisioner, and LoadBalancer
// addresses, and metrics-server, whose metrics.k8s.io the API server
// serves. They share the controller manager's informers. metrics-server
// scrapes kubelets, the simulated ones through kubelets' in-process
// transport.
func newAddons(ctx context.Context, cfg Config, api *apiserver.Server, restConfig *rest.Config, shared informers.SharedInformerFactory, kubelets *kubeletsim.Simulator) (func() error, error) {
	restConfig = rest.CopyConfig(restConfig)
	restConfig.UserAgent = userAgent(addonsComponent, "")
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	lb, err := loadbalancer.New(loadbalancer.Config{Client: client, Informers: shared, CIDR: cfg.LoadBalancerCIDR})
	if err != nil {
		return nil, fmt.Errorf("unable to start the load balancers: %w", err)
	}
	provisioner, err := storage.New(storage.Config{Client: client, Informers: shared})
	if err != nil {
		return nil, fmt.Errorf("unable to start the storage provisioner: %w", err)
	}
	// metrics-server reaches kubelets as kube-apiserver does: trusting the
	// cluster CA, which signs their serving certificates, with a client
	// certificate of the same CA.
	cert, err := api.CA().Issue(pki.CertOptions{CommonName: "system:metrics-server", Organization: []string{user.SystemPrivilegedGroup}})
	if err != nil {
		return nil, err
	}
	clientCert, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(api.CACertPEM())
	ms, err := metrics.New(metrics.Config{
		Informers: shared,
		Kubelet: rest.Config{
			Timeout: 10 * time.Second,
			// Every simulated node is at the same address and port: one
			// HTTP/2 connection carries all their scrapes, where HTTP/1.1
			// with a handful of idle connections a host made a TLS
			// handshake per node and scrape (a fifth of a core at 5,000
			// nodes).
			// The simulated nodes of this process answer in-process.
			Transport: kubelets.MetricsTransport(&http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12},
				ForceAttemptHTTP2:   true,
				MaxIdleConnsPerHost: 16,
				IdleConnTimeout:     90 * time.Second,
			}),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("unable to start metrics-server: %w", err)
	}
	servingCert, err := api.CA().Issue(pki.CertOptions{CommonName: "metrics-server", DNSNames: []string{"metrics-server.kube-system.svc", "metrics-server.kube-system.svc.cluster.local"}, Server: true})
	if err != nil {
		return nil, err
	}
	serving, err := tls.X509KeyPair(servingCert.CertPEM, servingCert.KeyPEM)
	if err != nil {
		return nil, err
	}
	aggregator, err := aggregatorclient.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	return func() error {
		// metrics-server is an aggregated API server, registered as its
		// manifests register it: Service kube-system/metrics-server and
		// APIService v1beta1.metrics.k8s.io. The API server proxies to it
		// in process (ServeInProcess), through kube-aggregator's proxy.
		api.ServeInProcess(ctx, metav1.NamespaceSystem, metricsServerName, 443, ms.Handler(), serving)
		errs := make(chan error, 3)
		go func() { errs <- lb.Start(ctx) }()
		go func() { errs <- provisioner.Start(ctx) }()
		go func() { errs <- ms.Start(ctx) }()
		var registered error
		if err := registerMetricsServer(ctx, client, aggregator, api.CACertPEM()); err != nil && ctx.Err() == nil {
			registered = fmt.Errorf("unable to register metrics-server: %w", err)
			klog.FromContext(ctx).Error(registered, "metrics.k8s.io is not served")
		}
		return errors.Join(registered, <-errs, <-errs, <-errs)
	}, nil
}

// metricsServerName names metrics-server's Service, as its manifests do.
const metricsServerName = "metrics-server"

// registerMetricsServer creates (or updates) what metrics-server's
// manifests create for the aggregator: its Service, the Service's
// endpoints (selectorless: the server runs in process, behind the
// Service's ClusterIP) and the APIService v1beta1.metrics.k8s.io.
func registerMetricsServer(ctx context.Context, client kubernetes.Interface, aggregator aggregatorclient.Interface, caBundle []byte) error {
	const ns = metav1.NamespaceSystem
	labels := map[string]string{"k8s-app": metricsServerName}
	svc, err := client.CoreV1().Services(ns).Apply(ctx, corev1ac.Service(metricsServerName, ns).WithLabels(labels).
		WithSpec(corev1ac.ServiceSpec().WithPorts(corev1ac.ServicePort().WithName("https").WithPort(443).WithProtocol(corev1.ProtocolTCP).
			WithTargetPort(intstr.FromString("https")))), metav1.ApplyOptions{FieldManager: addonsComponent, Force: true})
	if err != nil {
		return err
	}
	_, err = client.DiscoveryV1().EndpointSlices(ns).Apply(ctx, discoveryv1ac.EndpointSlice(metricsServerName, ns).
		WithLabels(map[string]string{discoveryv1.LabelServiceName: metricsServerName, discoveryv1.LabelManagedBy: addonsComponent}).
		WithAddressType(discoveryv1.AddressTypeIPv4).
		WithEndpoints(discoveryv1ac.Endpoint().WithAddresses(svc.Spec.ClusterIP).WithConditions(discoveryv1ac.EndpointConditions().WithReady(true))).
		WithPorts(discoveryv1ac.EndpointPort().WithName("https").WithPort(10250).WithProtocol(corev1.ProtocolTCP)),
		metav1.ApplyOptions{FieldManager: addonsComponent, Force: true})
	if err != nil {
		return err
	}
	apiService := &apiregistrationv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: metrics.GroupVersion.Version + "." + metrics.GroupVersion.Group, Labels: labels},
		Spec: apiregistrationv1.APIServiceSpec{
			Group: metrics.GroupVersion.Group, Version: metrics.GroupVersion.Version,
			Service:              &apiregistrationv1.ServiceReference{Namespace: ns, Name: metricsServerName, Port: ptr.To[int32](443)},
			CABundle:             caBundle,
			GroupPriorityMinimum: metrics.GroupPriorityMinimum, VersionPriority: metrics.VersionPriority,
		},
	}
	apiServices := aggregator.ApiregistrationV1().APIServices()
	existing, err := apiServices.Get(ctx, apiService.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = apiServices.Create(ctx, apiService, metav1.CreateOptions{})
	case err == nil:
		existing.Spec = apiService.Spec
		_, err = apiServices.Update(ctx, existing, metav1.UpdateOptions{})
	}
	return err
}
