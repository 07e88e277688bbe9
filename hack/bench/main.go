// Command bench measures kubesim's API throughput and start-up and writes
// the figures to a Markdown file (make bench -> BENCHMARKS.md).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/apiserver"
)

type options struct {
	bin         string
	out         string
	objects     int
	concurrency int
	watchers    int
	startRuns   int
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", os.Getenv("KUBESIM_BIN"), "kubesim binary")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "where to write the results")
	flag.IntVar(&o.objects, "objects", 10000, "objects to create, get and list")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent client-go workers")
	flag.IntVar(&o.watchers, "watchers", 100, "watchers for the fan-out benchmark")
	flag.IntVar(&o.startRuns, "start-runs", 10, "start-up measurements")
	flag.Parse()
	if o.bin == "" {
		o.bin = "bin/kubesim"
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	name, value, detail string
}

func run(ctx context.Context, o options) error {
	var results []result
	add := func(name, value, detail string) {
		results = append(results, result{name, value, detail})
		fmt.Printf("%-45s %-22s %s\n", name, value, detail)
	}

	// Start-to-ready of `kubesim up` as a process: until the kubeconfig is
	// written, which happens once the API serves.
	var procStarts []time.Duration
	for i := 0; i < o.startRuns; i++ {
		d, err := startProcess(ctx, o.bin)
		if err != nil {
			return err
		}
		procStarts = append(procStarts, d)
	}
	add("start-to-ready, kubesim up (process)", ms(median(procStarts)), fmt.Sprintf("median of %d; min %s, max %s", o.startRuns, ms(minOf(procStarts)), ms(maxOf(procStarts))))

	// Start-to-ready in-process, as a test binary would embed it.
	var inproc []time.Duration
	for i := 0; i < o.startRuns; i++ {
		d, err := startInProcess(ctx)
		if err != nil {
			return err
		}
		inproc = append(inproc, d)
	}
	add("start-to-ready, apiserver.New+Start (in-process)", ms(median(inproc)), fmt.Sprintf("median of %d; min %s, max %s", o.startRuns, ms(minOf(inproc)), ms(maxOf(inproc))))

	// Throughput against one process.
	dir, err := os.MkdirTemp("", "kubesim-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kc := filepath.Join(dir, "kubeconfig")
	cmd := exec.Command(o.bin, "up", "--port", "0", "--kubeconfig", kc)
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	if err := waitFile(kc, 30*time.Second); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = -1, -1
	cs := kubernetes.NewForConfigOrDie(cfg)
	const ns = "bench"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	rssBefore := rss(cmd.Process.Pid)

	lat, wall, err := parallel(o.objects, o.concurrency, func(i int) error {
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%06d", i), Labels: map[string]string{"app": "bench"}},
			Data:       map[string]string{"key": strings.Repeat("v", 100)},
		}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return err
	}
	add("create ConfigMap", perSec(o.objects, wall), latencies(lat, o.concurrency))

	lat, wall, err = parallel(o.objects, o.concurrency, func(i int) error {
		_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, fmt.Sprintf("cm-%06d", i), metav1.GetOptions{})
		return err
	})
	if err != nil {
		return err
	}
	add("get ConfigMap", perSec(o.objects, wall), latencies(lat, o.concurrency))

	var lists []time.Duration
	for i := 0; i < 5; i++ {
		start := time.Now()
		l, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(l.Items) != o.objects {
			return fmt.Errorf("list returned %d items, want %d", len(l.Items), o.objects)
		}
		lists = append(lists, time.Since(start))
	}
	add(fmt.Sprintf("list %d ConfigMaps (JSON)", o.objects), ms(median(lists)), "median of 5 full lists")
	add(fmt.Sprintf("RSS after loading %d ConfigMaps", o.objects), fmt.Sprintf("%d MiB", rss(cmd.Process.Pid)/1024), fmt.Sprintf("%d MiB before loading", rssBefore/1024))

	// Watch fan-out: every watcher must see every event.
	const events = 1000
	list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return err
	}
	var watchers []watch.Interface
	for i := 0; i < o.watchers; i++ {
		w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "fanout=yes"})
		if err != nil {
			return err
		}
		watchers = append(watchers, w)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range watchers {
		wg.Add(1)
		go func(w watch.Interface) {
			defer wg.Done()
			defer w.Stop()
			n := 0
			for range w.ResultChan() {
				if n++; n == events {
					return
				}
			}
		}(w)
	}
	if _, _, err := parallel(events, o.concurrency, func(i int) error {
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fan-%06d", i), Labels: map[string]string{"fanout": "yes"}}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	wg.Wait()
	fan := time.Since(start)
	add(fmt.Sprintf("watch fan-out, %d watchers x %d events", o.watchers, events), perSec(o.watchers*events, fan), fmt.Sprintf("all delivered %s after the first write", ms(fan)))

	return write(o, results)
}

func startProcess(ctx context.Context, bin string) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "kubesim-bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	kc := filepath.Join(dir, "kubeconfig")
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "up", "--port", "0", "--kubeconfig", kc)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	err = waitFile(kc, 30*time.Second)
	d := time.Since(start)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if werr := cmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("kubesim up did not exit cleanly: %v\n%s", werr, logs.String())
	}
	return d, err
}

func startInProcess(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithCancel(klog.NewContext(ctx, klog.Background().V(10)))
	start := time.Now()
	srv, err := apiserver.New(apiserver.Config{AnyPort: true})
	if err != nil {
		cancel()
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		return 0, err
	}
	d := time.Since(start)
	cancel()
	return d, <-done
}

func waitFile(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s not written within %s", path, timeout)
}

// parallel runs fn for 0..n-1 on workers and returns each call's latency.
func parallel(n, workers int, fn func(int) error) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	work := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t := time.Now()
				if err := fn(i); err != nil {
					errc <- err
					for range work {
					}
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	wall := time.Since(start)
	select {
	case err := <-errc:
		return nil, 0, err
	default:
	}
	return lat, wall, nil
}

func sorted(d []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}
func median(d []time.Duration) time.Duration { s := sorted(d); return s[len(s)/2] }
func minOf(d []time.Duration) time.Duration  { return sorted(d)[0] }
func maxOf(d []time.Duration) time.Duration  { s := sorted(d); return s[len(s)-1] }
func pct(d []time.Duration, p float64) time.Duration {
	s := sorted(d)
	return s[int(float64(len(s)-1)*p)]
}
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
func perSec(n int, d time.Duration) string {
	return fmt.Sprintf("%.0f /s", float64(n)/d.Seconds())
}
func latencies(lat []time.Duration, c int) string {
	return fmt.Sprintf("%d clients; p50 %s, p99 %s", c, ms(pct(lat, 0.5)), ms(pct(lat, 0.99)))
}

// rss returns a process's resident set in KiB.
func rss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func write(o options, results []result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Measured by `make bench` (`go run ./hack/bench`) against `kubesim up` on loopback, with client-go\n")
	fmt.Fprintf(&b, "(no client rate limit) at %d concurrent workers. Machine: %d CPUs, %s/%s, %s.\n", o.concurrency, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(&b, "Run on %s.\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "| benchmark | result | detail |\n|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.name, r.value, r.detail)
	}
	fmt.Fprintf(&b, "\nThese are kubesim's own figures. Ratios against the genuine kube-apiserver + etcd measured in\n")
	fmt.Fprintf(&b, "the same run come with the reference peer (`make bench-compare`, see the reference-peer issue).\n")
	return os.WriteFile(o.out, []byte(b.String()), 0o644)
}
