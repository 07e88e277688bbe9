package sim

import (
	"strings"

	"k8s.io/client-go/discovery"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/controller-manager/pkg/clientbuilder"
	"k8s.io/klog/v2"
)

// userAgent is the user agent client-go gives the clients of the binary
// command (rest.DefaultKubernetesUserAgent names this process instead),
// followed by "/" and suffix if any. The API server takes the manager of
// the managed fields a client writes from its user agent's first part, so
// what the in-process components write names them as a cluster of the
// genuine binaries does: kube-controller-manager, kube-scheduler, kubelet.
func userAgent(command, suffix string) string {
	ua := rest.DefaultKubernetesUserAgent()
	if i := strings.IndexByte(ua, '/'); i >= 0 {
		ua = command + ua[i:]
	} else {
		ua = command
	}
	if suffix != "" {
		ua += "/" + suffix
	}
	return ua
}

// componentClientBuilder is clientbuilder.SimpleControllerClientBuilder as
// the binary command has it: each controller's client's user agent is the
// command's, then the controller's name.
type componentClientBuilder struct {
	config  *rest.Config
	command string
}

var _ clientbuilder.ControllerClientBuilder = componentClientBuilder{}

func (b componentClientBuilder) Config(name string) (*rest.Config, error) {
	c := rest.CopyConfig(b.config)
	c.UserAgent = userAgent(b.command, name)
	return c, nil
}

func (b componentClientBuilder) ConfigOrDie(name string) *rest.Config {
	c, _ := b.Config(name)
	return c
}

func (b componentClientBuilder) Client(name string) (clientset.Interface, error) {
	c, err := b.Config(name)
	if err != nil {
		return nil, err
	}
	return newLazyClientset(c)
}

func (b componentClientBuilder) ClientOrDie(name string) clientset.Interface {
	client, err := b.Client(name)
	if err != nil {
		klog.Fatal(err) // as SimpleControllerClientBuilder's
	}
	return client
}

func (b componentClientBuilder) DiscoveryClient(name string) (discovery.DiscoveryInterface, error) {
	c, err := b.Config(name)
	if err != nil {
		return nil, err
	}
	// Infrequent bursts of requests, as SimpleControllerClientBuilder's.
	c.Burst = 200
	c.QPS = 20
	return discovery.NewDiscoveryClientForConfig(c)
}

func (b componentClientBuilder) DiscoveryClientOrDie(name string) discovery.DiscoveryInterface {
	client, err := b.DiscoveryClient(name)
	if err != nil {
		klog.Fatal(err)
	}
	return client
}
