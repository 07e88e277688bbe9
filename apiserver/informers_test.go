package apiserver

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// The API server's own informers (PodSecurity's caches every pod) keep
// no managed fields by default, and use the transform a caller gives.
func TestInformerTransform(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transform func(interface{}) (interface{}, error)
		check     func(*corev1.Pod) bool
	}{
		{"default drops managed fields", nil, func(p *corev1.Pod) bool { return p.ManagedFields == nil }},
		{"a caller's transform", func(obj interface{}) (interface{}, error) {
			if p, ok := obj.(*corev1.Pod); ok {
				p = p.DeepCopy()
				p.Labels = map[string]string{"transformed": "yes"}
				return p, nil
			}
			return obj, nil
		}, func(p *corev1.Pod) bool { return p.Labels["transformed"] == "yes" && p.ManagedFields != nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			s, err := New(Config{AnyPort: true, InformerTransform: tc.transform})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); s.Start(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
			<-s.Ready()
			client := kubernetes.NewForConfigOrDie(s.RESTConfig())
			if _, err := client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			created, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "p"},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(created.ManagedFields) == 0 {
				t.Fatal("the API returns no managed fields")
			}
			lister := s.informers.Core().V1().Pods().Lister()
			var cached *corev1.Pod
			err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
				cached, _ = lister.Pods("default").Get("p")
				return cached != nil, nil
			})
			if err != nil {
				t.Fatal("the API server's pod informer never saw the pod")
			}
			if !tc.check(cached) {
				t.Fatalf("cached pod: labels %v, %d managed fields", cached.Labels, len(cached.ManagedFields))
			}
		})
	}
}
