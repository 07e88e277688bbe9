package sim

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/apiserver/storage/memory"
	"github.com/kubesim/kubesim/kubeletsim"
)

// TestStartRunsTheControlPlane starts a cluster twice in one process (as a
// test suite does), checks that the genuine controllers work, and that Stop
// returns once everything has stopped.
func TestStartRunsTheControlPlane(t *testing.T) {
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		c, err := Start(ctx, Config{APIServer: apiserver.Config{AnyPort: true}})
		if err != nil {
			cancel()
			t.Fatalf("start %d: %v", i, err)
		}
		cs := kubernetes.NewForConfigOrDie(c.API.RESTConfig())
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sim"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The service account controller creates the default ServiceAccount.
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := cs.CoreV1().ServiceAccounts("sim").Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		}); err != nil {
			t.Fatalf("start %d: no default ServiceAccount: %v", i, err)
		}
		// The default ServiceCIDR is Ready once the cluster is, as
		// kube-apiserver's post-start hook makes it before /readyz.
		cidr, err := cs.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if !apimeta.IsStatusConditionTrue(cidr.Status.Conditions, networkingv1.ServiceCIDRConditionReady) {
			t.Errorf("start %d: default ServiceCIDR not Ready at start: %+v", i, cidr.Status)
		}
		// The ValidatingAdmissionPolicy status controller type-checks a
		// policy against the built-in kinds' schemas (shared by both
		// clusters of the process).
		policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "typecheck"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
					},
				}}},
				Validations: []admissionregistrationv1.Validation{{Expression: "object.spec.nope > 0"}},
			},
		}
		if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var warnings string
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			p, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, "typecheck", metav1.GetOptions{})
			if err != nil || p.Status.TypeChecking == nil {
				return false, nil
			}
			for _, w := range p.Status.TypeChecking.ExpressionWarnings {
				warnings += w.Warning
			}
			return true, nil
		}); err != nil {
			t.Fatalf("start %d: the policy was not type-checked: %v", i, err)
		}
		if !strings.Contains(warnings, "nope") {
			t.Errorf("start %d: type-checking warnings %q do not name the undefined field", i, warnings)
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop %d: %v", i, err)
		}
		cancel()
	}
}

// TestStartWithNodesRunsPods starts a cluster with simulated nodes, as
// `make run` does, and runs a Deployment's pods on them: what a newcomer's
// first `kubectl create deployment` expects.
func TestStartWithNodesRunsPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{APIServer: apiserver.Config{AnyPort: true}, Nodes: []kubeletsim.NodePool{{Count: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	cs := kubernetes.NewForConfigOrDie(c.API.RESTConfig())
	labels := map[string]string{"app": "web"}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var running int
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		running = 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" {
				running++
			}
		}
		return running == 3, nil
	}); err != nil {
		t.Fatalf("%d of 3 pods Running: %v", running, err)
	}
}

func TestConfigRejectsNegativeLimits(t *testing.T) {
	if _, err := Start(context.Background(), Config{QPS: -1}); err == nil {
		t.Fatal("a negative QPS was accepted")
	}
}

// TestLeaderElectionHandsOver runs two replicas on one storage, as two
// kubesim processes on one etcd: the first holds the scheduler's and the
// controllers' leases; once it stops (releasing them), the second takes
// them over.
func TestLeaderElectionHandsOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	start := func(identity string) *Cluster {
		c, err := Start(ctx, Config{APIServer: apiserver.Config{AnyPort: true, Storage: store}, LeaderElection: true, LeaderElectionIdentity: identity})
		if err != nil {
			t.Fatalf("start %s: %v", identity, err)
		}
		return c
	}
	holders := func(cs kubernetes.Interface, want string) {
		t.Helper()
		for _, name := range []string{"kube-scheduler", "kube-controller-manager"} {
			var got string
			if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				l, err := cs.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
				if err == nil && l.Spec.HolderIdentity != nil {
					got = *l.Spec.HolderIdentity
				}
				return got == want, nil
			}); err != nil {
				t.Fatalf("lease kube-system/%s: holder %q, want %q", name, got, want)
			}
		}
	}
	a := start("replica-a")
	holders(kubernetes.NewForConfigOrDie(a.API.RESTConfig()), "replica-a")
	b := start("replica-b")
	defer b.Stop()
	if err := a.Stop(); err != nil {
		t.Errorf("stop replica-a: %v", err)
	}
	holders(kubernetes.NewForConfigOrDie(b.API.RESTConfig()), "replica-b")
}
