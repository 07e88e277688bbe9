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

// The Service range is routed into the nodes unless the host already routes
// part of it elsewhere than by its default route or our own link.
func TestServiceRouteConflict(t *testing.T) {
	_, svc, _ := net.ParseCIDR("10.96.0.0/16")
	for _, tc := range []struct {
		name, routes string
		conflict     bool
	}{
		{"default route only", "default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2", false},
		{"ours already", "default via 192.0.2.1 dev eth0\n10.96.0.0/16 via 10.250.0.10 dev kubesim0", false},
		{"pod routes through our link", "10.244.0.0/24 via 10.250.0.10 dev kubesim0\n10.250.0.0/24 dev kubesim0 proto kernel scope link src 10.250.0.1", false},
		{"a wider LAN", "10.0.0.0/8 dev eth1 proto kernel scope link src 10.1.2.3", true},
		{"a narrower route", "10.96.5.0/24 via 192.0.2.9 dev eth0", true},
		{"one host", "10.96.0.10 via 192.0.2.9 dev eth0", true},
		{"another cluster's link", "10.96.0.0/16 via 10.250.1.10 dev kubesim1", true},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := serviceRouteConflict(tc.routes, svc, "kubesim0")
			if (err != nil) != tc.conflict {
				t.Fatalf("conflict %v, want %v (err %v)", err != nil, tc.conflict, err)
			}
		})
	}
}
