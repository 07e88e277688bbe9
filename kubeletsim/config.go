package kubeletsim

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"sigs.k8s.io/yaml"

	"github.com/kubesim/kubesim/internal/pki"
)

// Config configures a Simulator. New validates it and fills in defaults.
type Config struct {
	// Client talks to the API server as the nodes. Required.
	Client kubernetes.Interface
	// Clock measures every simulated duration. Default: the real clock.
	Clock clock.WithTicker
	// Pools are the nodes registered at start; more can be added with
	// AddNodes. Default: none.
	Pools []NodePool
	// Shard, when Count is set, makes this simulator host only its share
	// of the pools' nodes: those whose index in their pool is Index modulo
	// Count. Several processes given the same pools and shards 0..Count-1
	// of Count host disjoint sets of nodes, together all of them
	// (`kubesim node run --shard I/N`). Default: every node.
	Shard Shard
	// Profiles are the named lifecycle profiles pools refer to. A profile
	// named "default" replaces DefaultProfile.
	Profiles []Profile
	// TimeScale divides every simulated duration (delays, run durations,
	// lease and status periods, back-off): 10 runs a 30s job in 3s.
	// Default: 1.
	TimeScale float64
	// Workers is the number of pod workers. Default: 16.
	Workers int
	// NodeWorkers is the number of node workers, which register the
	// nodes, renew their leases and report their status. Each waits for
	// the answer to its request, as a kubelet does, so when the API
	// server is slow to answer (a busy machine) it takes many to keep
	// every node on kubelet's cadence: a renewal every quarter of
	// LeaseDuration. Default: one for every NodesPerWorker nodes, at least
	// Workers; nodes added at run time add workers.
	NodeWorkers int
	// ServeAddress is where the kubelet endpoint listens (pods/log), for
	// every node: host:port, port 0 picks a free one. Default: 127.0.0.1:0.
	ServeAddress string
	// NodeIP is the InternalIP nodes report, where the API server reaches
	// their kubelet endpoint. Default: ServeAddress's host.
	NodeIP string
	// ClientCA verifies the client certificates of callers of the kubelet
	// endpoint (the API server's kubelet client). Default: no client
	// certificate is asked for.
	ClientCA *x509.CertPool
	// ServingCA issues the kubelet endpoint's serving certificate, so that
	// an API server that verifies kubelets (kube-apiserver's
	// --kubelet-certificate-authority; kubesim's always) trusts it: the
	// cluster's CA. Default: a CA of the simulator's own.
	ServingCA *pki.CA
	// LeaseDuration is the nodes' lease duration, as kubelet's
	// --node-lease-duration-seconds; they renew every quarter of it.
	// Default: 40s.
	LeaseDuration time.Duration
	// Informers, when set, is the informer factory whose pod and node
	// informers the nodes watch instead of their own, for a process that
	// has one already (kube-controller-manager's): one cache of every pod
	// rather than two. Its informers must see every pod and node, and the
	// caller starts it. The pod informer gets kube-controller-manager's
	// spec.nodeName index (controller.AddPodNodeNameIndexer) unless it has
	// it: New must not run beside another component's construction that
	// adds indexers to the same informer (client-go's informers do not
	// guard their index map against that). Default: the simulator's own
	// informers.
	Informers informers.SharedInformerFactory
	// DisableEvents stops the nodes from recording kubelet's events
	// (Starting, Pulling, Pulled, Created, Started, Killing, BackOff,
	// admission rejections, node status changes). Default: they are
	// recorded.
	DisableEvents bool
	// StatusReportPeriod is how often an unchanged node status is
	// reported (kubelet's nodeStatusReportFrequency). Default: 5m.
	StatusReportPeriod time.Duration
}

// NodePool is a set of identical nodes.
type NodePool struct {
	// Name names the pool; nodes carry it in the kubesim.io/node-pool
	// label. Default: "node".
	Name string `json:"name,omitempty"`
	// Count is how many nodes the pool has.
	Count int `json:"count"`
	// NamePrefix starts node names, followed by an index: node-0, node-1.
	// Default: the pool's name and a dash.
	NamePrefix string `json:"namePrefix,omitempty"`
	// Capacity of each node. Default: 32 cpu, 256Gi memory, 110 pods,
	// 100Gi ephemeral-storage; resources given here replace those.
	Capacity corev1.ResourceList `json:"capacity,omitempty"`
	// Allocatable of each node. Default: the capacity.
	Allocatable corev1.ResourceList `json:"allocatable,omitempty"`
	// Labels are added to kubelet's own (hostname, os, arch).
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are added to the node's.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Taints are registered with the node (kubelet's --register-with-taints).
	Taints []corev1.Taint `json:"taints,omitempty"`
	// Profile names the lifecycle profile of the pool's pods.
	// Default: "default".
	Profile string `json:"profile,omitempty"`
}

// Profile is how long the steps of a simulated pod's life take, and what
// its containers do. Pod annotations override it (annotations.go).
type Profile struct {
	// Name names the profile.
	Name string `json:"name"`
	// ImagePullDelay is how long each container's image takes to pull
	// before it starts (the pod shows ContainerCreating). Default: 0.
	ImagePullDelay metav1.Duration `json:"imagePullDelay,omitempty"`
	// StartDelay is how long a container takes to start after its image
	// is there. Default: 0.
	StartDelay metav1.Duration `json:"startDelay,omitempty"`
	// InitContainerDuration is how long each (non-sidecar) init container
	// runs before it completes. Default: 0.
	InitContainerDuration metav1.Duration `json:"initContainerDuration,omitempty"`
	// RunDuration is how long containers run before they exit; 0 runs them
	// until the pod is deleted. Default: 0.
	RunDuration metav1.Duration `json:"runDuration,omitempty"`
	// ExitCode is the code containers exit with after RunDuration.
	// Default: 0.
	ExitCode int32 `json:"exitCode,omitempty"`
	// TerminationDelay is how long containers take to exit after SIGTERM;
	// they are killed when the pod's grace period ends first. Default: 0.
	TerminationDelay metav1.Duration `json:"terminationDelay,omitempty"`
	// LogLines are what each container prints when it starts (kubectl
	// logs). $(POD), $(NAMESPACE), $(CONTAINER) and $(NODE) are replaced.
	// Default: one line saying the container started.
	LogLines []string `json:"logLines,omitempty"`
	// CPUUsage and MemoryUsage are what containers use (the usage model,
	// usage.go: a quantity, a percentage of the request, or a curve),
	// which the node's resource metrics report and metrics-server,
	// kubectl top and the HPA read. Pod annotations override them.
	// Defaults: "10%" and "50%" of the container's request.
	CPUUsage    string `json:"cpuUsage,omitempty"`
	MemoryUsage string `json:"memoryUsage,omitempty"`
}

// DefaultProfile is the profile of pools that name none: pods start at
// once, run until deleted and exit at once on SIGTERM.
var DefaultProfile = Profile{
	Name:     "default",
	LogLines: []string{"kubesim: container $(CONTAINER) of pod $(NAMESPACE)/$(POD) started on simulated node $(NODE)"},
}

// defaultCapacity is a node's capacity unless its pool says otherwise.
func defaultCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("32"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
}

// complete validates a pool and fills in its defaults.
func (p *NodePool) complete(profiles map[string]Profile) error {
	if p.Name == "" {
		p.Name = "node"
	}
	if p.NamePrefix == "" {
		p.NamePrefix = p.Name + "-"
	}
	if p.Count < 0 {
		return fmt.Errorf("pool %q: count %d is negative", p.Name, p.Count)
	}
	if errs := validation.IsDNS1123Subdomain(p.NamePrefix + "0"); len(errs) > 0 {
		return fmt.Errorf("pool %q: node names %q... are invalid: %s", p.Name, p.NamePrefix+"0", strings.Join(errs, "; "))
	}
	capacity := defaultCapacity()
	for name, q := range p.Capacity {
		capacity[name] = q
	}
	p.Capacity = capacity
	if p.Allocatable == nil {
		p.Allocatable = capacity.DeepCopy()
	} else {
		for name, q := range capacity {
			if _, ok := p.Allocatable[name]; !ok {
				p.Allocatable[name] = q
			}
		}
	}
	for name, q := range p.Allocatable {
		if c, ok := p.Capacity[name]; ok && q.Cmp(c) > 0 {
			return fmt.Errorf("pool %q: allocatable %s %s exceeds capacity %s", p.Name, name, q.String(), c.String())
		}
	}
	if p.Profile == "" {
		p.Profile = DefaultProfile.Name
	}
	if _, ok := profiles[p.Profile]; !ok {
		return fmt.Errorf("pool %q: no profile %q", p.Name, p.Profile)
	}
	return nil
}

func (p *Profile) validate() error {
	if p.Name == "" {
		return errors.New("a profile has no name")
	}
	for what, d := range map[string]metav1.Duration{"imagePullDelay": p.ImagePullDelay, "startDelay": p.StartDelay,
		"initContainerDuration": p.InitContainerDuration, "runDuration": p.RunDuration, "terminationDelay": p.TerminationDelay} {
		if d.Duration < 0 {
			return fmt.Errorf("profile %q: %s %s is negative", p.Name, what, d.Duration)
		}
	}
	for what, v := range map[string]string{"cpuUsage": p.CPUUsage, "memoryUsage": p.MemoryUsage} {
		if v == "" {
			continue
		}
		if _, err := parseUsage(v); err != nil {
			return fmt.Errorf("profile %q: %s: %w", p.Name, what, err)
		}
	}
	return nil
}

// complete validates c and fills in its defaults; it returns the profiles
// by name.
func (c *Config) complete() (map[string]Profile, error) {
	if c.Client == nil {
		return nil, errors.New("kubeletsim: Config.Client is required")
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.TimeScale == 0 {
		c.TimeScale = 1
	}
	if c.TimeScale < 0 {
		return nil, fmt.Errorf("kubeletsim: time scale %v is negative", c.TimeScale)
	}
	if c.Shard.Count < 0 || c.Shard.Index < 0 || (c.Shard.Count > 0 && c.Shard.Index >= c.Shard.Count) {
		return nil, fmt.Errorf("kubeletsim: shard %d of %d: the index must be at least 0 and less than the count", c.Shard.Index, c.Shard.Count)
	}
	if c.Workers == 0 {
		c.Workers = 16
	}
	if c.Workers < 0 {
		return nil, fmt.Errorf("kubeletsim: %d workers", c.Workers)
	}
	if c.NodeWorkers < 0 {
		return nil, fmt.Errorf("kubeletsim: %d node workers", c.NodeWorkers)
	}
	if c.ServeAddress == "" {
		c.ServeAddress = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(c.ServeAddress)
	if err != nil {
		return nil, fmt.Errorf("kubeletsim: serve address %q: %w", c.ServeAddress, err)
	}
	if c.NodeIP == "" {
		c.NodeIP = host
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			c.NodeIP = "127.0.0.1"
		}
	}
	if net.ParseIP(c.NodeIP) == nil {
		return nil, fmt.Errorf("kubeletsim: node IP %q is not an IP", c.NodeIP)
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 40 * time.Second
	}
	if c.StatusReportPeriod == 0 {
		c.StatusReportPeriod = 5 * time.Minute
	}
	profiles := map[string]Profile{DefaultProfile.Name: DefaultProfile}
	for _, p := range c.Profiles {
		if err := p.validate(); err != nil {
			return nil, err
		}
		if len(p.LogLines) == 0 {
			p.LogLines = DefaultProfile.LogLines
		}
		profiles[p.Name] = p
	}
	names := map[string]bool{}
	for i := range c.Pools {
		if err := c.Pools[i].complete(profiles); err != nil {
			return nil, err
		}
		if names[c.Pools[i].NamePrefix] {
			return nil, fmt.Errorf("kubeletsim: two pools name their nodes %q...", c.Pools[i].NamePrefix)
		}
		names[c.Pools[i].NamePrefix] = true
	}
	return profiles, nil
}

// Shard is one of Count disjoint shares of the nodes (Config.Shard).
type Shard struct {
	Index, Count int
}

// has says whether the node at index i of its pool is in the shard.
func (s Shard) has(i int) bool { return s.Count <= 1 || i%s.Count == s.Index }

// NodeConfig is the file `kubesim up --node-config` reads: node pools and
// lifecycle profiles.
type NodeConfig struct {
	metav1.TypeMeta `json:",inline"`
	// Pools are the node pools.
	Pools []NodePool `json:"pools"`
	// Profiles are the lifecycle profiles pools name.
	Profiles []Profile `json:"profiles,omitempty"`
}

// NodesPerWorker is how many nodes share a node worker by default. A node
// renews its lease every 10s; a worker per 50 nodes keeps up while the API
// server answers a renewal within 200ms.
const NodesPerWorker = 50

// NodeConfigKind and NodeConfigAPIVersion identify a NodeConfig file.
const (
	NodeConfigKind       = "NodeConfig"
	NodeConfigAPIVersion = "kubesim.io/v1alpha1"
)

// LoadNodeConfig reads a NodeConfig file (YAML or JSON). Unknown fields are
// errors, so a misspelt field does not silently fall back to a default.
func LoadNodeConfig(path string) (*NodeConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("unable to read node config: %w", err)
	}
	var nc NodeConfig
	if err := yaml.UnmarshalStrict(b, &nc); err != nil {
		return nil, fmt.Errorf("unable to read node config %s: %w", path, err)
	}
	if nc.Kind != NodeConfigKind || nc.APIVersion != NodeConfigAPIVersion {
		return nil, fmt.Errorf("node config %s: want kind %s, apiVersion %s; got %q, %q", path, NodeConfigKind, NodeConfigAPIVersion, nc.Kind, nc.APIVersion)
	}
	return &nc, nil
}
