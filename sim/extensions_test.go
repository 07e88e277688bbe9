package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

var widgets = schema.GroupVersionResource{Group: "example.kubesim.io", Version: "v1", Resource: "widgets"}

func widget(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.kubesim.io/v1", "kind": "Widget",
		"metadata": map[string]any{"name": name}, "spec": map[string]any{"size": "large"},
	}}
}

// TestClustersInParallel starts eight clusters at once in one test binary,
// each with its CRD installed by Start, and uses and stops each: they are
// isolated (own ports, own storage), and TestMain checks that none leaves a
// goroutine behind.
func TestClustersInParallel(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprintf("cluster-%d", i), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c, err := Start(ctx, Config{CRDDirectoryPaths: []string{filepath.Join("..", "testdata", "crds")}, ErrorIfCRDPathMissing: true})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := c.Stop(); err != nil {
					t.Error(err)
				}
			}()
			cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
			ns := fmt.Sprintf("parallel-%d", i)
			if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
			// Installed and served when Start returned: no waiting.
			created, err := dyn.Resource(widgets).Namespace(ns).Create(ctx, widget(fmt.Sprintf("w%d", i)), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if replicas, _, _ := unstructured.NestedInt64(created.Object, "spec", "replicas"); replicas != 1 {
				t.Errorf("spec.replicas = %d, want the schema's default 1", replicas)
			}
			// Another cluster's objects are not here.
			list, err := dyn.Resource(widgets).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != 1 || list.Items[0].GetName() != fmt.Sprintf("w%d", i) {
				t.Errorf("cluster %d lists %d widgets, want its own one", i, len(list.Items))
			}
		})
	}
}

// TestResetLeavesTheClusterAsStarted: what specs create goes (namespaces
// and their objects, objects in default, custom resources); what the
// control plane made stays.
func TestResetLeavesTheClusterAsStarted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{CRDDirectoryPaths: []string{filepath.Join("..", "testdata", "crds", "widgets.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "spec"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"spec", "default", "kube-system"} {
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "left"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(widgets).Namespace(ns).Create(ctx, widget("left"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		get  func() error
		gone bool
	}{
		{"namespace spec", func() error { _, err := cs.CoreV1().Namespaces().Get(ctx, "spec", metav1.GetOptions{}); return err }, true},
		{"configmap in spec", func() error {
			_, err := cs.CoreV1().ConfigMaps("spec").Get(ctx, "left", metav1.GetOptions{})
			return err
		}, true},
		{"configmap in default", func() error {
			_, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "left", metav1.GetOptions{})
			return err
		}, true},
		{"widget in kube-system", func() error {
			_, err := dyn.Resource(widgets).Namespace("kube-system").Get(ctx, "left", metav1.GetOptions{})
			return err
		}, true},
		{"configmap in kube-system", func() error {
			_, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "left", metav1.GetOptions{})
			return err
		}, false},
		{"namespace default", func() error { _, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); return err }, false},
		{"service kubernetes", func() error {
			_, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
			return err
		}, false},
		{"CRD", func() error {
			_, err := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).Get(ctx, "widgets.example.kubesim.io", metav1.GetOptions{})
			return err
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.get()
			if gone := apierrors.IsNotFound(err); gone != tt.gone || (err != nil && !gone) {
				t.Errorf("gone = %v (err %v), want %v", gone, err, tt.gone)
			}
		})
	}
	// The cluster works on: a namespace of the same name can be made again.
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "spec"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestWebhookHandlerServedByStart: Start serves the operator's handler
// with a certificate the API server trusts, and points the registered
// configuration (which names a service path, as kubebuilder generates it)
// at it.
func TestWebhookHandlerServedByStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mux := http.NewServeMux()
	mux.HandleFunc("/validate-configmaps", func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: review.Request.Name != "forbidden",
			Result: &metav1.Status{Message: "no forbidden ConfigMaps"}}
		review.Request = nil
		_ = json.NewEncoder(w).Encode(review)
	})
	c, err := Start(ctx, Config{DisableScheduler: true, DisableControllers: true, Webhooks: Webhooks{
		Handler: mux,
		Validating: []*admissionregistrationv1.ValidatingWebhookConfiguration{{
			ObjectMeta: metav1.ObjectMeta{Name: "configmaps"},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name: "configmaps.kubesim.io",
				ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
					Namespace: "system", Name: "webhook-service", Path: ptr.To("/validate-configmaps")}},
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				}},
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				AdmissionReviewVersions: []string{"v1"},
			}},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
	var denied error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		_, denied = cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "forbidden"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if denied != nil {
			break
		}
		// The API server's informer has not seen the configuration yet.
		time.Sleep(10 * time.Millisecond)
	}
	if want := `admission webhook "configmaps.kubesim.io" denied the request: no forbidden ConfigMaps`; denied == nil || denied.Error() != want {
		t.Fatalf("create of a forbidden ConfigMap: %v, want %q", denied, want)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "allowed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
