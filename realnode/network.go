package realnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/klog/v2"
)

// The network of one cluster's real nodes, index N (0-255), all of it on
// this machine:
//
//	host netns                hub netns "kubesim-N-hub"          node netns "kubesim-N-NODE"
//	kubesimN 10.250.N.1/24 -- up0 + br0 + vNODE ---------------- eth0 10.250.N.(10+i)/24
//
// The host end carries the address the nodes reach the API server at (a
// forwarder listens there) and the route the API server reaches kubelets
// and pods by. A node netns has routes to the link's /24, to the other
// nodes' podCIDRs and to the Service range (a bridge without ports, so that a
// ClusterIP kube-proxy does not catch goes nowhere) and no default route:
// nothing a node, containerd or a pod sends can leave the machine. The host
// does not forward (its routes only point into our namespaces).
const (
	netPrefix   = "10.250"
	hostLinkFmt = "kubesim%d"
	maxClusters = 256
	// nodeHostOffset is the last octet of the first node's address.
	nodeHostOffset = 10
)

// netnsName is the name of cluster n's network namespace for node (or "hub").
func netnsName(n int, node string) string { return fmt.Sprintf("kubesim-%d-%s", n, node) }

func hostLink(n int) string { return fmt.Sprintf(hostLinkFmt, n) }

// hostIP is the host end's address in cluster n's link.
func hostIP(n int) string { return fmt.Sprintf("%s.%d.1", netPrefix, n) }

// nodeIP is the address of the i-th node (from 0) of cluster n.
func nodeIP(n, i int) string { return fmt.Sprintf("%s.%d.%d", netPrefix, n, nodeHostOffset+i) }

// ipCmd runs ip(8) with args.
func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// claimNetwork creates cluster n's hub for the first free n. The claim is
// the owner file, created whole and atomically (link(2) of a written
// file): a sweep never takes a network that is being set up for someone
// alive.
func claimNetwork(ctx context.Context, owner string) (int, error) {
	logger := klog.FromContext(ctx)
	if err := os.MkdirAll(runRoot, 0o700); err != nil {
		return -1, err
	}
	tmp, err := os.CreateTemp(runRoot, ".owner-")
	if err != nil {
		return -1, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(owner); err != nil {
		tmp.Close()
		return -1, err
	}
	if err := tmp.Close(); err != nil {
		return -1, err
	}
	for n := 0; n < maxClusters; n++ {
		if err := os.Link(tmp.Name(), ownerFile(n)); err != nil {
			if !os.IsExist(err) {
				return -1, err
			}
			continue
		}
		if _, err := net.InterfaceByName(hostLink(n)); err == nil {
			// A leftover nobody owns (an owner's death between claim and
			// sweep): it is ours to remove.
			logger.Info("Removing a leftover network", "index", n)
			if err := teardownNetwork(ctx, n); err != nil {
				return -1, err
			}
		}
		hub := netnsName(n, "hub")
		peer := hostLink(n) + "p"
		if err := ipCmd(ctx, "link", "add", hostLink(n), "type", "veth", "peer", "name", peer); err != nil {
			return -1, errors.Join(err, teardownNetwork(ctx, n), os.Remove(ownerFile(n)))
		}
		steps := [][]string{
			{"netns", "add", hub},
			{"link", "set", peer, "netns", hub},
			{"-n", hub, "link", "set", peer, "name", "up0"},
			{"-n", hub, "link", "add", "br0", "type", "bridge"},
			{"-n", hub, "link", "set", "br0", "up"},
			{"-n", hub, "link", "set", "up0", "master", "br0", "up"},
			{"-n", hub, "link", "set", "lo", "up"},
			{"addr", "add", hostIP(n) + "/24", "dev", hostLink(n)},
			{"link", "set", hostLink(n), "up"},
		}
		for _, s := range steps {
			if err := ipCmd(ctx, s...); err != nil {
				return -1, errors.Join(err, teardownNetwork(ctx, n), os.Remove(ownerFile(n)))
			}
		}
		return n, nil
	}
	return -1, fmt.Errorf("no free network for real nodes: %s0 to %s%d all exist", "kubesim", "kubesim", maxClusters-1)
}

// addNodeNetwork creates node's netns in cluster n with address ip, linked
// to the hub.
func addNodeNetwork(ctx context.Context, n int, node, ip, serviceCIDR, loadBalancerCIDR string) error {
	ns, hub := netnsName(n, node), netnsName(n, "hub")
	// Peer names are unique per hub: v + the address's last octet.
	peer := "v" + ip[strings.LastIndex(ip, ".")+1:]
	tmp := fmt.Sprintf("ks%dv%s", n, ip[strings.LastIndex(ip, ".")+1:])
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", tmp, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", tmp, "netns", hub},
		{"-n", hub, "link", "set", tmp, "name", peer},
		{"-n", hub, "link", "set", peer, "master", "br0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "add", "kubesim-svc", "type", "bridge"},
		{"-n", ns, "link", "set", "kubesim-svc", "up"},
		{"-n", ns, "route", "add", serviceCIDR, "dev", "kubesim-svc"},
	}
	if loadBalancerCIDR != "" {
		// As ClusterIPs: kube-proxy's rules catch the addresses of
		// LoadBalancer Services; any other goes nowhere.
		steps = append(steps, []string{"-n", ns, "route", "add", loadBalancerCIDR, "dev", "kubesim-svc"})
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

// routeServiceCIDR routes the Service range from the host into the node
// netns at gw, the first node's address: there kube-proxy's rules catch
// ClusterIPs (and masquerade traffic from outside the cluster CIDR, so
// replies come back the same way), as they would on the node a
// kube-apiserver runs on. The API server (kubesim's, or the genuine
// kube-apiserver that real nodes joined) reaches webhooks and aggregated
// APIs at their Service's ClusterIP. A ClusterIP nobody serves then goes
// into that node's port-less bridge instead of the host's default route.
// The route is not added when the host already routes part of the range
// other than by its default route: it would take over that network.
func routeServiceCIDR(ctx context.Context, n int, serviceCIDR, gw string) error {
	_, svc, err := net.ParseCIDR(serviceCIDR)
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "ip", "-o", "-4", "route", "show").Output()
	if err != nil {
		return fmt.Errorf("ip route show: %w", err)
	}
	if err := serviceRouteConflict(string(out), svc, hostLink(n)); err != nil {
		return err
	}
	return ipCmd(ctx, "route", "replace", serviceCIDR, "via", gw, "dev", hostLink(n))
}

// serviceRouteConflict finds, in routes (ip -o -4 route show), a route
// other than the default one and those through link that covers part of
// svc.
func serviceRouteConflict(routes string, svc *net.IPNet, link string) error {
	for _, line := range strings.Split(strings.TrimSpace(routes), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		dst := f[0]
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		_, r, err := net.ParseCIDR(dst)
		if err != nil || !(r.Contains(svc.IP) || svc.Contains(r.IP)) {
			continue
		}
		if strings.Contains(" "+line+" ", " dev "+link+" ") {
			continue // ours
		}
		return fmt.Errorf("the host routes %s (%q): not routing the Service range %s into the nodes", dst, line, svc)
	}
	return nil
}

// routePodCIDR makes cidr reachable via gw in netns ns ("" is the host's).
func routePodCIDR(ctx context.Context, ns, cidr, gw string) error {
	args := []string{"route", "replace", cidr, "via", gw}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return ipCmd(ctx, args...)
}

// teardownNetwork deletes cluster n's namespaces and host link (which
// takes every route through it along).
func teardownNetwork(ctx context.Context, n int) error {
	var errs []error
	// The host link first: deleting the hub would delete its peer, and
	// with it the host end, asynchronously.
	if _, err := net.InterfaceByName(hostLink(n)); err == nil {
		if err := ipCmd(ctx, "link", "delete", hostLink(n)); err != nil && !linkGone(n) {
			errs = append(errs, err)
		}
	}
	entries, _ := os.ReadDir("/run/netns")
	prefix := netnsName(n, "")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := ipCmd(ctx, "netns", "delete", e.Name()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// linkGone says whether cluster n's host link no longer exists.
func linkGone(n int) bool {
	_, err := net.InterfaceByName(hostLink(n))
	return err != nil
}

// ownerFile records which process holds cluster n's network ("PID
// START"), so that a later start can sweep what a killed one left.
func ownerFile(n int) string { return filepath.Join(runRoot, "owner-"+strconv.Itoa(n)) }

// ownerAlive says whether the process recorded as n's owner still runs.
func ownerAlive(n int) bool {
	b, err := os.ReadFile(ownerFile(n))
	if err != nil {
		return false
	}
	pid, start, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	if !ok {
		return false
	}
	p, err := strconv.Atoi(pid)
	if err != nil {
		return false
	}
	return processStart(p) == start
}

// processStart is a process's start time in clock ticks since boot (field
// 22 of /proc/PID/stat): with the pid it names one process, even after the
// pid is reused.
func processStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	// The command name (field 2) may hold spaces: fields count from its ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// ownerID names this process for ownerFile.
func ownerID() string { return fmt.Sprintf("%d %s", os.Getpid(), processStart(os.Getpid())) }
