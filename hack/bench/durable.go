package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// durableSection starts the part of BENCHMARKS.md the durable-write rows
// write; a run that does not measure them keeps it.
const durableSection = "## Durable writes (make bench)"

// durableRun measures creates/s of kubesim with each storage, with 1 client
// and with 16, against the genuine kube-apiserver on an etcd that fsyncs
// (etcd's default), and the restart time of a data dir of o.large
// ConfigMaps. It returns the section's markdown.
func durableRun(ctx context.Context, o options, reference bool) (string, error) {
	type side struct {
		name string
		rate map[int]float64
		note string
	}
	counts := []int{1, 16}
	perClients := map[int]int{1: 1000, 16: 5000}
	measure := func(kubeconfig string, prefix string) (map[int]float64, error) {
		cfg, err := restConfig(kubeconfig)
		if err != nil {
			return nil, err
		}
		cfg.QPS, cfg.Burst = -1, -1
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cs := kubernetes.NewForConfigOrDie(cfg)
		out := map[int]float64{}
		for _, c := range counts {
			n := perClients[c]
			_, wall, err := parallel(n, c, func(i int) error {
				_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d-%06d", prefix, c, i)},
					Data:       map[string]string{"key": strings.Repeat("v", 100)},
				}, metav1.CreateOptions{})
				return err
			})
			if err != nil {
				return nil, err
			}
			out[c] = float64(n) / wall.Seconds()
			fmt.Printf("durable    %-12s %2d clients %8.0f creates/s\n", prefix, c, out[c])
		}
		return out, nil
	}
	startKubesim := func(args ...string) (string, func(), error) {
		dir, err := os.MkdirTemp("", "kubesim-bench-durable-")
		if err != nil {
			return "", nil, err
		}
		kc := filepath.Join(dir, "kubeconfig")
		cmd := exec.Command(o.bin, append([]string{"up", "--port", "0", "--kubeconfig", kc, "--huge-pages=false", apiOnly[0], apiOnly[1]}, args...)...)
		if err := cmd.Start(); err != nil {
			return "", nil, err
		}
		if err := waitFile(kc, time.Minute); err != nil {
			cmd.Process.Kill()
			return "", nil, err
		}
		return kc, func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); os.RemoveAll(dir) }, nil
	}
	var sides []side
	// kubesim, memory and data dir.
	for _, s := range []struct{ name, note string }{{"memory", "kubesim up (memory)"}, {"data dir", "kubesim up --data-dir (log fsynced before each acknowledgement, group commit)"}} {
		var args []string
		var dataDir string
		if s.name == "data dir" {
			d, err := os.MkdirTemp("", "kubesim-bench-datadir-")
			if err != nil {
				return "", err
			}
			defer os.RemoveAll(d)
			dataDir = d
			args = []string{"--data-dir", d}
		}
		kc, stop, err := startKubesim(args...)
		if err != nil {
			return "", err
		}
		rate, err := measure(kc, strings.ReplaceAll(s.name, " ", ""))
		stop()
		if err != nil {
			return "", err
		}
		_ = dataDir
		sides = append(sides, side{s.name, rate, s.note})
	}
	var ref side
	if reference {
		// The genuine kube-apiserver on an etcd that fsyncs, then kubesim
		// --storage etcd on the same etcd (kube-apiserver stopped).
		script := filepath.Join(o.repo, "hack", "reference-peer.sh")
		_ = exec.Command(script, "stop").Run()
		cmd := exec.Command(script, "start")
		cmd.Env = append(os.Environ(), "REFERENCE_DIR="+o.referenceDir, "ETCD_FSYNC=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("unable to start the reference peer: %v\n%s", err, out)
		}
		rate, err := measure(filepath.Join(o.referenceDir, "kubeconfig"), "reference")
		if err != nil {
			_ = exec.Command(script, "stop").Run()
			return "", err
		}
		ref = side{"reference", rate, "etcd (fsync, its default) + kube-apiserver"}
		if b, err := os.ReadFile(filepath.Join(o.referenceDir, "run", "kube-apiserver.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGTERM)
				for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
		port := envOr("ETCD_PORT", "23790")
		kc, stop, err := startKubesim("--storage", "etcd", "--etcd-servers", "http://127.0.0.1:"+port, "--etcd-prefix", "/kubesim")
		if err == nil {
			rate, err = measure(kc, "etcd")
			stop()
		}
		_ = exec.Command(script, "stop").Run()
		if err != nil {
			return "", err
		}
		sides = append(sides, side{"--storage etcd", rate, "kubesim up --storage etcd, on the same etcd"})
	}

	// Restart of a data dir of o.large ConfigMaps.
	restart := ""
	if o.large > 0 {
		d, err := os.MkdirTemp("", "kubesim-bench-restart-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(d)
		kc, stop, err := startKubesim("--data-dir", d)
		if err != nil {
			return "", err
		}
		cfg, err := restConfig(kc)
		if err != nil {
			stop()
			return "", err
		}
		cfg.QPS, cfg.Burst = -1, -1
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cs := kubernetes.NewForConfigOrDie(rest.CopyConfig(cfg))
		_, _, err = parallel(o.large, 16, func(i int) error {
			_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("restart-%06d", i), Labels: map[string]string{"app": "restart"}},
				Data:       map[string]string{"key": strings.Repeat("v", 100)},
			}, metav1.CreateOptions{})
			return err
		})
		stop()
		if err != nil {
			return "", err
		}
		var times []time.Duration
		for range 3 {
			start := time.Now()
			kc, stop, err := startKubesim("--data-dir", d)
			if err != nil {
				return "", err
			}
			times = append(times, time.Since(start))
			c := kubernetes.NewForConfigOrDie(func() *rest.Config { c, _ := restConfig(kc); return c }())
			l, err := c.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{LabelSelector: "app=restart"})
			stop()
			if err != nil {
				return "", err
			}
			if len(l.Items) != o.large {
				return "", fmt.Errorf("after a restart the data dir holds %d of the %d ConfigMaps", len(l.Items), o.large)
			}
		}
		empty, err := startProcess(ctx, o.bin, append(apiOnly, "--data-dir", filepath.Join(d, "empty"))...)
		if err != nil {
			return "", err
		}
		restart = fmt.Sprintf("Restart to ready (`kubesim up --data-dir`, the API alone, until the kubeconfig is written) with %d ConfigMaps in the data dir: **%s** (median of 3; every object there after each); with an empty data dir: %s.\n",
			o.large, ms(median(times)), ms(empty))
		fmt.Print(restart)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", durableSection)
	fmt.Fprintf(&b, "ConfigMap creates per second (protobuf, 100-byte value, no client rate limit), each storage on a fresh server,\n")
	fmt.Fprintf(&b, "against the genuine etcd + kube-apiserver of the pin with etcd's default fsync (here, unlike the table above, whose\n")
	fmt.Fprintf(&b, "reference runs etcd with --unsafe-no-fsync as envtest does). Machine: as above. Run on %s.\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "| benchmark | kubesim | kube-apiserver + etcd (fsync) | kubesim's advantage | kubesim detail |\n|---|---|---|---|---|\n")
	for _, c := range counts {
		for _, s := range sides {
			r, adv := "-", "-"
			if ref.rate != nil {
				r = fmt.Sprintf("%.0f/s", ref.rate[c])
				adv = fmt.Sprintf("%.1fx", s.rate[c]/ref.rate[c])
			}
			fmt.Fprintf(&b, "| create ConfigMap, %d client(s), %s | %.0f/s | %s | %s | %s |\n", c, s.name, s.rate[c], r, adv, s.note)
		}
	}
	b.WriteString("\n" + restart)
	return b.String(), nil
}
