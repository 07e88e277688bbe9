package realnode

import (
	"context"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Concurrent claims get different networks, and a sweep leaves a network
// whose owner is alive alone, however young its claim.
func TestClaimsAreExclusiveAndSweepSparesTheLiving(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip(8) (iproute2) is missing")
	}
	ctx := context.Background()
	const claims = 4
	got := make([]int, claims)
	errs := make([]error, claims)
	var wg sync.WaitGroup
	for i := range claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = claimNetwork(ctx, ownerID())
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for i, n := range got {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		t.Cleanup(func() {
			if err := teardown(context.Background(), n); err != nil {
				t.Errorf("teardown %d: %v", n, err)
			}
		})
		if seen[n] {
			t.Errorf("network %d claimed twice: %v", n, got)
		}
		seen[n] = true
	}
	Sweep(ctx)
	for n := range seen {
		if _, err := net.InterfaceByName(hostLink(n)); err != nil {
			t.Errorf("Sweep removed live network %d: %v", n, err)
		}
		if !ownerAlive(n) {
			t.Errorf("network %d: owner not alive", n)
		}
	}
}
