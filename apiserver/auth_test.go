package apiserver

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
)

// TestAuthorizationModes: the modes decide, after system:masters, what a
// user with no role may do, as kube-apiserver's --authorization-mode.
func TestAuthorizationModes(t *testing.T) {
	tests := []struct {
		name      string
		modes     []string
		allowed   bool   // may a user without roles list configmaps
		createErr string // New's error, if any
	}{
		{name: "default Node,RBAC", allowed: false},
		{name: "AlwaysAllow, as scheduler_perf's API server", modes: []string{AuthorizationModeAlwaysAllow}, allowed: true},
		{name: "RBAC then AlwaysAllow", modes: []string{AuthorizationModeRBAC, AuthorizationModeAlwaysAllow}, allowed: true},
		{name: "AlwaysDeny", modes: []string{AuthorizationModeAlwaysDeny}, allowed: false},
		{name: "unknown", modes: []string{"ABAC"}, createErr: `authorization mode "ABAC" is not one of`},
		{name: "twice", modes: []string{AuthorizationModeRBAC, AuthorizationModeRBAC}, createErr: `authorization mode "RBAC" is given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.createErr != "" {
				_, err := New(Config{AnyPort: true, AuthorizationModes: tt.modes})
				if err == nil || !strings.Contains(err.Error(), tt.createErr) {
					t.Fatalf("New: %v, want an error with %q", err, tt.createErr)
				}
				return
			}
			s, _ := startServerWith(t, Config{AnyPort: true, AuthorizationModes: tt.modes})
			ctx := context.Background()
			for _, u := range []struct {
				name   string
				groups []string
				want   bool
			}{{"alice", nil, tt.allowed}, {"admin", []string{"system:masters"}, true}} {
				cfg, err := s.InProcessRESTConfig(u.name, u.groups...)
				if err != nil {
					t.Fatal(err)
				}
				_, err = kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
				switch {
				case u.want && err != nil:
					t.Errorf("%s: %v, want allowed", u.name, err)
				case !u.want && !apierrors.IsForbidden(err):
					t.Errorf("%s: %v, want 403 Forbidden", u.name, err)
				}
			}
		})
	}
}

// TestBindingManagedFields: while no admission webhook or policy exists,
// the Binding the scheduler posts gets no managed fields (nothing could see
// them), and binding works as ever; once one exists, the field manager
// tracks them again.
func TestBindingManagedFields(t *testing.T) {
	// No service account controller here.
	s, _ := startServerWith(t, Config{AnyPort: true, DisableAdmissionPlugins: []string{"ServiceAccount"}})
	noHooks := noAdmissionHooks(s.informers)
	if !noHooks() {
		t.Fatal("a fresh server reports admission hooks (or its informers have not synced once it is ready)")
	}
	c := bindingCreater{ObjectCreater: legacyscheme.Scheme, noHooks: noHooks}
	live, err := c.New(corev1.SchemeGroupVersion.WithKind("Binding"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := live.(*metav1.Status); !ok {
		t.Errorf("live object %T, want one without metadata (the field manager then leaves the Binding alone)", live)
	}

	ctx := context.Background()
	cfg, err := s.InProcessRESTConfig("admin", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: pod.UID}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	if err != nil || got.Spec.NodeName != "n1" {
		t.Fatalf("after the binding: %v, node %q, want n1", err, got.Spec.NodeName)
	}

	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "any"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/binding"}},
			}}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "true"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The informer delivers the policy; the server's own watch is
	// in-process, so this takes milliseconds, bounded here generously.
	deadline := time.Now().Add(30 * time.Second)
	for noHooks() {
		if time.Now().After(deadline) {
			t.Fatal("a policy exists and the server still reports no admission hooks")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if live, err := c.New(corev1.SchemeGroupVersion.WithKind("Binding")); err != nil {
		t.Fatal(err)
	} else if _, ok := live.(*corev1.Binding); !ok {
		t.Errorf("with a policy, live object %T, want a Binding (its managed fields tracked)", live)
	}
}
