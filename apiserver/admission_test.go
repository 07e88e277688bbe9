package apiserver

import (
	"reflect"
	"slices"
	"testing"

	nodev1 "k8s.io/api/node/v1"
)

// TestAdmissionChainOrder checks that the admission chain, built in two
// parts (the webhook plugins beside the server's start, the others once its
// informers have synced), is kube-apiserver's: its plugins in its order, in
// one reinvocation handler, as one NewFromPlugins call builds them.
func TestAdmissionChainOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		disabled []string
	}{
		{name: "default"},
		{name: "webhooks off", disabled: []string{"MutatingAdmissionWebhook", "ValidatingAdmissionWebhook"}},
		{name: "the first and the last off", disabled: []string{"NamespaceLifecycle", "ResourceQuota"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{AnyPort: true, DisableAdmissionPlugins: tc.disabled})
			if err != nil {
				t.Fatal(err)
			}
			defer s.listener.Close()
			defer s.endDrained()
			started := <-s.admissionStarted
			if started.err != nil {
				t.Fatal(started.err)
			}
			chain, _, err := started.builder.build()
			if err != nil {
				t.Fatal(err)
			}
			want, err := admissionPlugins(tc.disabled)
			if err != nil {
				t.Fatal(err)
			}
			got, reinvokers := pluginNames(t, reflect.ValueOf(chain))
			if !slices.Equal(got, want) {
				t.Errorf("the chain's plugins:\n%q\nwant kube-apiserver's:\n%q", got, want)
			}
			// A mutating webhook's reinvocation runs the whole chain again.
			if reinvokers != 1 {
				t.Errorf("the chain is in %d reinvocation handlers, want 1", reinvokers)
			}
		})
	}
}

// pluginNames flattens a chain: its plugins' names (their metrics' name
// label), in the order the chain calls them, and how many reinvocation
// handlers hold them.
func pluginNames(t *testing.T, v reflect.Value) (names []string, reinvokers int) {
	t.Helper()
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	switch {
	case v.Kind() == reflect.Slice: // admission's chainAdmissionHandler
		for i := range v.Len() {
			n, r := pluginNames(t, v.Index(i))
			names, reinvokers = append(names, n...), reinvokers+r
		}
		return names, reinvokers
	case v.Type().Name() == "reinvoker":
		names, reinvokers = pluginNames(t, v.FieldByName("admissionChain"))
		return names, reinvokers + 1
	case v.FieldByName("extraLabels").IsValid():
		// admission/metrics' pluginHandlerWithMetrics: a step (no label)
		// around a chain, or a plugin (its name).
		if labels := v.FieldByName("extraLabels"); labels.Len() > 0 {
			return []string{labels.Index(0).String()}, 0
		}
		return pluginNames(t, v.FieldByName("Interface"))
	}
	t.Fatalf("unexpected handler %v in the chain", v.Type())
	return nil, 0
}

// TestAdmissionInformersPreRegistered checks that the informers the
// admission plugins ask for start and sync with the server's others, which
// Start waits for once: none is left for the chain's build to start and
// wait for (preRegisterAdmissionInformers, which fails this after an
// upgrade whose plugins ask for another). A disabled plugin's informers do
// not run.
func TestAdmissionInformersPreRegistered(t *testing.T) {
	runtimeClasses := reflect.TypeFor[*nodev1.RuntimeClass]()
	for _, tc := range []struct {
		name     string
		disabled []string
		// runtimeClasses is whether the RuntimeClass informer runs.
		runtimeClasses bool
	}{
		{name: "default", runtimeClasses: true},
		{name: "RuntimeClass off", disabled: []string{"RuntimeClass"}},
		{name: "ResourceQuota and LimitRanger off", disabled: []string{"ResourceQuota", "LimitRanger"}, runtimeClasses: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, stop := startServerWith(t, Config{AnyPort: true, DisableAdmissionPlugins: tc.disabled})
			defer stop()
			if len(s.lateAdmissionInformers) > 0 {
				t.Errorf("the admission chain's build started informers of %v: add them to admissionPluginInformers", s.lateAdmissionInformers)
			}
			started := s.informers.WaitForCacheSync(nil)
			if _, ok := started[runtimeClasses]; ok != tc.runtimeClasses {
				t.Errorf("the RuntimeClass informer runs: %v, want %v", ok, tc.runtimeClasses)
			}
		})
	}
}
