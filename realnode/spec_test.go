package realnode

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletscheme "k8s.io/kubernetes/pkg/kubelet/apis/config/scheme"
	kubeletvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	proxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
	proxyscheme "k8s.io/kubernetes/pkg/proxy/apis/config/scheme"
	"k8s.io/utils/ptr"
)

func testSpec() *spec {
	return &spec{
		Name: "real-0", Index: 3, IP: nodeIP(3, 0), DataDir: "/var/lib/kubesim/3/real-0", RunDir: "/run/kubesim/3/real-0",
		Cgroup: cgroupPath(3, "real-0"), ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/16", ClusterDNS: "10.96.0.10",
		Domain: "cluster.local", Labels: map[string]string{NodeTypeLabel: "real"},
	}
}

// The configurations decode strictly with the components' own schemes
// (an unknown or misspelt field fails) and the kubelet's validates.
func TestComponentConfigurationsDecodeStrictly(t *testing.T) {
	s := testSpec()
	t.Run("kubelet", func(t *testing.T) {
		_, codecs, err := kubeletscheme.NewSchemeAndCodecs(serializer.EnableStrict)
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := codecs.UniversalDecoder().Decode([]byte(s.kubeletConfig()), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		kc := obj.(*kubeletconfig.KubeletConfiguration)
		if err := kubeletvalidation.ValidateKubeletConfiguration(kc, utilfeature.DefaultFeatureGate); err != nil {
			t.Fatal(err)
		}
		for name, ok := range map[string]bool{
			"failCgroupV1 false":   !kc.FailCgroupV1,
			"cgroupfs driver":      kc.CgroupDriver == "cgroupfs",
			"cgroupRoot":           kc.CgroupRoot == "/kubesim/3/real-0",
			"oomScoreAdj 0":        kc.OOMScoreAdj == 0,
			"failSwapOn false":     !kc.FailSwapOn,
			"no anonymous":         !kc.Authentication.Anonymous.Enabled,
			"webhook authz":        kc.Authorization.Mode == kubeletconfig.KubeletAuthorizationModeWebhook,
			"clusterDNS":           len(kc.ClusterDNS) == 1 && kc.ClusterDNS[0] == "10.96.0.10",
			"nodefs evicts at 0%":  kc.EvictionHard["nodefs.available"] == "0%",
			"imagefs evicts at 0%": kc.EvictionHard["imagefs.available"] == "0%",
			"image GC at 100%":     kc.ImageGCHighThresholdPercent == 100,
			"containerd socket":    kc.ContainerRuntimeEndpoint == "unix:///run/kubesim/3/real-0/containerd.sock",
		} {
			if !ok {
				t.Errorf("%s: %+v", name, kc)
			}
		}
	})
	t.Run("kube-proxy", func(t *testing.T) {
		scheme := runtime.NewScheme()
		proxyscheme.AddToScheme(scheme)
		codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
		obj, _, err := codecs.UniversalDecoder().Decode([]byte(s.kubeProxyConfig()), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		pc := obj.(*proxyconfig.KubeProxyConfiguration)
		if pc.Mode != proxyconfig.ProxyModeIPTables {
			t.Errorf("mode %q, want iptables set explicitly", pc.Mode)
		}
		if pc.Linux.Conntrack.MaxPerCore == nil || *pc.Linux.Conntrack.MaxPerCore != 0 {
			t.Errorf("conntrack maxPerCore %v, want 0", ptr.Deref(pc.Linux.Conntrack.MaxPerCore, -1))
		}
		if pc.HostnameOverride != "real-0" || pc.DetectLocal.ClusterCIDRs[0] != "10.244.0.0/16" {
			t.Errorf("%+v", pc)
		}
	})
}

// containerd's configuration has what this machine needs.
func TestContainerdConfiguration(t *testing.T) {
	c := testSpec().containerdConfig()
	for _, want := range []string{
		`restrict_oom_score_adj = true`,
		`bin_dir = "/usr/lib/cni"`,
		`sandbox_image = "` + PauseImage + `"`,
		`SystemdCgroup = false`,
		`address = "/run/kubesim/3/real-0/containerd.sock"`,
		`root = "/var/lib/kubesim/3/real-0/containerd"`,
		`ShimCgroup = "/kubesim/3/real-0/system"`,
	} {
		if !strings.Contains(c, want) {
			t.Errorf("containerd config lacks %s:\n%s", want, c)
		}
	}
}

// Preflight names everything missing, and fails fast.
func TestPreflightNamesWhatIsMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := Preflight(t.TempDir())
	if err == nil {
		t.Fatal("no error with an empty PATH and no images")
	}
	for _, want := range []string{"containerd (Debian package containerd)", "runc (Debian package runc)", "iptables (Debian package iptables)", "ip (Debian package iproute2)", "pause.tar (make images)", "agnhost.tar (make images)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if os.Geteuid() != 0 && !strings.Contains(err.Error(), "root") {
		t.Errorf("error does not name root: %v", err)
	}
}

func TestImageTarballs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string // in the images directory
		want  []string
	}{
		{"no bundle: every tarball", []string{"a.tar", "a.tar.stamp", "b.tar"}, []string{"a.tar", "b.tar"}},
		{"bundle instead of make images' tarballs, users' own beside it",
			[]string{BundleFile, BundleFile + ".stamp", "a.tar", "a.tar.stamp", "mine.tar", "notes.txt"},
			[]string{BundleFile, "mine.tar"}},
		{"empty", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, f := range imageTarballs(dir) {
				got = append(got, filepath.Base(f))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("imageTarballs = %v, want %v", got, tc.want)
			}
		})
	}
}
