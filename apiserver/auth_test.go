package apiserver

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
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
