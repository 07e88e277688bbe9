package kubeletsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ipAllocator hands out pod IPs from a node's podCIDR, as the bridge CNI
// plugin's host-local IPAM does: the network address and the gateway (the
// first address) are never given, freed addresses are given again after
// the others.
type ipAllocator struct {
	prefix netip.Prefix
	size   uint64 // addresses in the range
	next   uint64 // offset tried first
	used   map[uint64]bool
}

var errRangeFull = errors.New("no free pod IP in the node's podCIDR")

func newIPAllocator(cidr string) (*ipAllocator, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("invalid podCIDR %q: %w", cidr, err)
	}
	p = p.Masked()
	bits := p.Addr().BitLen() - p.Bits()
	if bits > 32 {
		bits = 32 // an IPv6 /64 is more than a node can hold
	}
	size := uint64(1) << bits
	if size < 4 {
		return nil, fmt.Errorf("podCIDR %s is too small", cidr)
	}
	return &ipAllocator{prefix: p, size: size, next: 2, used: map[uint64]bool{}}, nil
}

// allocate returns a free address.
func (a *ipAllocator) allocate() (string, error) {
	last := a.size - 1 // the broadcast address of an IPv4 range
	for range a.size {
		off := a.next
		a.next++
		if a.next >= last {
			a.next = 2
		}
		if off < 2 || off >= last || a.used[off] {
			continue
		}
		a.used[off] = true
		return a.addr(off).String(), nil
	}
	return "", errRangeFull
}

// release frees an address given by allocate.
func (a *ipAllocator) release(ip string) {
	addr, err := netip.ParseAddr(ip)
	if err != nil || !a.prefix.Contains(addr) {
		return
	}
	base, cur := a.prefix.Addr().AsSlice(), addr.AsSlice()
	off := uint64(binary.BigEndian.Uint32(cur[len(cur)-4:]) - binary.BigEndian.Uint32(base[len(base)-4:]))
	delete(a.used, off)
}

func (a *ipAllocator) addr(off uint64) netip.Addr {
	b := a.prefix.Addr().AsSlice()
	v := binary.BigEndian.Uint32(b[len(b)-4:]) + uint32(off)
	binary.BigEndian.PutUint32(b[len(b)-4:], v)
	addr, _ := netip.AddrFromSlice(b)
	return addr
}
