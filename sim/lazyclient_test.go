package sim

import (
	"context"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubesim/kubesim/apiserver"
)

// TestLazyClientset: the clientset a controller gets answers as client-go's
// does, builds each group's client once even when first used from many
// goroutines at once (run with -race), and refuses the configs
// kubernetes.NewForConfig refuses.
func TestLazyClientset(t *testing.T) {
	if _, err := newLazyClientset(&rest.Config{Host: "https://127.0.0.1:1", QPS: 10}); err == nil {
		t.Error("QPS without Burst accepted")
	} else if _, want := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1", QPS: 10}); want == nil || err.Error() != want.Error() {
		t.Errorf("error %q, client-go's %v", err, want)
	}
	if _, err := newLazyClientset(&rest.Config{Host: "::not a url"}); err == nil {
		t.Error("a config with a bad host accepted")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := Start(ctx, Config{APIServer: apiserver.Config{AnyPort: true}, DisableControllers: true, DisableScheduler: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	cs, err := newLazyClientset(c.API.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	apps := make([]any, 8)
	for i := range apps {
		wg.Go(func() { apps[i] = cs.AppsV1() })
	}
	wg.Wait()
	for _, a := range apps[1:] {
		if a != apps[0] {
			t.Fatal("AppsV1 built more than once")
		}
	}
	if _, err := cs.RbacV1().ClusterRoles().Get(ctx, "cluster-admin", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
	if v, err := cs.Discovery().ServerVersion(); err != nil || v.GitVersion != apiserver.Version().GitVersion {
		t.Errorf("server version %v, %v", v, err)
	}
}
