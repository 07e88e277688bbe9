package sim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/pkg/controller"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/kubeletsim"
)

// TestNodesAndControllersShareThePodInformerInEitherOrder builds the
// simulated kubelets and the genuine controllers on one shared informer
// factory, in both orders. Both add the spec.nodeName index to its pod
// informer; whichever comes second must find it rather than fail with
// "indexer conflict" (as `sim.Start` did, at random, while they were built
// side by side), and the index must serve both.
func TestNodesAndControllersShareThePodInformerInEitherOrder(t *testing.T) {
	for _, nodesFirst := range []bool{true, false} {
		name := "controllers first"
		if nodesFirst {
			name = "nodes first"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			api, err := apiserver.New(apiserver.Config{AnyPort: true})
			if err != nil {
				t.Fatal(err)
			}
			apiCtx, stopAPI := context.WithCancel(ctx)
			apiDone := make(chan error, 1)
			go func() { apiDone <- api.Start(apiCtx) }()
			defer func() {
				stopAPI()
				if err := <-apiDone; err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("API server: %v", err)
				}
			}()
			select {
			case <-api.Ready():
			case err := <-apiDone:
				t.Fatalf("API server: %v", err)
			}

			cfg := Config{}
			if err := cfg.complete(); err != nil {
				t.Fatal(err)
			}
			restConfig, err := componentConfig(api, cfg, user.KubeControllerManager, user.SystemPrivilegedGroup)
			if err != nil {
				t.Fatal(err)
			}
			shared, err := newControllerInformers(restConfig, newPodInterner())
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			files := controllerFiles{CA: filepath.Join(dir, "ca.crt"), ServiceAccountKey: filepath.Join(dir, "sa.key")}
			if err := errors.Join(os.WriteFile(files.CA, api.CACertPEM(), 0o600), os.WriteFile(files.ServiceAccountKey, api.ServiceAccountKeyPEM(), 0o600)); err != nil {
				t.Fatal(err)
			}
			componentsCtx, stopComponents := context.WithCancel(ctx)
			var nodes *kubeletsim.Simulator
			var runControllers func() error
			buildNodes := func() {
				nodes, err = kubeletsim.New(kubeletsim.Config{Client: kubernetes.NewForConfigOrDie(restConfig), Informers: shared, Pools: []kubeletsim.NodePool{{Count: 1}}})
				if err != nil {
					t.Fatalf("simulated nodes: %v", err)
				}
			}
			buildControllers := func() {
				runControllers, err = newControllers(componentsCtx, componentsCtx, cfg, restConfig, files, shared)
				if err != nil {
					t.Fatalf("controllers: %v", err)
				}
			}
			if nodesFirst {
				buildNodes()
				buildControllers()
			} else {
				buildControllers()
				buildNodes()
			}
			shared.Start(componentsCtx.Done())
			nodesDone := make(chan error, 1)
			go func() { nodesDone <- nodes.Start(componentsCtx) }()
			controllersDone := make(chan error, 1)
			go func() { controllersDone <- runControllers() }()
			defer func() {
				stopComponents()
				for _, done := range []chan error{nodesDone, controllersDone} {
					if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
						t.Errorf("stop: %v", err)
					}
				}
				shared.Shutdown()
			}()

			pods := shared.Core().V1().Pods().Informer()
			if _, ok := pods.GetIndexer().GetIndexers()[controller.PodNodeNameKeyIndex]; !ok {
				t.Fatalf("the pod informer has no %s index", controller.PodNodeNameKeyIndex)
			}
			// A pod bound to the simulated node is found through the index
			// (by the controllers) and run by the node.
			select {
			case <-nodes.NodesRegistered():
			case <-ctx.Done():
				t.Fatal("the simulated node did not register")
			}
			node := nodes.NodeNames()[0]
			cs := kubernetes.NewForConfigOrDie(api.RESTConfig())
			if _, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "bound"},
				Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if !cache.WaitForCacheSync(ctx.Done(), func() bool {
				byNode, err := pods.GetIndexer().ByIndex(controller.PodNodeNameKeyIndex, node)
				return err == nil && len(byNode) == 1
			}) {
				t.Fatal("the bound pod is not in the index")
			}
			for {
				p, err := cs.CoreV1().Pods("default").Get(ctx, "bound", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if p.Status.Phase == corev1.PodRunning {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("the pod is %s, not Running", p.Status.Phase)
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
}
