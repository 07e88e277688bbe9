package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"

	"github.com/kubesim/kubesim/addons/loadbalancer"
	"github.com/kubesim/kubesim/addons/metrics"
	"github.com/kubesim/kubesim/addons/storage"
	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/internal/pki"
)

// addonsComponent is the name the add-ons run under: their pprof label,
// user agent and (with LeaderElection) lease.
const addonsComponent = "kubesim-addons"

// newAddons builds the cluster add-ons kind and cloud providers give a
// cluster: the default StorageClass and its provisioner, and LoadBalancer
// addresses, and metrics-server, whose metrics.k8s.io the API server
// serves. They share the controller manager's informers.
func newAddons(ctx context.Context, cfg Config, api *apiserver.Server, restConfig *rest.Config, shared informers.SharedInformerFactory) (func() error, error) {
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
	metadataClient, err := metadata.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	ms, err := metrics.New(metrics.Config{
		Informers: shared,
		Metadata:  metadatainformer.NewSharedInformerFactory(metadataClient, 0),
		Kubelet: rest.Config{
			Timeout:         10 * time.Second,
			TLSClientConfig: rest.TLSClientConfig{CAData: api.CACertPEM(), CertData: cert.CertPEM, KeyData: cert.KeyPEM},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("unable to start metrics-server: %w", err)
	}
	if err := api.AddLocalAPI(ctx, metrics.GroupVersion, ms.Handler(), metrics.GroupPriorityMinimum, metrics.VersionPriority); err != nil {
		return nil, err
	}
	return func() error {
		errs := make(chan error, 3)
		go func() { errs <- lb.Start(ctx) }()
		go func() { errs <- provisioner.Start(ctx) }()
		go func() { errs <- ms.Start(ctx) }()
		return errors.Join(<-errs, <-errs, <-errs)
	}, nil
}
