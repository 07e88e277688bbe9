package sim

import (
	"context"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/kubeletsim"
)

// TestManagersNameTheComponents: what the in-process components write
// carries, in its managed fields, the manager a cluster of the genuine
// binaries shows (their user agents' first part), not this process's name.
func TestManagersNameTheComponents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{APIServer: apiserver.Config{AnyPort: true}, Nodes: []kubeletsim.NodePool{{Count: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	cs := kubernetes.NewForConfigOrDie(c.API.RESTConfig())
	labels := map[string]string{"app": "m"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=m"})
		if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning {
			return false, nil
		}
		pod = pods.Items[0]
		return true, nil
	}); err != nil {
		t.Fatalf("no Running pod: %v", err)
	}
	lease, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what    string
		fields  []metav1.ManagedFieldsEntry
		manager string
	}{
		{"the pod, created by the ReplicaSet controller", pod.ManagedFields, "kube-controller-manager"},
		{"the pod's status", pod.ManagedFields, "kubelet"},
		{"the node's lease", lease.ManagedFields, "kubelet"},
		{"the node", node.ManagedFields, "kubelet"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			var managers []string
			for _, f := range tc.fields {
				managers = append(managers, f.Manager)
			}
			if !slices.Contains(managers, tc.manager) {
				t.Errorf("managers %q, want %q among them", managers, tc.manager)
			}
			if slices.Contains(managers, "sim.test") || slices.Contains(managers, "kubesim") {
				t.Errorf("managers %q name this process", managers)
			}
		})
	}
}
