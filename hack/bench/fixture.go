package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kubesim/kubesim/sim"
)

// fixtureCRDs and fixtureWebhooks are what the operator-fixture rows
// install: two CRDs (the example operator's and testdata/crds' widgets)
// and the example operator's mutating and validating webhook
// configurations.
func fixtureCRDs(repo string) []string {
	return []string{
		filepath.Join(repo, "testdata", "operator", "config", "crd"),
		filepath.Join(repo, "testdata", "crds", "widgets.yaml"),
	}
}

func fixtureWebhooks(repo string) []string {
	return []string{filepath.Join(repo, "testdata", "operator", "config", "webhook")}
}

// startFixtureSim is sim.Start to ready with the CRDs and webhooks: it
// returns once the CRDs are established and in discovery and the webhook
// configurations registered.
func startFixtureSim(ctx context.Context, repo string) (time.Duration, error) {
	ctx, cancel := context.WithCancel(klog.NewContext(ctx, klog.Background().V(10)))
	defer cancel()
	start := time.Now()
	c, err := sim.Start(ctx, sim.Config{
		CRDDirectoryPaths:     fixtureCRDs(repo),
		ErrorIfCRDPathMissing: true,
		Webhooks:              sim.Webhooks{Paths: fixtureWebhooks(repo)},
	})
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	return d, c.Stop()
}

// startFixtureEnvtest is controller-runtime's envtest with the reference's
// etcd and kube-apiserver, started the same way: until Start returns, its
// CRDs served and its webhook configurations registered.
func startFixtureEnvtest(o options) (time.Duration, error) {
	env := &envtest.Environment{
		BinaryAssetsDirectory: filepath.Join(o.referenceDir, "bin"),
		CRDDirectoryPaths:     fixtureCRDs(o.repo),
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: fixtureWebhooks(o.repo)},
	}
	start := time.Now()
	if _, err := env.Start(); err != nil {
		_ = env.Stop()
		return 0, fmt.Errorf("envtest: %w", err)
	}
	d := time.Since(start)
	return d, env.Stop()
}

// fixtureRows measures the operator fixtures: sim.Start against envtest.
func fixtureRows(ctx context.Context, o options, reference bool, set func(side, name, unit string, higher bool, m *measurement)) error {
	const name = "operator test fixture start-to-ready (2 CRDs, 2 webhook configurations)"
	var simStarts []time.Duration
	for i := 0; i < o.fixtureRuns; i++ {
		d, err := startFixtureSim(ctx, o.repo)
		if err != nil {
			return err
		}
		simStarts = append(simStarts, d)
	}
	set("kubesim", name, "ms", false, durationM(simStarts, fmt.Sprintf("sim.Start in the test process with the genuine scheduler and controllers, CRDs established and in discovery, median of %d", o.fixtureRuns)))
	if !reference {
		return nil
	}
	var envStarts []time.Duration
	for i := 0; i < o.fixtureRuns; i++ {
		d, err := startFixtureEnvtest(o)
		if err != nil {
			return err
		}
		envStarts = append(envStarts, d)
	}
	set("reference", name, "ms", false, durationM(envStarts, fmt.Sprintf("controller-runtime envtest (etcd + kube-apiserver of the pin, no controllers), Start until CRDs and webhooks are installed, median of %d", o.fixtureRuns)))
	return nil
}
