package sim

// The methods follow client-go's kubernetes.Interface one for one (the
// assertion below stops the build when client-go adds a group).

import (
	"fmt"
	"net/http"
	"sync"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	admissionregistrationv1 "k8s.io/client-go/kubernetes/typed/admissionregistration/v1"
	admissionregistrationv1alpha1 "k8s.io/client-go/kubernetes/typed/admissionregistration/v1alpha1"
	admissionregistrationv1beta1 "k8s.io/client-go/kubernetes/typed/admissionregistration/v1beta1"
	internalv1alpha1 "k8s.io/client-go/kubernetes/typed/apiserverinternal/v1alpha1"
	appsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
	appsv1beta1 "k8s.io/client-go/kubernetes/typed/apps/v1beta1"
	appsv1beta2 "k8s.io/client-go/kubernetes/typed/apps/v1beta2"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authenticationv1alpha1 "k8s.io/client-go/kubernetes/typed/authentication/v1alpha1"
	authenticationv1beta1 "k8s.io/client-go/kubernetes/typed/authentication/v1beta1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"
	authorizationv1beta1 "k8s.io/client-go/kubernetes/typed/authorization/v1beta1"
	autoscalingv1 "k8s.io/client-go/kubernetes/typed/autoscaling/v1"
	autoscalingv2 "k8s.io/client-go/kubernetes/typed/autoscaling/v2"
	batchv1 "k8s.io/client-go/kubernetes/typed/batch/v1"
	batchv1beta1 "k8s.io/client-go/kubernetes/typed/batch/v1beta1"
	certificatesv1 "k8s.io/client-go/kubernetes/typed/certificates/v1"
	certificatesv1alpha1 "k8s.io/client-go/kubernetes/typed/certificates/v1alpha1"
	certificatesv1beta1 "k8s.io/client-go/kubernetes/typed/certificates/v1beta1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	coordinationv1alpha2 "k8s.io/client-go/kubernetes/typed/coordination/v1alpha2"
	coordinationv1beta1 "k8s.io/client-go/kubernetes/typed/coordination/v1beta1"
	corev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1 "k8s.io/client-go/kubernetes/typed/discovery/v1"
	discoveryv1beta1 "k8s.io/client-go/kubernetes/typed/discovery/v1beta1"
	eventsv1 "k8s.io/client-go/kubernetes/typed/events/v1"
	eventsv1beta1 "k8s.io/client-go/kubernetes/typed/events/v1beta1"
	extensionsv1beta1 "k8s.io/client-go/kubernetes/typed/extensions/v1beta1"
	flowcontrolv1 "k8s.io/client-go/kubernetes/typed/flowcontrol/v1"
	flowcontrolv1beta1 "k8s.io/client-go/kubernetes/typed/flowcontrol/v1beta1"
	flowcontrolv1beta2 "k8s.io/client-go/kubernetes/typed/flowcontrol/v1beta2"
	flowcontrolv1beta3 "k8s.io/client-go/kubernetes/typed/flowcontrol/v1beta3"
	lifecyclev1alpha1 "k8s.io/client-go/kubernetes/typed/lifecycle/v1alpha1"
	networkingv1 "k8s.io/client-go/kubernetes/typed/networking/v1"
	networkingv1beta1 "k8s.io/client-go/kubernetes/typed/networking/v1beta1"
	nodev1 "k8s.io/client-go/kubernetes/typed/node/v1"
	nodev1alpha1 "k8s.io/client-go/kubernetes/typed/node/v1alpha1"
	nodev1beta1 "k8s.io/client-go/kubernetes/typed/node/v1beta1"
	policyv1 "k8s.io/client-go/kubernetes/typed/policy/v1"
	policyv1beta1 "k8s.io/client-go/kubernetes/typed/policy/v1beta1"
	rbacv1 "k8s.io/client-go/kubernetes/typed/rbac/v1"
	rbacv1alpha1 "k8s.io/client-go/kubernetes/typed/rbac/v1alpha1"
	rbacv1beta1 "k8s.io/client-go/kubernetes/typed/rbac/v1beta1"
	resourcev1 "k8s.io/client-go/kubernetes/typed/resource/v1"
	resourcev1alpha3 "k8s.io/client-go/kubernetes/typed/resource/v1alpha3"
	resourcev1beta1 "k8s.io/client-go/kubernetes/typed/resource/v1beta1"
	resourcev1beta2 "k8s.io/client-go/kubernetes/typed/resource/v1beta2"
	schedulingv1 "k8s.io/client-go/kubernetes/typed/scheduling/v1"
	schedulingv1alpha3 "k8s.io/client-go/kubernetes/typed/scheduling/v1alpha3"
	schedulingv1beta1 "k8s.io/client-go/kubernetes/typed/scheduling/v1beta1"
	storagev1 "k8s.io/client-go/kubernetes/typed/storage/v1"
	storagev1alpha1 "k8s.io/client-go/kubernetes/typed/storage/v1alpha1"
	storagev1beta1 "k8s.io/client-go/kubernetes/typed/storage/v1beta1"
	storagemigrationv1 "k8s.io/client-go/kubernetes/typed/storagemigration/v1"
	storagemigrationv1beta1 "k8s.io/client-go/kubernetes/typed/storagemigration/v1beta1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

var _ kubernetes.Interface = (*lazyClientset)(nil)

// lazyClientset is kubernetes.Clientset with each group's client built on
// its first use: a controller uses one or two of the 56 groups, and
// kube-controller-manager builds a clientset per controller, 2,400 REST
// clients each start of a cluster (8 ms of CPU, 3 MB, resident for the
// cluster's life). The clients are built from one config and HTTP client,
// as kubernetes.NewForConfigAndClient builds them.
type lazyClientset struct {
	config     rest.Config // with the clientset's rate limiter
	httpClient *http.Client

	discovery                     lazyClient[*discovery.DiscoveryClient]
	admissionregistrationV1       lazyClient[*admissionregistrationv1.AdmissionregistrationV1Client]
	admissionregistrationV1alpha1 lazyClient[*admissionregistrationv1alpha1.AdmissionregistrationV1alpha1Client]
	admissionregistrationV1beta1  lazyClient[*admissionregistrationv1beta1.AdmissionregistrationV1beta1Client]
	internalV1alpha1              lazyClient[*internalv1alpha1.InternalV1alpha1Client]
	appsV1                        lazyClient[*appsv1.AppsV1Client]
	appsV1beta1                   lazyClient[*appsv1beta1.AppsV1beta1Client]
	appsV1beta2                   lazyClient[*appsv1beta2.AppsV1beta2Client]
	authenticationV1              lazyClient[*authenticationv1.AuthenticationV1Client]
	authenticationV1alpha1        lazyClient[*authenticationv1alpha1.AuthenticationV1alpha1Client]
	authenticationV1beta1         lazyClient[*authenticationv1beta1.AuthenticationV1beta1Client]
	authorizationV1               lazyClient[*authorizationv1.AuthorizationV1Client]
	authorizationV1beta1          lazyClient[*authorizationv1beta1.AuthorizationV1beta1Client]
	autoscalingV1                 lazyClient[*autoscalingv1.AutoscalingV1Client]
	autoscalingV2                 lazyClient[*autoscalingv2.AutoscalingV2Client]
	batchV1                       lazyClient[*batchv1.BatchV1Client]
	batchV1beta1                  lazyClient[*batchv1beta1.BatchV1beta1Client]
	certificatesV1                lazyClient[*certificatesv1.CertificatesV1Client]
	certificatesV1beta1           lazyClient[*certificatesv1beta1.CertificatesV1beta1Client]
	certificatesV1alpha1          lazyClient[*certificatesv1alpha1.CertificatesV1alpha1Client]
	coordinationV1alpha2          lazyClient[*coordinationv1alpha2.CoordinationV1alpha2Client]
	coordinationV1beta1           lazyClient[*coordinationv1beta1.CoordinationV1beta1Client]
	coordinationV1                lazyClient[*coordinationv1.CoordinationV1Client]
	coreV1                        lazyClient[*corev1.CoreV1Client]
	discoveryV1                   lazyClient[*discoveryv1.DiscoveryV1Client]
	discoveryV1beta1              lazyClient[*discoveryv1beta1.DiscoveryV1beta1Client]
	eventsV1                      lazyClient[*eventsv1.EventsV1Client]
	eventsV1beta1                 lazyClient[*eventsv1beta1.EventsV1beta1Client]
	extensionsV1beta1             lazyClient[*extensionsv1beta1.ExtensionsV1beta1Client]
	flowcontrolV1                 lazyClient[*flowcontrolv1.FlowcontrolV1Client]
	flowcontrolV1beta1            lazyClient[*flowcontrolv1beta1.FlowcontrolV1beta1Client]
	flowcontrolV1beta2            lazyClient[*flowcontrolv1beta2.FlowcontrolV1beta2Client]
	flowcontrolV1beta3            lazyClient[*flowcontrolv1beta3.FlowcontrolV1beta3Client]
	lifecycleV1alpha1             lazyClient[*lifecyclev1alpha1.LifecycleV1alpha1Client]
	networkingV1                  lazyClient[*networkingv1.NetworkingV1Client]
	networkingV1beta1             lazyClient[*networkingv1beta1.NetworkingV1beta1Client]
	nodeV1                        lazyClient[*nodev1.NodeV1Client]
	nodeV1alpha1                  lazyClient[*nodev1alpha1.NodeV1alpha1Client]
	nodeV1beta1                   lazyClient[*nodev1beta1.NodeV1beta1Client]
	policyV1                      lazyClient[*policyv1.PolicyV1Client]
	policyV1beta1                 lazyClient[*policyv1beta1.PolicyV1beta1Client]
	rbacV1                        lazyClient[*rbacv1.RbacV1Client]
	rbacV1beta1                   lazyClient[*rbacv1beta1.RbacV1beta1Client]
	rbacV1alpha1                  lazyClient[*rbacv1alpha1.RbacV1alpha1Client]
	resourceV1                    lazyClient[*resourcev1.ResourceV1Client]
	resourceV1beta2               lazyClient[*resourcev1beta2.ResourceV1beta2Client]
	resourceV1beta1               lazyClient[*resourcev1beta1.ResourceV1beta1Client]
	resourceV1alpha3              lazyClient[*resourcev1alpha3.ResourceV1alpha3Client]
	schedulingV1alpha3            lazyClient[*schedulingv1alpha3.SchedulingV1alpha3Client]
	schedulingV1beta1             lazyClient[*schedulingv1beta1.SchedulingV1beta1Client]
	schedulingV1                  lazyClient[*schedulingv1.SchedulingV1Client]
	storageV1beta1                lazyClient[*storagev1beta1.StorageV1beta1Client]
	storageV1                     lazyClient[*storagev1.StorageV1Client]
	storageV1alpha1               lazyClient[*storagev1alpha1.StorageV1alpha1Client]
	storagemigrationV1            lazyClient[*storagemigrationv1.StoragemigrationV1Client]
	storagemigrationV1beta1       lazyClient[*storagemigrationv1beta1.StoragemigrationV1beta1Client]
}

// newLazyClientset is kubernetes.NewForConfig with the groups' clients
// built on first use.
func newLazyClientset(c *rest.Config) (*lazyClientset, error) {
	config := *c
	if config.UserAgent == "" {
		config.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	httpClient, err := rest.HTTPClientFor(&config)
	if err != nil {
		return nil, err
	}
	if config.RateLimiter == nil && config.QPS > 0 {
		if config.Burst <= 0 {
			return nil, fmt.Errorf("burst is required to be greater than 0 when RateLimiter is not set and QPS is set to greater than 0")
		}
		config.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(config.QPS, config.Burst)
	}
	cs := &lazyClientset{config: config, httpClient: httpClient}
	// What would fail for one group fails for every one: checked here,
	// with the group every component uses.
	core, err := corev1.NewForConfigAndClient(&config, httpClient)
	if err != nil {
		return nil, err
	}
	cs.coreV1.once.Do(func() { cs.coreV1.c = core })
	return cs, nil
}

// lazyClient is one group's client, built once.
type lazyClient[T any] struct {
	once sync.Once
	c    T
}

// get builds the client with newFor on first use. The config was checked
// when the clientset was made (newLazyClientset builds CoreV1's), and every
// group's client is built from it alike, so newFor does not fail.
func (l *lazyClient[T]) get(cs *lazyClientset, newFor func(*rest.Config, *http.Client) (T, error)) T {
	l.once.Do(func() {
		var err error
		config := cs.config
		if l.c, err = newFor(&config, cs.httpClient); err != nil {
			panic("unable to build a client from a config the clientset accepted: " + err.Error())
		}
	})
	return l.c
}

func (c *lazyClientset) Discovery() discovery.DiscoveryInterfaces {
	return c.discovery.get(c, discovery.NewDiscoveryClientForConfigAndClient)
}

func (c *lazyClientset) AdmissionregistrationV1() admissionregistrationv1.AdmissionregistrationV1Interface {
	return c.admissionregistrationV1.get(c, admissionregistrationv1.NewForConfigAndClient)
}

func (c *lazyClientset) AdmissionregistrationV1alpha1() admissionregistrationv1alpha1.AdmissionregistrationV1alpha1Interface {
	return c.admissionregistrationV1alpha1.get(c, admissionregistrationv1alpha1.NewForConfigAndClient)
}

func (c *lazyClientset) AdmissionregistrationV1beta1() admissionregistrationv1beta1.AdmissionregistrationV1beta1Interface {
	return c.admissionregistrationV1beta1.get(c, admissionregistrationv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) InternalV1alpha1() internalv1alpha1.InternalV1alpha1Interface {
	return c.internalV1alpha1.get(c, internalv1alpha1.NewForConfigAndClient)
}

func (c *lazyClientset) AppsV1() appsv1.AppsV1Interface {
	return c.appsV1.get(c, appsv1.NewForConfigAndClient)
}

func (c *lazyClientset) AppsV1beta1() appsv1beta1.AppsV1beta1Interface {
	return c.appsV1beta1.get(c, appsv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) AppsV1beta2() appsv1beta2.AppsV1beta2Interface {
	return c.appsV1beta2.get(c, appsv1beta2.NewForConfigAndClient)
}

func (c *lazyClientset) AuthenticationV1() authenticationv1.AuthenticationV1Interface {
	return c.authenticationV1.get(c, authenticationv1.NewForConfigAndClient)
}

func (c *lazyClientset) AuthenticationV1alpha1() authenticationv1alpha1.AuthenticationV1alpha1Interface {
	return c.authenticationV1alpha1.get(c, authenticationv1alpha1.NewForConfigAndClient)
}

func (c *lazyClientset) AuthenticationV1beta1() authenticationv1beta1.AuthenticationV1beta1Interface {
	return c.authenticationV1beta1.get(c, authenticationv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) AuthorizationV1() authorizationv1.AuthorizationV1Interface {
	return c.authorizationV1.get(c, authorizationv1.NewForConfigAndClient)
}

func (c *lazyClientset) AuthorizationV1beta1() authorizationv1beta1.AuthorizationV1beta1Interface {
	return c.authorizationV1beta1.get(c, authorizationv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) AutoscalingV1() autoscalingv1.AutoscalingV1Interface {
	return c.autoscalingV1.get(c, autoscalingv1.NewForConfigAndClient)
}

func (c *lazyClientset) AutoscalingV2() autoscalingv2.AutoscalingV2Interface {
	return c.autoscalingV2.get(c, autoscalingv2.NewForConfigAndClient)
}

func (c *lazyClientset) BatchV1() batchv1.BatchV1Interface {
	return c.batchV1.get(c, batchv1.NewForConfigAndClient)
}

func (c *lazyClientset) BatchV1beta1() batchv1beta1.BatchV1beta1Interface {
	return c.batchV1beta1.get(c, batchv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) CertificatesV1() certificatesv1.CertificatesV1Interface {
	return c.certificatesV1.get(c, certificatesv1.NewForConfigAndClient)
}

func (c *lazyClientset) CertificatesV1beta1() certificatesv1beta1.CertificatesV1beta1Interface {
	return c.certificatesV1beta1.get(c, certificatesv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) CertificatesV1alpha1() certificatesv1alpha1.CertificatesV1alpha1Interface {
	return c.certificatesV1alpha1.get(c, certificatesv1alpha1.NewForConfigAndClient)
}

func (c *lazyClientset) CoordinationV1alpha2() coordinationv1alpha2.CoordinationV1alpha2Interface {
	return c.coordinationV1alpha2.get(c, coordinationv1alpha2.NewForConfigAndClient)
}

func (c *lazyClientset) CoordinationV1beta1() coordinationv1beta1.CoordinationV1beta1Interface {
	return c.coordinationV1beta1.get(c, coordinationv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) CoordinationV1() coordinationv1.CoordinationV1Interface {
	return c.coordinationV1.get(c, coordinationv1.NewForConfigAndClient)
}

func (c *lazyClientset) CoreV1() corev1.CoreV1Interface {
	return c.coreV1.get(c, corev1.NewForConfigAndClient)
}

func (c *lazyClientset) DiscoveryV1() discoveryv1.DiscoveryV1Interface {
	return c.discoveryV1.get(c, discoveryv1.NewForConfigAndClient)
}

func (c *lazyClientset) DiscoveryV1beta1() discoveryv1beta1.DiscoveryV1beta1Interface {
	return c.discoveryV1beta1.get(c, discoveryv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) EventsV1() eventsv1.EventsV1Interface {
	return c.eventsV1.get(c, eventsv1.NewForConfigAndClient)
}

func (c *lazyClientset) EventsV1beta1() eventsv1beta1.EventsV1beta1Interface {
	return c.eventsV1beta1.get(c, eventsv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) ExtensionsV1beta1() extensionsv1beta1.ExtensionsV1beta1Interface {
	return c.extensionsV1beta1.get(c, extensionsv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) FlowcontrolV1() flowcontrolv1.FlowcontrolV1Interface {
	return c.flowcontrolV1.get(c, flowcontrolv1.NewForConfigAndClient)
}

func (c *lazyClientset) FlowcontrolV1beta1() flowcontrolv1beta1.FlowcontrolV1beta1Interface {
	return c.flowcontrolV1beta1.get(c, flowcontrolv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) FlowcontrolV1beta2() flowcontrolv1beta2.FlowcontrolV1beta2Interface {
	return c.flowcontrolV1beta2.get(c, flowcontrolv1beta2.NewForConfigAndClient)
}

func (c *lazyClientset) FlowcontrolV1beta3() flowcontrolv1beta3.FlowcontrolV1beta3Interface {
	return c.flowcontrolV1beta3.get(c, flowcontrolv1beta3.NewForConfigAndClient)
}

func (c *lazyClientset) LifecycleV1alpha1() lifecyclev1alpha1.LifecycleV1alpha1Interface {
	return c.lifecycleV1alpha1.get(c, lifecyclev1alpha1.NewForConfigAndClient)
}

func (c *lazyClientset) NetworkingV1() networkingv1.NetworkingV1Interface {
	return c.networkingV1.get(c, networkingv1.NewForConfigAndClient)
}

func (c *lazyClientset) NetworkingV1beta1() networkingv1beta1.NetworkingV1beta1Interface {
	return c.networkingV1beta1.get(c, networkingv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) NodeV1() nodev1.NodeV1Interface {
	return c.nodeV1.get(c, nodev1.NewForConfigAndClient)
}

func (c *lazyClientset) NodeV1alpha1() nodev1alpha1.NodeV1alpha1Interface {
	return c.nodeV1alpha1.get(c, nodev1alpha1.NewForConfigAndClient)
}

func (c *lazyClientset) NodeV1beta1() nodev1beta1.NodeV1beta1Interface {
	return c.nodeV1beta1.get(c, nodev1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) PolicyV1() policyv1.PolicyV1Interface {
	return c.policyV1.get(c, policyv1.NewForConfigAndClient)
}

func (c *lazyClientset) PolicyV1beta1() policyv1beta1.PolicyV1beta1Interface {
	return c.policyV1beta1.get(c, policyv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) RbacV1() rbacv1.RbacV1Interface {
	return c.rbacV1.get(c, rbacv1.NewForConfigAndClient)
}

func (c *lazyClientset) RbacV1beta1() rbacv1beta1.RbacV1beta1Interface {
	return c.rbacV1beta1.get(c, rbacv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) RbacV1alpha1() rbacv1alpha1.RbacV1alpha1Interface {
	return c.rbacV1alpha1.get(c, rbacv1alpha1.NewForConfigAndClient)
}

func (c *lazyClientset) ResourceV1() resourcev1.ResourceV1Interface {
	return c.resourceV1.get(c, resourcev1.NewForConfigAndClient)
}

func (c *lazyClientset) ResourceV1beta2() resourcev1beta2.ResourceV1beta2Interface {
	return c.resourceV1beta2.get(c, resourcev1beta2.NewForConfigAndClient)
}

func (c *lazyClientset) ResourceV1beta1() resourcev1beta1.ResourceV1beta1Interface {
	return c.resourceV1beta1.get(c, resourcev1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) ResourceV1alpha3() resourcev1alpha3.ResourceV1alpha3Interface {
	return c.resourceV1alpha3.get(c, resourcev1alpha3.NewForConfigAndClient)
}

func (c *lazyClientset) SchedulingV1alpha3() schedulingv1alpha3.SchedulingV1alpha3Interface {
	return c.schedulingV1alpha3.get(c, schedulingv1alpha3.NewForConfigAndClient)
}

func (c *lazyClientset) SchedulingV1beta1() schedulingv1beta1.SchedulingV1beta1Interface {
	return c.schedulingV1beta1.get(c, schedulingv1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) SchedulingV1() schedulingv1.SchedulingV1Interface {
	return c.schedulingV1.get(c, schedulingv1.NewForConfigAndClient)
}

func (c *lazyClientset) StorageV1beta1() storagev1beta1.StorageV1beta1Interface {
	return c.storageV1beta1.get(c, storagev1beta1.NewForConfigAndClient)
}

func (c *lazyClientset) StorageV1() storagev1.StorageV1Interface {
	return c.storageV1.get(c, storagev1.NewForConfigAndClient)
}

func (c *lazyClientset) StorageV1alpha1() storagev1alpha1.StorageV1alpha1Interface {
	return c.storageV1alpha1.get(c, storagev1alpha1.NewForConfigAndClient)
}

func (c *lazyClientset) StoragemigrationV1() storagemigrationv1.StoragemigrationV1Interface {
	return c.storagemigrationV1.get(c, storagemigrationv1.NewForConfigAndClient)
}

func (c *lazyClientset) StoragemigrationV1beta1() storagemigrationv1beta1.StoragemigrationV1beta1Interface {
	return c.storagemigrationV1beta1.get(c, storagemigrationv1beta1.NewForConfigAndClient)
}
