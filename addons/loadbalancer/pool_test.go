package loadbalancer

import (
	"net/netip"
	"testing"
)

func TestPool(t *testing.T) {
	addr := netip.MustParseAddr
	type step struct {
		op      string // "alloc" or "release"
		name    string
		want    string   // requested address
		shown   []string // addresses the Service shows
		expect  string   // address returned
		wantErr bool
	}
	for _, tc := range []struct {
		name  string
		cidr  string
		steps []step
	}{
		{name: "lowest free first, network address skipped", cidr: "10.240.0.0/30", steps: []step{
			{op: "alloc", name: "a", expect: "10.240.0.1"},
			{op: "alloc", name: "b", expect: "10.240.0.2"},
			{op: "alloc", name: "a", expect: "10.240.0.1"},
			// .3 is the broadcast address.
			{op: "alloc", name: "c", wantErr: true},
			{op: "release", name: "a"},
			{op: "alloc", name: "c", expect: "10.240.0.1"},
		}},
		{name: "requested address", cidr: "10.240.0.0/24", steps: []step{
			{op: "alloc", name: "a", want: "10.240.0.7", expect: "10.240.0.7"},
			{op: "alloc", name: "b", want: "10.240.0.7", wantErr: true},
			{op: "alloc", name: "b", want: "10.241.0.7", wantErr: true},
			{op: "alloc", name: "b", want: "10.240.0.255", wantErr: true},
			{op: "alloc", name: "b", expect: "10.240.0.1"},
		}},
		{name: "a restarted controller keeps the addresses Services show", cidr: "10.240.0.0/24", steps: []step{
			{op: "alloc", name: "a", shown: []string{"10.240.0.9"}, expect: "10.240.0.9"},
			{op: "alloc", name: "b", shown: []string{"10.240.0.9", "192.168.0.1"}, expect: "10.240.0.1"},
		}},
		{name: "IPv6", cidr: "fd00:10:240::/126", steps: []step{
			{op: "alloc", name: "a", expect: "fd00:10:240::1"},
			{op: "alloc", name: "b", expect: "fd00:10:240::2"},
			{op: "alloc", name: "c", expect: "fd00:10:240::3"},
			{op: "alloc", name: "d", wantErr: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPool(tc.cidr)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				if s.op == "release" {
					p.Release(s.name)
					continue
				}
				var want netip.Addr
				if s.want != "" {
					want = addr(s.want)
				}
				var shown []netip.Addr
				for _, a := range s.shown {
					shown = append(shown, addr(a))
				}
				got, err := p.Allocate(s.name, want, shown)
				if (err != nil) != s.wantErr {
					t.Fatalf("step %d: Allocate(%q): error %v, want error %v", i, s.name, err, s.wantErr)
				}
				if err == nil && got != addr(s.expect) {
					t.Fatalf("step %d: Allocate(%q) = %s, want %s", i, s.name, got, s.expect)
				}
			}
		})
	}
}

func TestNewPoolRefusesBadRanges(t *testing.T) {
	for _, cidr := range []string{"", "10.240.0.1/24", "10.240.0.0/31", "10.240.0.0", "nonsense/8"} {
		if _, err := NewPool(cidr); err == nil {
			t.Errorf("NewPool(%q): no error", cidr)
		}
	}
}
