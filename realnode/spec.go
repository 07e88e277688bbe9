package realnode

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Where real nodes keep their state: per cluster index N and node,
// /var/lib/kubesim/N/NODE (containerd's content and snapshots, the
// kubelet's root, pod logs, CNI state) and /run/kubesim/N/NODE (sockets,
// containerd's state, the pods' network namespaces).
const (
	runRoot  = "/run/kubesim"
	dataRoot = "/var/lib/kubesim"
)

// Image names: exactly those the pinned e2e suite asks for
// (test/utils/image/manifest.go). hack/images builds them.
const (
	PauseImage   = "registry.k8s.io/pause:3.10.2"
	BusyboxImage = "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"
	AgnhostImage = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
)

// NodeTypeLabel tells real nodes ("real") from simulated ones
// ("simulated"), for nodeSelectors.
const NodeTypeLabel = "kubesim.io/node-type"

// spec is everything a node's supervisor needs; the parent writes it to
// the node's run directory as node.json.
type spec struct {
	Name        string
	Index       int // the cluster's network index
	IP          string
	DataDir     string
	RunDir      string
	Cgroup      string
	ClusterCIDR string
	ServiceCIDR string
	ClusterDNS  string
	Domain      string
	ImagesDir   string
	Labels      map[string]string
}

func (s *spec) path(name string) string { return filepath.Join(s.RunDir, name) }

func (s *spec) containerdSocket() string { return s.path("containerd.sock") }

func writeSpec(s *spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(s.path("node.json"), b, 0o600)
}

func readSpec(dir string) (*spec, error) {
	b, err := os.ReadFile(filepath.Join(dir, "node.json"))
	if err != nil {
		return nil, err
	}
	s := &spec{}
	return s, json.Unmarshal(b, s)
}

// containerdConfig is containerd 1.6's configuration for the node: its own
// root, state and socket; CRI with our pause image, Debian's CNI plugins
// and a CNI template the podCIDR is rendered into when the kubelet learns
// it; restrict_oom_score_adj because this machine lacks CAP_SYS_RESOURCE;
// runc shims in the node's cgroup.
func (s *spec) containerdConfig() string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        ShimCgroup = %[6]q
        Root = %[7]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[8]q
    conf_template = %[9]q
`, filepath.Join(s.DataDir, "containerd"), filepath.Join(s.RunDir, "containerd"), s.containerdSocket(),
		s.path("containerd.sock.ttrpc"), PauseImage, s.Cgroup+"/system", filepath.Join(s.RunDir, "runc"),
		filepath.Join(s.RunDir, "net.d"), s.path("cni.template"))
}

// cniTemplate is the bridge network of the node's pods: host-local
// addresses from the podCIDR (rendered by containerd), the node as the
// gateway, no masquerade (pods on other nodes and the host see pod IPs;
// nothing else is reachable), portmap for hostPorts.
func (s *spec) cniTemplate() string {
	return `{
  "cniVersion": "0.4.0",
  "name": "kubesim",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "` + filepath.Join(s.DataDir, "cni", "networks") + `",
        "ranges": [{{range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$r}}"}]{{end}}],
        "routes": [{{range $i, $r := .Routes}}{{if $i}}, {{end}}{"dst": "{{$r}}"}{{end}}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`
}

// kubeletConfig is the KubeletConfiguration for this machine: cgroup v1
// with the cgroupfs driver under the node's own cgroup, no swap check, no
// negative OOM scores (no CAP_SYS_RESOURCE), kind's disk settings so that
// a small disk evicts nothing, client-certificate and webhook
// authentication as kubeadm sets it.
func (s *spec) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]s
failSwapOn: false
oomScoreAdj: 0
address: %[2]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: %[3]s
tlsPrivateKeyFile: %[4]s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[5]s
authorization:
  mode: Webhook
clusterDNS:
- %[6]s
clusterDomain: %[7]s
containerRuntimeEndpoint: unix://%[8]s
imageServiceEndpoint: unix://%[8]s
imageGCHighThresholdPercent: 100
evictionHard:
  nodefs.available: "0%%"
  nodefs.inodesFree: "0%%"
  imagefs.available: "0%%"
  imagefs.inodesFree: "0%%"
resolvConf: %[9]s
syncFrequency: 10s
nodeStatusReportFrequency: 10s
serializeImagePulls: false
`, s.Cgroup, s.IP, s.path("kubelet.crt"), s.path("kubelet.key"), s.path("ca.crt"), s.ClusterDNS, s.Domain,
		s.containerdSocket(), s.path("resolv.conf"))
}

// kubeProxyConfig is kube-proxy in iptables mode (set explicitly: 1.37
// warns that the default will change), with no conntrack table sizing
// (nf_conntrack_max cannot be set outside the initial network namespace).
func (s *spec) kubeProxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: %[1]s
hostnameOverride: %[2]s
clusterCIDR: %[3]s
bindAddress: %[4]s
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, s.path("kube-proxy.kubeconfig"), s.Name, s.ClusterCIDR, s.IP)
}

func (s *spec) labelFlag() string {
	var l []string
	for k, v := range s.Labels {
		l = append(l, k+"="+v)
	}
	return strings.Join(l, ",")
}
