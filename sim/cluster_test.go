package sim

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubesim/kubesim/apiserver"
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
		if err := c.Stop(); err != nil {
			t.Errorf("stop %d: %v", i, err)
		}
		cancel()
	}
}

func TestConfigRejectsNegativeLimits(t *testing.T) {
	if _, err := Start(context.Background(), Config{QPS: -1}); err == nil {
		t.Fatal("a negative QPS was accepted")
	}
}
