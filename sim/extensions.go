package sim

import (
	"context"
	"fmt"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// installExtensions installs the configured CRDs and webhooks: the webhook
// server first (the configurations and the CRDs' conversion webhooks point
// at it), then the CRDs, waited for, then the webhook configurations.
func (c *Cluster) installExtensions(ctx context.Context, cfg Config) error {
	crds, err := loadCRDs(cfg)
	if err != nil {
		return err
	}
	mutating, validating, err := loadWebhookConfigurations(cfg.Webhooks)
	if err != nil {
		return err
	}
	conversion := false
	for _, crd := range crds {
		conversion = conversion || (crd.Spec.Conversion != nil && crd.Spec.Conversion.Webhook != nil)
	}
	if cfg.Webhooks.needed() || conversion {
		if c.Webhooks, err = newWebhookServer(c.dir, cfg.Webhooks); err != nil {
			return fmt.Errorf("unable to serve the webhooks: %w", err)
		}
		c.Webhooks.pointCRDs(crds)
	}
	if len(crds) > 0 {
		client, err := apiextensionsclient.NewForConfig(c.RESTConfig())
		if err != nil {
			return err
		}
		if err := installCRDs(ctx, client, crds); err != nil {
			return err
		}
	}
	if len(mutating)+len(validating) > 0 {
		cs, err := kubernetes.NewForConfig(c.RESTConfig())
		if err != nil {
			return err
		}
		if err := installWebhooks(ctx, cs, c.Webhooks, mutating, validating); err != nil {
			return err
		}
	}
	return nil
}

// RESTConfig returns a cluster-admin client configuration. A
// controller-runtime client of the cluster is client.New(c.RESTConfig(),
// opts), as with envtest: sim does not import controller-runtime, whose
// client package's initialisation (a second scheme of every built-in type,
// 4 ms) every kubesim process would run before main.
func (c *Cluster) RESTConfig() *rest.Config { return c.API.RESTConfig() }

// KubeconfigPath is the path of a cluster-admin kubeconfig file, which
// lasts until the cluster stops (for kubectl, or KUBECONFIG of code under
// test).
func (c *Cluster) KubeconfigPath() string { return c.kubeconfig }

// Reset deletes what the specs of a suite leave behind: every namespace
// but the system ones and default, with everything in them, what is in
// default but the control plane's objects, and every custom resource.
// Nodes, CRDs, webhook configurations and other cluster-scoped objects
// stay. It goes straight to storage (no finalizers or grace periods), so it
// takes milliseconds; the controllers see the objects deleted.
func (c *Cluster) Reset(ctx context.Context) error { return c.API.Reset(ctx) }
