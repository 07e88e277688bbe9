package realnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	netutils "k8s.io/utils/net"

	"github.com/kubesim/kubesim/internal/pki"
)

// Config configures a set of real nodes. Start validates and defaults it.
type Config struct {
	// REST reaches the API server the nodes join, with rights to read
	// Nodes (the routes between nodes follow their podCIDRs) and delete
	// them. Required.
	REST *rest.Config
	// CA is the cluster's CA. It issues the nodes' credentials as kubeadm
	// would: the kubelet's client certificate (system:node:NAME in
	// system:nodes), its serving certificate (the node's name and IP) and
	// kube-proxy's (system:kube-proxy). Required.
	CA *pki.CA
	// Count is the number of nodes. Required, at least 1.
	Count int
	// NamePrefix starts node names, followed by an index from 0.
	// Default: "real-".
	NamePrefix string
	// ClusterCIDR is the range of the pods' addresses (node IPAM's
	// --cluster-cidr), which kube-proxy treats as in-cluster.
	// Default: 10.244.0.0/16.
	ClusterCIDR string
	// ServiceCIDR is the range of ClusterIPs. Default: 10.96.0.0/16.
	ServiceCIDR string
	// LoadBalancerCIDR is the range LoadBalancer Services' addresses come
	// from; it is routed as the Service range is (into the nodes, where
	// kube-proxy's rules catch the addresses), so that they route from the
	// host and the nodes. Default: none.
	LoadBalancerCIDR string
	// ClusterDNS is the nameserver of the pods' resolv.conf. Default: the
	// 10th address of ServiceCIDR, as kubeadm's kube-dns Service.
	ClusterDNS string
	// ClusterDomain is the cluster's DNS domain. Default: cluster.local.
	ClusterDomain string
	// ImagesDir holds the image tarballs imported into every node's
	// containerd (make images builds them). A node imports the bundle of
	// make images' images (BundleFile) if there is one, and every other
	// docker-archive or OCI tarball NAME.tar there that make images did
	// not write (it has no NAME.tar.stamp beside it), so users can add
	// their own. Default: DefaultImagesDir().
	ImagesDir string
	// Labels go on every node, besides kubesim.io/node-type=real.
	Labels map[string]string
	// Executable is the binary the nodes' processes run: one that calls
	// nodeexec.Main first (the kubesim binary does). Default: this
	// process's executable.
	Executable string
}

// BundleFile, in ImagesDir, holds every image make images builds, each
// layer once (their own tarballs repeat the agnhost layers four times).
const BundleFile = "all-images.bundle"

// DefaultImagesDir is where make images writes the image tarballs:
// $KUBESIM_IMAGES, else kubesim/images in the user's cache directory.
func DefaultImagesDir() string {
	if d := os.Getenv("KUBESIM_IMAGES"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "kubesim", "images")
}

func (c *Config) complete() error {
	if c.REST == nil || c.CA == nil {
		return errors.New("real nodes need the API server's REST config and the cluster's CA")
	}
	if c.Count < 1 || c.Count > 200 {
		return fmt.Errorf("real nodes: count %d is not within 1 to 200", c.Count)
	}
	if c.NamePrefix == "" {
		c.NamePrefix = "real-"
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = "10.244.0.0/16"
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.96.0.0/16"
	}
	_, svc, err := netutils.ParseCIDRSloppy(c.ServiceCIDR)
	if err != nil {
		return fmt.Errorf("real nodes: service CIDR: %w", err)
	}
	_, pods, err := netutils.ParseCIDRSloppy(c.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("real nodes: cluster CIDR: %w", err)
	}
	// kube-proxy masquerades traffic to a ClusterIP only from outside the
	// cluster CIDR: the nodes' network (where the API server's traffic
	// comes from) must be outside it, or replies from pods on other nodes
	// would bypass the node that translated the request.
	_, nodesNet, _ := net.ParseCIDR(netPrefix + ".0.0/16")
	for _, r := range []struct {
		name string
		n    *net.IPNet
	}{{"cluster", pods}, {"service", svc}} {
		if r.n.Contains(nodesNet.IP) || nodesNet.Contains(r.n.IP) {
			return fmt.Errorf("real nodes: the %s CIDR %s overlaps the nodes' network %s", r.name, r.n, nodesNet)
		}
	}
	if c.ClusterDNS == "" {
		ip, err := netutils.GetIndexedIP(svc, 10)
		if err != nil {
			return err
		}
		c.ClusterDNS = ip.String()
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.ImagesDir == "" {
		c.ImagesDir = DefaultImagesDir()
	}
	if c.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		c.Executable = exe
	}
	return nil
}

// Preflight returns an error naming everything this machine lacks for real
// nodes: root, the Debian packages' programs, the CNI plugins, the images.
func Preflight(imagesDir string) error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (real nodes create network namespaces, mounts and cgroups)")
	}
	for _, p := range []struct{ bin, pkg string }{
		{"ip", "iproute2"}, {"nsenter", "util-linux"}, {"containerd", "containerd"}, {"ctr", "containerd"},
		{"runc", "runc"}, {"iptables", "iptables"}, {"iptables-save", "iptables"}, {"iptables-restore", "iptables"},
		{"conntrack", "conntrack"},
	} {
		if _, err := exec.LookPath(p.bin); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", p.bin, p.pkg))
		}
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			missing = append(missing, fmt.Sprintf("/usr/lib/cni/%s (Debian package containernetworking-plugins)", p))
		}
	}
	if len(hierarchies()) == 0 {
		missing = append(missing, "cgroup v1 hierarchies under "+cgroupMount)
	}
	for _, f := range []string{"pause.tar", "busybox.tar", "agnhost.tar"} {
		if _, err := os.Stat(filepath.Join(imagesDir, f)); err != nil {
			missing = append(missing, fmt.Sprintf("image %s (make images)", filepath.Join(imagesDir, f)))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("real nodes cannot run here; missing: %v", missing)
	}
	return nil
}

// Nodes are running real nodes.
type Nodes struct {
	cfg    Config
	index  int
	names  []string
	specs  []*spec
	procs  []*exec.Cmd
	fwd    *forwarder
	client kubernetes.Interface
	cancel context.CancelFunc
	wg     sync.WaitGroup
	exited []chan struct{}

	stopOnce sync.Once
	stopErr  error
}

// Names are the nodes' names.
func (n *Nodes) Names() []string { return n.names }

// NetNS is the path of the named node's network namespace, where its pods
// and Services are reachable (nsenter --net=PATH).
func (n *Nodes) NetNS(name string) string {
	return filepath.Join("/run/netns", netnsName(n.index, name))
}

// Start sweeps what killed kubesim processes left, creates the nodes'
// network, starts each node's process and returns once every node has
// started (not yet Ready: see WaitReady). Stop tears everything down.
func Start(ctx context.Context, cfg Config) (_ *Nodes, err error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	if err := Preflight(cfg.ImagesDir); err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx).WithName("realnode")
	ctx = klog.NewContext(ctx, logger)
	began := time.Now()
	Sweep(ctx)
	client, err := kubernetes.NewForConfig(cfg.REST)
	if err != nil {
		return nil, err
	}
	index, err := claimNetwork(ctx, ownerID())
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n := &Nodes{cfg: cfg, index: index, client: client, cancel: cancel}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Stop())
		}
	}()
	u, err := url.Parse(cfg.REST.Host)
	if err != nil {
		return nil, err
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "443")
	}
	if n.fwd, err = newForwarder(net.JoinHostPort(hostIP(index), "0"), target); err != nil {
		return nil, err
	}
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.fwd.serve(runCtx) }()
	for i := 0; i < cfg.Count; i++ {
		name := cfg.NamePrefix + strconv.Itoa(i)
		s, err := n.prepare(ctx, i, name, u.Hostname())
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		if err := addNodeNetwork(ctx, index, name, s.IP, cfg.ServiceCIDR, cfg.LoadBalancerCIDR); err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		if err := n.startProcess(runCtx, s); err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		n.names = append(n.names, name)
		logger.V(2).Info("Real node process started", "node", name, "elapsed", time.Since(began))
	}
	if cfg.Count > 0 {
		if err := routeServiceCIDR(ctx, index, cfg.ServiceCIDR, nodeIP(index, 0)); err != nil {
			// Only what the API server reaches at a ClusterIP (webhooks,
			// aggregated APIs) is lost: say so and go on.
			logger.Error(err, "Routing the Service range from the host")
		}
		if cfg.LoadBalancerCIDR != "" {
			if err := routeServiceCIDR(ctx, index, cfg.LoadBalancerCIDR, nodeIP(index, 0)); err != nil {
				logger.Error(err, "Routing the load balancers' range from the host")
			}
		}
	}
	if err := n.startDNS(runCtx); err != nil {
		return nil, err
	}
	logger.V(2).Info("Cluster DNS started", "elapsed", time.Since(began))
	if err := n.publishAPIEndpoint(ctx); err != nil {
		return nil, fmt.Errorf("publishing the API server's address for pods: %w", err)
	}
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.syncRoutes(runCtx) }()
	logger.Info("Real nodes started", "nodes", n.names, "network", fmt.Sprintf("%s.%d.0/24", netPrefix, index), "elapsed", time.Since(began))
	return n, nil
}

// prepare writes node i's directories, credentials and configuration.
func (n *Nodes) prepare(ctx context.Context, i int, name, serverName string) (*spec, error) {
	cfg := n.cfg
	s := &spec{
		Name:        name,
		Index:       n.index,
		IP:          nodeIP(n.index, i),
		DataDir:     filepath.Join(dataRoot, strconv.Itoa(n.index), name),
		RunDir:      filepath.Join(runRoot, strconv.Itoa(n.index), name),
		Cgroup:      cgroupPath(n.index, name),
		ClusterCIDR: cfg.ClusterCIDR,
		ServiceCIDR: cfg.ServiceCIDR,
		ClusterDNS:  cfg.ClusterDNS,
		Domain:      cfg.ClusterDomain,
		ImagesDir:   cfg.ImagesDir,
		Labels:      map[string]string{NodeTypeLabel: "real"},
	}
	for k, v := range cfg.Labels {
		s.Labels[k] = v
	}
	for _, d := range []string{s.DataDir, s.RunDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := ensureCgroup(s.Cgroup + "/system"); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", s.Cgroup, err)
	}
	kubeletClient, err := cfg.CA.Issue(pki.CertOptions{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}})
	if err != nil {
		return nil, err
	}
	serving, err := cfg.CA.Issue(pki.CertOptions{CommonName: name, DNSNames: []string{name}, IPs: []net.IP{net.ParseIP(s.IP)}, Server: true})
	if err != nil {
		return nil, err
	}
	proxyClient, err := cfg.CA.Issue(pki.CertOptions{CommonName: "system:kube-proxy"})
	if err != nil {
		return nil, err
	}
	server := "https://" + net.JoinHostPort(hostIP(n.index), strconv.Itoa(n.fwd.ln.Addr().(*net.TCPAddr).Port))
	kubeconfig := func(user string, kp *pki.KeyPair) ([]byte, error) {
		c := clientcmdapi.NewConfig()
		c.Clusters["kubesim"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: cfg.REST.CAData, TLSServerName: serverName}
		if len(cfg.REST.CAData) == 0 && cfg.REST.CAFile != "" {
			c.Clusters["kubesim"].CertificateAuthority = cfg.REST.CAFile
		}
		c.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}
		c.Contexts["kubesim"] = &clientcmdapi.Context{Cluster: "kubesim", AuthInfo: user}
		c.CurrentContext = "kubesim"
		return clientcmd.Write(*c)
	}
	kl, err := kubeconfig("system:node:"+name, kubeletClient)
	if err != nil {
		return nil, err
	}
	kp, err := kubeconfig("system:kube-proxy", proxyClient)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"kubelet.kubeconfig":    kl,
		"kube-proxy.kubeconfig": kp,
		"ca.crt":                cfg.CA.CertPEM,
		"kubelet.crt":           serving.CertPEM,
		"kubelet.key":           serving.KeyPEM,
		"kubelet.yaml":          []byte(s.kubeletConfig()),
		"kube-proxy.yaml":       []byte(s.kubeProxyConfig()),
		"containerd.toml":       []byte(s.containerdConfig()),
		"cni.template":          []byte(s.cniTemplate()),
		// No upstream nameserver: nothing leaves the machine.
		"resolv.conf": []byte("# kubesim real node: no upstream DNS, nothing routes off this machine\n"),
	}
	for f, b := range files {
		if err := os.WriteFile(s.path(f), b, 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(s.path("net.d"), 0o755); err != nil {
		return nil, err
	}
	if err := writeSpec(s); err != nil {
		return nil, err
	}
	n.specs = append(n.specs, s)
	return s, nil
}

// startProcess starts the node's supervisor: this binary, in the node's
// network namespace (nsenter) and a new mount namespace, killed with its
// parent.
func (n *Nodes) startProcess(ctx context.Context, s *spec) error {
	logFile, err := os.OpenFile(s.path("supervisor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command("nsenter", "--net="+filepath.Join("/run/netns", netnsName(n.index, s.Name)), "--",
		n.cfg.Executable, ExecCommand, "supervise", s.RunDir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), verbosityEnv+"="+strconv.Itoa(verbosity()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting the node's process: %w", err)
	}
	exited := make(chan struct{})
	n.procs = append(n.procs, cmd)
	n.exited = append(n.exited, exited)
	go func() {
		err := cmd.Wait()
		logFile.Close()
		close(exited)
		if ctx.Err() == nil {
			klog.FromContext(ctx).Error(err, "Real node process exited", "node", s.Name, "log", s.path("supervisor.log"))
		}
	}()
	return nil
}

// verbosity is klog's -v of this process.
func verbosity() int {
	for v := 10; v > 0; v-- {
		if klog.V(klog.Level(v)).Enabled() {
			return v
		}
	}
	return 0
}

// syncRoutes keeps, in the host and in every node's namespace, a route to
// each node's podCIDR via that node, as kind's kindnetd does.
func (n *Nodes) syncRoutes(ctx context.Context) {
	logger := klog.FromContext(ctx)
	ours := map[string]*spec{}
	for _, s := range n.specs {
		ours[s.Name] = s
	}
	factory := informers.NewSharedInformerFactory(n.client, 0)
	inf := factory.Core().V1().Nodes().Informer()
	changed := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }})
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	done := map[string]string{} // node -> podCIDR routed
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(10 * time.Second):
		}
		for _, obj := range inf.GetStore().List() {
			node := obj.(*v1.Node)
			s, ok := ours[node.Name]
			if !ok {
				continue
			}
			for _, cidr := range node.Spec.PodCIDRs {
				if done[node.Name+" "+cidr] == cidr {
					continue
				}
				var errs []error
				errs = append(errs, routePodCIDR(ctx, "", cidr, s.IP))
				for _, other := range n.specs {
					if other.Name != node.Name {
						errs = append(errs, routePodCIDR(ctx, netnsName(n.index, other.Name), cidr, s.IP))
					}
				}
				if err := errors.Join(errs...); err != nil {
					logger.Error(err, "Routing a podCIDR", "node", node.Name, "podCIDR", cidr)
					continue
				}
				done[node.Name+" "+cidr] = cidr
				logger.V(2).Info("Routed podCIDR", "node", node.Name, "podCIDR", cidr)
			}
		}
	}
}

// WaitReady waits until every node is Ready.
func (n *Nodes) WaitReady(ctx context.Context) error {
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, name := range n.names {
			node, err := n.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			if err != nil {
				return false, nil
			}
			ready := false
			for _, c := range node.Status.Conditions {
				if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
					ready = true
				}
			}
			if !ready {
				return false, nil
			}
		}
		return true, nil
	})
}

// Stop stops the nodes and removes everything they made: processes
// (containers too), cgroups, mounts (their mount namespaces die with
// them), network namespaces, links and routes, and their directories.
func (n *Nodes) Stop() error {
	n.stopOnce.Do(func() {
		n.cancel()
		for _, p := range n.procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		timeout := time.After(15 * time.Second)
		for _, e := range n.exited {
			select {
			case <-e:
			case <-timeout:
			}
		}
		n.wg.Wait()
		n.stopErr = teardown(context.Background(), n.index)
	})
	return n.stopErr
}

// Delete deletes the nodes' Node objects, as when a machine leaves a
// cluster for good, and the EndpointSlices of their DNS server and API forwarder.
func (n *Nodes) Delete(ctx context.Context) error {
	errs := []error{n.unpublish(ctx)}
	for _, name := range n.names {
		if err := n.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// teardown removes cluster index's processes, cgroups, network and
// directories.
func teardown(ctx context.Context, index int) error {
	errs := []error{killCgroup(fmt.Sprintf("/kubesim/%d", index), 30*time.Second), teardownNetwork(ctx, index)}
	errs = append(errs, os.RemoveAll(filepath.Join(dataRoot, strconv.Itoa(index))), os.RemoveAll(filepath.Join(runRoot, strconv.Itoa(index))))
	// The shared parents go once no cluster uses them (rmdir fails on a
	// directory that is not empty, which is what keeps another's).
	for _, h := range append(hierarchies(), filepath.Join(cgroupMount, "unified")) {
		_ = syscall.Rmdir(filepath.Join(h, "kubesim", strconv.Itoa(index)))
		_ = syscall.Rmdir(filepath.Join(h, "kubesim"))
	}
	_ = syscall.Rmdir(dataRoot)
	// The claim goes last: until then nobody else takes the index.
	if err := os.Remove(ownerFile(index)); err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	_ = syscall.Rmdir(runRoot)
	return errors.Join(errs...)
}

// Sweep removes what real nodes of kubesim processes that no longer run
// left behind (after a kill -9): their processes, cgroups, network
// namespaces, links, routes and directories.
func Sweep(ctx context.Context) {
	logger := klog.FromContext(ctx)
	seen := map[int]bool{}
	for i := 0; i < maxClusters; i++ {
		if _, err := net.InterfaceByName(hostLink(i)); err == nil {
			seen[i] = true
		}
	}
	entries, _ := os.ReadDir(runRoot)
	for _, e := range entries {
		if i, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "owner-")); err == nil {
			seen[i] = true
		}
	}
	netns, _ := os.ReadDir("/run/netns")
	for _, e := range netns {
		if rest, ok := strings.CutPrefix(e.Name(), "kubesim-"); ok {
			if i, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0]); err == nil {
				seen[i] = true
			}
		}
	}
	for _, h := range hierarchies() {
		entries, _ := os.ReadDir(filepath.Join(h, "kubesim"))
		for _, e := range entries {
			if i, err := strconv.Atoi(e.Name()); err == nil {
				seen[i] = true
			}
		}
	}
	for i := range seen {
		if ownerAlive(i) {
			continue
		}
		logger.Info("Sweeping real nodes left by a stopped kubesim", "network", i)
		if err := teardown(ctx, i); err != nil {
			logger.Error(err, "Sweeping real nodes", "network", i)
		}
	}
}
