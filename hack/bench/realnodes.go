package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubesim/kubesim/realnode"
)

// realNodePods is how many pods the create-to-Running row starts on one
// real node.
const realNodePods = 50

// realNodeRows measures a cluster with one real node, side by side:
// kubesim (`kubesim up --real-nodes 1`, until it writes its kubeconfig,
// which it does once the node is Ready) and the reference (etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler started with
// hack/reference-peer.sh and hack/control-plane.sh, then `kubesim node run
// --real`, until the node is Ready and untainted); then create-to-Running
// of 50 pods on the node, against the kubelet's pod-startup SLO (p99 <=
// 5 s). It needs root and make images; without them the rows are skipped.
func realNodeRows(ctx context.Context, o options, reference bool, set func(side, name, unit string, higher bool, m *measurement)) error {
	if os.Geteuid() != 0 || realnode.Preflight(realnode.DefaultImagesDir()) != nil {
		fmt.Println("real-node rows skipped: they need root and make images")
		return nil
	}
	const runs = 3
	var ups []time.Duration
	for i := 0; i < runs; i++ {
		dir, err := os.MkdirTemp("", "kubesim-bench-real-")
		if err != nil {
			return err
		}
		kc := filepath.Join(dir, "kubeconfig")
		start := time.Now()
		cmd := exec.Command(o.bin, "up", "--port", "0", "--kubeconfig", kc, "--real-nodes", "1")
		if err := cmd.Start(); err != nil {
			return err
		}
		err = waitFile(kc, 3*time.Minute)
		ups = append(ups, time.Since(start))
		if err == nil && i == runs-1 {
			err = podsToRunning(ctx, "kubesim", kc, "real-0", func(name, unit string, higher bool, m *measurement) { set("kubesim", name, unit, higher, m) })
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("kubesim up --real-nodes 1: %w", err)
		}
	}
	set("kubesim", rowRealNodeReady, "ms", false, durationM(ups, fmt.Sprintf("kubesim up --real-nodes 1: API, control plane, containerd, images, kubelet, kube-proxy, CoreDNS, node Ready; median of %d", runs)))
	if !reference || !fileExists(filepath.Join(o.referenceDir, "bin", "kube-controller-manager")) {
		return nil
	}
	var refs []time.Duration
	for i := 0; i < runs; i++ {
		d, err := referenceWithRealNode(ctx, o, i == runs-1, set)
		if err != nil {
			return err
		}
		refs = append(refs, d)
	}
	set("reference", rowRealNodeReady, "ms", false, durationM(refs, fmt.Sprintf("reference-peer.sh + control-plane.sh + kubesim node run --real, node Ready and untainted; median of %d", runs)))
	return nil
}

const rowRealNodeReady = "real node: start to node Ready"

// referenceWithRealNode starts the reference with its control plane and a
// real node, times it until the node is Ready and untainted, runs the pods
// row if measure, and stops everything.
func referenceWithRealNode(ctx context.Context, o options, measure bool, set func(side, name, unit string, higher bool, m *measurement)) (time.Duration, error) {
	peer := filepath.Join(o.repo, "hack", "reference-peer.sh")
	cp := filepath.Join(o.repo, "hack", "control-plane.sh")
	run := filepath.Join(o.referenceDir, "bench-control-plane")
	kc := filepath.Join(o.referenceDir, "kubeconfig")
	pki := filepath.Join(o.referenceDir, "run", "pki")
	env := append(os.Environ(), "REFERENCE_DIR="+o.referenceDir)
	_ = exec.Command(peer, "stop").Run()
	defer func() {
		_ = exec.Command(cp, "stop", run).Run()
		_ = exec.Command(peer, "stop").Run()
	}()
	start := time.Now()
	for _, args := range [][]string{{peer, "start"}, {cp, "start", kc, run}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		if args[0] == cp {
			cmd.Env = append(cmd.Env, "SA_KEY="+filepath.Join(pki, "sa.key"))
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	node := exec.Command(o.bin, "node", "run", "--real", "--kubeconfig", kc, "--name-prefix", "bench-real-",
		"--cluster-cidr", "10.128.0.0/10", "--ca-cert-file", filepath.Join(pki, "ca.crt"), "--ca-key-file", filepath.Join(pki, "ca.key"))
	var logs strings.Builder
	node.Stdout, node.Stderr = &logs, &logs
	if err := node.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = node.Process.Signal(os.Interrupt); _ = node.Wait() }()
	cfg, err := restConfig(kc)
	if err != nil {
		return 0, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, "bench-real-0", metav1.GetOptions{})
		if err != nil {
			last = err
			return false, nil
		}
		last = fmt.Errorf("node %s: taints %v, conditions %v", n.Name, n.Spec.Taints, n.Status.Conditions)
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue && len(n.Spec.Taints) == 0 {
				return true, nil
			}
		}
		return false, nil
	})
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("reference: real node not Ready: %w (last: %v)\n%s", err, last, logs.String())
	}
	if measure {
		err = podsToRunning(ctx, "reference", kc, "bench-real-0", func(name, unit string, higher bool, m *measurement) { set("reference", name, unit, higher, m) })
	}
	return d, err
}

// podsToRunning creates 50 pods bound to node at once, then 50 more one
// a second (a pace the node keeps up with, as in the SLO's steady state,
// rather than a burst: each pod costs the node about half a CPU-second of
// runc, shims and CNI plugins, so 5 a second saturate 2 CPUs), and times
// each from its create call to the watch event that shows it Running.
func podsToRunning(ctx context.Context, side, kubeconfig, node string, set func(name, unit string, higher bool, m *measurement)) error {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, pass := range []struct {
		row, ns  string
		interval time.Duration
	}{
		{"real node: 50 pods create-to-Running p99", "bench-real", 0},
		{"real node: 50 pods at 1/s create-to-Running p99", "bench-real-paced", time.Second},
	} {
		defer func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), pass.ns, metav1.DeleteOptions{}) }()
		lat, err := podStartup(ctx, cs, pass.ns, node, pass.interval)
		if err != nil {
			return fmt.Errorf("%s: %w", side, err)
		}
		p50, p99 := pct(lat, 0.50), pct(lat, 0.99)
		set(pass.row, "ms", false, &measurement{
			value: float64(p99.Microseconds()) / 1000, text: ms(p99),
			detail: fmt.Sprintf("p50 %s, max %s; SLO p99 <= 5 s: %s", ms(p50), ms(maxOf(lat)), map[bool]string{true: "met", false: "missed"}[p99 <= 5*time.Second]),
		})
	}
	return nil
}

// podStartup creates realNodePods pods in a new namespace ns, bound to
// node, interval apart, and returns each one's create-to-Running latency.
func podStartup(ctx context.Context, cs kubernetes.Interface, ns, node string, interval time.Duration) ([]time.Duration, error) {
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return nil, err
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var mu sync.Mutex
	created := map[string]time.Time{}
	createErr := make(chan error, 1)
	go func() {
		defer close(createErr)
		for i := 0; i < realNodePods; i++ {
			name := fmt.Sprintf("p-%d", i)
			mu.Lock()
			created[name] = time.Now()
			mu.Unlock()
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.PodSpec{
					NodeName:   node,
					Containers: []corev1.Container{{Name: "c", Image: realnode.BusyboxImage, Command: []string{"sleep", "3600"}}},
				},
			}
			if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				createErr <- err
				return
			}
			time.Sleep(interval)
		}
	}()
	var lat []time.Duration
	running := map[string]bool{}
	timeout := time.After(5 * time.Minute)
	for len(running) < realNodePods {
		select {
		case err := <-createErr:
			if err != nil {
				return nil, err
			}
			createErr = nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, errors.New("pod watch closed")
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || running[p.Name] || p.Status.Phase != corev1.PodRunning {
				continue
			}
			running[p.Name] = true
			mu.Lock()
			lat = append(lat, time.Since(created[p.Name]))
			mu.Unlock()
		case <-timeout:
			return nil, fmt.Errorf("%d of %d pods Running after 5 minutes", len(running), realNodePods)
		}
	}
	return lat, nil
}
