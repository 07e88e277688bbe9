package apiserver

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// startServer starts a server on a free port; it stops with the test, or
// when the returned function is called.
func startServer(t *testing.T) (*Server, func()) {
	t.Helper()
	return startServerWith(t, Config{AnyPort: true})
}

// startServerWith is startServer with cfg.
func startServerWith(t *testing.T, cfg Config) (*Server, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Start(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	select {
	case <-s.Ready():
	case <-done:
		t.Fatal("the server stopped before it was ready")
	}
	return s, stop
}

// A component's in-process client gets what the same client gets over
// the network: its identity, the same objects, the same errors, watches
// that stream and stop, responses larger than the transport's window.
func TestInProcessTransport(t *testing.T) {
	s, _ := startServer(t)
	ctx := context.Background()
	inCfg, err := s.InProcessRESTConfig("system:kube-scheduler", "group-a")
	if err != nil {
		t.Fatal(err)
	}
	netCfg, err := s.UserRESTConfig("system:kube-scheduler", "group-a")
	if err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(s.RESTConfig())
	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *rest.Config
	}{
		{"network", netCfg},
		{"in-process", inCfg},
		{"in-process, protobuf", func() *rest.Config {
			c := rest.CopyConfig(inCfg)
			c.ContentType = "application/vnd.kubernetes.protobuf"
			return c
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := kubernetes.NewForConfigOrDie(tc.cfg)
			review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if u := review.Status.UserInfo; u.Username != "system:kube-scheduler" || !slices.Contains(u.Groups, "group-a") || !slices.Contains(u.Groups, "system:authenticated") {
				t.Errorf("authenticated as %+v", u)
			}
			// The scheduler's RBAC role does not let it create ConfigMaps.
			_, err = client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "system:kube-scheduler" cannot create resource "configmaps"`) {
				t.Errorf("create as the scheduler: %v", err)
			}
			_, err = client.CoreV1().Pods("default").Get(ctx, "missing", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) || err.Error() != `pods "missing" not found` {
				t.Errorf("get a missing pod: %v", err)
			}

			name := "p-" + strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)
			w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			select {
			case ev := <-w.ResultChan():
				if pod, ok := ev.Object.(*corev1.Pod); ev.Type != watch.Added || !ok || pod.Name != name {
					t.Errorf("first event: %v %T", ev.Type, ev.Object)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no watch event")
			}
			w.Stop()
			for range w.ResultChan() { // closed once the stream ends
			}
		})
	}

	t.Run("a response larger than the window", func(t *testing.T) {
		data := strings.Repeat("x", 900<<10) // under the 1 MiB a ConfigMap holds
		for i := range 6 {
			if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "big-" + string(rune('a'+i))},
				Data:       map[string]string{"data": data},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		cfg, err := s.InProcessRESTConfig("kubesim-test", "system:masters")
		if err != nil {
			t.Fatal(err)
		}
		list, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{LabelSelector: ""})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, cm := range list.Items {
			if cm.Data["data"] == data {
				n++
			}
		}
		if n != 6 {
			t.Errorf("listed %d of the 6 ConfigMaps of 900 KiB", n)
		}
	})
}

// Once the server stops, in-process requests are refused as by a closed
// port (client-go's reflectors then back off quietly), and watches end.
func TestInProcessTransportRefusedWhenStopped(t *testing.T) {
	s, stop := startServer(t)
	cfg, err := s.InProcessRESTConfig("kubesim-test", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	w, err := client.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case _, ok := <-w.ResultChan():
		for ok {
			_, ok = <-w.ResultChan()
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watch outlived the server")
	}
	_, err = client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if !utilnet.IsConnectionRefused(err) {
		t.Errorf("a request to the stopped server: %v, want connection refused", err)
	}
}
