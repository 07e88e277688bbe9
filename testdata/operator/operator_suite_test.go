package operator_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/kubesim/kubesim/kubeletsim"
	"github.com/kubesim/kubesim/sim"

	webappv1 "github.com/kubesim/kubesim/testdata/operator/api/v1"
	"github.com/kubesim/kubesim/testdata/operator/internal/controller"
	websitewebhook "github.com/kubesim/kubesim/testdata/operator/internal/webhook"
)

// The operator's suite: a kubesim cluster in the test binary (the genuine
// scheduler and controllers, three simulated nodes, the operator's CRD and
// webhooks installed by sim.Start), or, with USE_EXISTING_CLUSTER=true,
// the running cluster KUBECONFIG names, through envtest, unchanged.
var (
	k8sClient client.Client
	scheme    = runtime.NewScheme()
)

func TestOperator(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "example operator")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(webappv1.AddToScheme(scheme)).To(Succeed())
	ctrl.SetLogger(klog.Background())

	var (
		cfg     *rest.Config
		serving webhook.Options
	)
	if strings.EqualFold(os.Getenv("USE_EXISTING_CLUSTER"), "true") {
		// What an envtest suite does, pointed at a running cluster.
		env := &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join("config", "crd")},
			ErrorIfCRDPathMissing: true,
			WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("config", "webhook")}},
		}
		var err error
		cfg, err = env.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(env.Stop)
		w := env.WebhookInstallOptions
		serving = webhook.Options{Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir}
	} else {
		cluster, err := sim.Start(context.Background(), sim.Config{
			CRDDirectoryPaths:     []string{filepath.Join("config", "crd")},
			ErrorIfCRDPathMissing: true,
			Webhooks:              sim.Webhooks{Paths: []string{filepath.Join("config", "webhook")}},
			Nodes:                 []kubeletsim.NodePool{{Count: 3}},
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cluster.Stop)
		cfg = cluster.RESTConfig()
		w := cluster.Webhooks
		serving = webhook.Options{Host: w.Host, Port: w.Port, CertDir: w.CertDir}
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          webhook.NewServer(serving),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect((&controller.WebsiteReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme()}).SetupWithManager(mgr)).To(Succeed())
	Expect(websitewebhook.SetupWebsiteWebhookWithManager(mgr)).To(Succeed())

	mgrCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	DeferCleanup(func() {
		stop()
		Expect(<-done).To(Succeed())
	})
	// The webhooks are registered already: the suite starts once they answer.
	Eventually(func() error { return mgr.GetWebhookServer().StartedChecker()(nil) }).WithTimeout(10 * time.Second).Should(Succeed())

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
}, NodeTimeout(2*time.Minute))
