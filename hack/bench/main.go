package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/sim"
)

type options struct {
	bin       string
	realNodes bool
	// onlyRealNodes measures the real-node rows alone and prints them
	// (BENCHMARKS.md is left as it is).
	onlyRealNodes bool
	out           string
	objects       int
	concurrency   int
	watchers      int
	startRuns     int
	// referenceDir holds the reference binaries; referenceStartRuns how
	// many times it is started.
	referenceDir       string
	referenceStartRuns int
	repo               string
	// large is the number of ConfigMaps stored for the large-memory row.
	large int
	// fixtureRuns is how many times each operator test fixture starts.
	fixtureRuns int
	// durable measures the durable-write rows; onlyDurable measures them
	// alone and rewrites their section of -out.
	durable, onlyDurable bool
	// onlyClientCeiling measures the client-alone rows and prints them.
	onlyClientCeiling bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", os.Getenv("KUBESIM_BIN"), "kubesim binary")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "where to write the results")
	flag.IntVar(&o.objects, "objects", 10000, "objects to create, get and list")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent client-go workers")
	flag.IntVar(&o.watchers, "watchers", 100, "watchers for the fan-out benchmark")
	flag.IntVar(&o.startRuns, "start-runs", 10, "start-up measurements")
	home, _ := os.UserHomeDir()
	flag.StringVar(&o.referenceDir, "reference-dir", envOr("REFERENCE_DIR", filepath.Join(home, ".cache", "kubesim-reference")), "reference binaries (make reference-peer); empty skips the reference")
	flag.IntVar(&o.referenceStartRuns, "reference-start-runs", 3, "reference start-up measurements")
	flag.StringVar(&o.repo, "repo", ".", "the repository root (for hack/reference-peer.sh)")
	flag.IntVar(&o.large, "large", 100000, "ConfigMaps stored for the large-memory row (0 skips it)")
	flag.IntVar(&o.fixtureRuns, "fixture-runs", 20, "starts of each operator test fixture (sim.Start, envtest); 0 skips them")
	flag.BoolVar(&o.realNodes, "real-nodes", true, "measure clusters with a real node (needs root and make images)")
	flag.BoolVar(&o.durable, "durable", true, "measure writes with each storage (memory, data dir, etcd) against kube-apiserver on an etcd that fsyncs, and a data dir's restart")
	flag.BoolVar(&o.onlyDurable, "only-durable", false, "measure the durable-write rows alone and rewrite their section of -out")
	flag.BoolVar(&o.onlyRealNodes, "only-real-nodes", false, "measure the real-node rows alone and print them, without writing -out")
	flag.BoolVar(&o.onlyClientCeiling, "only-client-ceiling", false, "measure the client-alone rows (the benchmark's client against a server that does no work) and print them, without writing -out")
	flag.Parse()
	ctrllog.SetLogger(klog.Background())
	if o.bin == "" {
		o.bin = "bin/kubesim"
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// cluster is one side of the comparison.
type cluster struct {
	name       string
	kubeconfig string
	pids       func() []int
	// processes names them, for the CPU rows' details.
	processes string
	stop      func()
}

// measurement is one benchmark's figure for one cluster.
type measurement struct {
	value  float64 // in unit
	text   string
	detail string
}

// row is one benchmark: kubesim's figure, the reference's, and which way is better.
type row struct {
	name           string
	unit           string
	higherIsBetter bool
	kubesim, refer *measurement
}

func run(ctx context.Context, o options) error {
	var rows []*row
	get := func(name, unit string, higher bool) *row {
		for _, r := range rows {
			if r.name == name {
				return r
			}
		}
		r := &row{name: name, unit: unit, higherIsBetter: higher}
		rows = append(rows, r)
		return r
	}
	set := func(side, name, unit string, higher bool, m *measurement) {
		r := get(name, unit, higher)
		if side == "kubesim" {
			r.kubesim = m
		} else {
			r.refer = m
		}
		fmt.Printf("%-10s %-45s %-14s %s\n", side, name, m.text, m.detail)
	}

	if o.onlyRealNodes {
		reference := o.referenceDir != "" && fileExists(filepath.Join(o.referenceDir, "bin", "kube-apiserver"))
		return realNodeRows(ctx, o, reference, set)
	}
	if o.onlyClientCeiling {
		return clientCeiling(ctx, o, func(name, unit string, higher bool, m *measurement) { set("kubesim", name, unit, higher, m) })
	}
	if o.onlyDurable {
		reference := o.referenceDir != "" && fileExists(filepath.Join(o.referenceDir, "bin", "kube-apiserver"))
		section, err := durableRun(ctx, o, reference)
		if err != nil {
			return err
		}
		return replaceSection(o.out, durableSection, section)
	}

	// Start-to-ready of `kubesim up` as a process: until the kubeconfig is
	// written, which happens once the API serves (and, with the control
	// plane, once the scheduler's and controllers' informers have synced).
	var procStarts, fullStarts []time.Duration
	for i := 0; i < o.startRuns; i++ {
		d, err := startProcess(ctx, o.bin, apiOnly...)
		if err != nil {
			return err
		}
		procStarts = append(procStarts, d)
		if d, err = startProcess(ctx, o.bin); err != nil {
			return err
		}
		fullStarts = append(fullStarts, d)
	}
	set("kubesim", "start-to-ready", "ms", false, durationM(procStarts, fmt.Sprintf("kubesim up --controller-manager=false --scheduler=false (the API alone), median of %d", o.startRuns)))
	set("kubesim", "start-to-ready, full control plane", "ms", false, durationM(fullStarts, fmt.Sprintf("kubesim up: API, kube-scheduler and kube-controller-manager controllers, informers synced, median of %d", o.startRuns)))

	var inproc []time.Duration
	for i := 0; i < 2*o.startRuns; i++ {
		d, err := startInProcess(ctx)
		if err != nil {
			return err
		}
		inproc = append(inproc, d)
	}
	set("kubesim", "start-to-ready, in-process (sim.Start, full control plane)", "ms", false, durationM(inproc, fmt.Sprintf("median of %d", 2*o.startRuns)))

	reference := o.referenceDir != "" && fileExists(filepath.Join(o.referenceDir, "bin", "kube-apiserver"))
	if o.fixtureRuns > 0 {
		if err := fixtureRows(ctx, o, reference, set); err != nil {
			return err
		}
	}

	if o.realNodes {
		if err := realNodeRows(ctx, o, reference, set); err != nil {
			return err
		}
	}

	ks, err := startKubesimCluster(o.bin)
	if err != nil {
		return err
	}
	if err := workloads(ctx, o, ks, func(name, unit string, higher bool, m *measurement) { set("kubesim", name, unit, higher, m) }); err != nil {
		ks.stop()
		return err
	}
	ks.stop()

	if reference && fileExists(filepath.Join(o.referenceDir, "bin", "kube-controller-manager")) {
		var full []time.Duration
		for i := 0; i < o.referenceStartRuns; i++ {
			d, err := startFullReference(o)
			if err != nil {
				return err
			}
			full = append(full, d)
		}
		set("reference", "start-to-ready, full control plane", "ms", false, durationM(full, fmt.Sprintf("etcd + kube-apiserver + kube-controller-manager + kube-scheduler, all healthy, median of %d", o.referenceStartRuns)))
	}
	if reference {
		var refStarts []time.Duration
		var rc *cluster
		for i := 0; i < o.referenceStartRuns; i++ {
			c, d, err := startReference(o)
			if err != nil {
				return err
			}
			refStarts = append(refStarts, d)
			if i < o.referenceStartRuns-1 {
				c.stop()
			} else {
				rc = c
			}
		}
		set("reference", "start-to-ready", "ms", false, durationM(refStarts, fmt.Sprintf("etcd + kube-apiserver (certificates included), median of %d", o.referenceStartRuns)))
		err := workloads(ctx, o, rc, func(name, unit string, higher bool, m *measurement) { set("reference", name, unit, higher, m) })
		rc.stop()
		if err != nil {
			return err
		}
	}
	if err := clientCeiling(ctx, o, func(name, unit string, higher bool, m *measurement) {
		m.detail = "client-go's 16 workers against a server that does no work (TLS, HTTP/2; a create's answer is its request); " + m.detail
		set("kubesim", name, unit, higher, m)
	}); err != nil {
		return err
	}
	var durable string
	if o.durable {
		if durable, err = durableRun(ctx, o, reference); err != nil {
			return err
		}
	}
	return write(o, rows, reference, durable)
}

// replaceSection replaces the section of file that starts with heading
// (up to the next "## " heading) with section, or adds it before the
// scale section.
func replaceSection(file, heading, section string) error {
	old, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	s := string(old)
	if i := strings.Index(s, heading); i >= 0 {
		rest := s[i+len(heading):]
		end := len(s)
		if j := strings.Index(rest, "\n## "); j >= 0 {
			end = i + len(heading) + j + 1
		}
		s = s[:i] + section + "\n" + s[end:]
	} else if i := strings.Index(s, scaleSection); i >= 0 {
		s = s[:i] + section + "\n" + s[i:]
	} else {
		s += "\n" + section
	}
	return os.WriteFile(file, []byte(s), 0o644)
}

// restConfig loads a kubeconfig with its CA's bytes in the config rather
// than its file's name. client-go (ClientsAllowCARotation, on by default)
// caches transports by the CA file's name and rereads the file only every
// 5 minutes, so a cluster restarted with a new CA under the same file
// (the reference peer, between runs) would be refused as "certificate
// signed by unknown authority" for minutes.
func restConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	if cfg.CAFile != "" && len(cfg.CAData) == 0 {
		if cfg.CAData, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, err
		}
		cfg.CAFile = ""
	}
	return cfg, nil
}

// workloads runs the throughput, list, memory and fan-out benchmarks.
func workloads(ctx context.Context, o options, c *cluster, set func(name, unit string, higher bool, m *measurement)) error {
	cfg, err := restConfig(c.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = -1, -1
	// The JSON rows' client speaks JSON: client-go's typed clients default
	// to protobuf since 1.35 (the JSON rows of earlier runs were protobuf).
	cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
	cs := kubernetes.NewForConfigOrDie(cfg)
	pbCfg := rest.CopyConfig(cfg)
	pbCfg.ContentType = "application/vnd.kubernetes.protobuf"
	pbCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
	pb := kubernetes.NewForConfigOrDie(pbCfg)
	const ns = "bench"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	rssBefore := rssOf(c.pids())

	// createAndGet creates o.objects ConfigMaps named prefix-N, labelled
	// app=prefix, then gets each, and reports both rates.
	// timed runs fn and adds the row "server time per <what>": the
	// server's mean time per verb request on configmaps meanwhile.
	// For many requests it adds "server CPU per <what>" too: the CPU the
	// cluster's processes (kubesim's; kube-apiserver's and etcd's) used
	// meanwhile, per request.
	// Unlike the time, it does not depend on how the requests queue, and
	// it is what a steady load (5,000 kubelets' lease renewals) costs.
	timedOn := func(resource, what, verb string, fn func() error) error {
		cpu0 := cpuOf(c.pids())
		mean, n, err := serverTime(ctx, cs, verb, resource, fn)
		if err != nil {
			return err
		}
		cpu := cpuOf(c.pids()) - cpu0
		set("server time per "+what, "ms", false, &measurement{value: mean * 1000, text: fmt.Sprintf("%.3f ms", mean*1000),
			detail: fmt.Sprintf("mean of %.0f %s requests, apiserver_request_duration_seconds", n, verb)})
		if n < 1000 {
			return nil // a few lists: too few ticks of /proc's clock
		}
		perReq := cpu.Seconds() * 1000 / n
		set("server CPU per "+what, "ms", false, &measurement{value: perReq, text: fmt.Sprintf("%.3f ms", perReq),
			detail: fmt.Sprintf("%.2f CPU-s of %s over %.0f %s requests (/proc/PID/stat), collector included", cpu.Seconds(), c.processes, n, verb)})
		return nil
	}
	timed := func(what, verb string, fn func() error) error { return timedOn("configmaps", what, verb, fn) }
	createAndGet := func(cs kubernetes.Interface, prefix, encoding string) error {
		var lat []time.Duration
		var wall time.Duration
		if err := timed("create ConfigMap ("+encoding+")", "POST", func() (err error) {
			lat, wall, err = parallel(o.objects, o.concurrency, func(i int) error {
				_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%06d", prefix, i), Labels: map[string]string{"app": prefix}},
					Data:       map[string]string{"key": strings.Repeat("v", 100)},
				}, metav1.CreateOptions{})
				return err
			})
			return err
		}); err != nil {
			return err
		}
		set("create ConfigMap ("+encoding+")", "/s", true, rateM(o.objects, wall, lat, o.concurrency))
		if err := timed("get ConfigMap ("+encoding+")", "GET", func() (err error) {
			lat, wall, err = parallel(o.objects, o.concurrency, func(i int) error {
				_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, fmt.Sprintf("%s-%06d", prefix, i), metav1.GetOptions{})
				return err
			})
			return err
		}); err != nil {
			return err
		}
		set("get ConfigMap ("+encoding+")", "/s", true, rateM(o.objects, wall, lat, o.concurrency))
		return nil
	}
	if err := createAndGet(cs, "bench", "JSON"); err != nil {
		return err
	}

	// listRow lists with client five times (each list must hold
	// o.objects items) and adds the row name and its server-time row.
	listRow := func(name string, client kubernetes.Interface, selector string) error {
		var lists []time.Duration
		if err := timed(name, "LIST", func() error {
			for i := 0; i < 5; i++ {
				start := time.Now()
				l, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
				if err != nil {
					return err
				}
				if len(l.Items) != o.objects {
					return fmt.Errorf("list returned %d items, want %d", len(l.Items), o.objects)
				}
				lists = append(lists, time.Since(start))
			}
			return nil
		}); err != nil {
			return err
		}
		set(name, "ms", false, durationM(lists, "median of 5 full lists"))
		return nil
	}
	if err := listRow(fmt.Sprintf("list %d ConfigMaps (JSON)", o.objects), cs, ""); err != nil {
		return err
	}
	if err := listRow(fmt.Sprintf("list %d ConfigMaps (protobuf)", o.objects), pb, ""); err != nil {
		return err
	}
	after := rssOf(c.pids())
	set(fmt.Sprintf("RSS after loading %d ConfigMaps", o.objects), "MiB", false, &measurement{value: float64(after) / 1024, text: fmt.Sprintf("%d MiB", after/1024), detail: fmt.Sprintf("%d MiB before loading; all processes of the cluster", rssBefore/1024)})

	// The same in protobuf, as the genuine controllers and kubelets speak.
	if err := createAndGet(pb, "bench-pb", "protobuf"); err != nil {
		return err
	}
	for _, enc := range []struct {
		name string
		cs   kubernetes.Interface
	}{{"JSON", cs}, {"protobuf", pb}} {
		if err := listRow(fmt.Sprintf("list %d of %d ConfigMaps by label (%s)", o.objects, 2*o.objects, enc.name), enc.cs, "app=bench-pb"); err != nil {
			return err
		}
	}

	// Watch fan-out: every watcher must see every event. A single round
	// moved by a third from run to run on this 2-CPU machine: the median
	// of fanOutRounds, each with its own watches and ConfigMaps.
	const events, fanOutRounds = 1000, 3
	var fans []time.Duration
	// The server's CPU over the rounds (their creates included), per event
	// delivered: the client decoding 100,000 events shares the 2 CPUs with
	// the server, so the rate above is bounded by the client too.
	fanCPU0 := cpuOf(c.pids())
	for round := range fanOutRounds {
		fan, err := fanOut(ctx, pb, ns, round, o.watchers, events, o.concurrency)
		if err != nil {
			return err
		}
		fans = append(fans, fan)
	}
	fan, n := median(fans), o.watchers*events
	set(fmt.Sprintf("watch fan-out, %d watchers x %d events", o.watchers, events), "/s", true,
		&measurement{value: float64(n) / fan.Seconds(), text: perSec(n, fan), detail: fmt.Sprintf("protobuf (client-go's default); all delivered %s after the first write, median of %d rounds (min %s, max %s)",
			ms(fan), fanOutRounds, ms(minOf(fans)), ms(maxOf(fans)))})
	fanCPU, delivered := cpuOf(c.pids())-fanCPU0, fanOutRounds*n
	perEvent := fanCPU.Seconds() * 1e6 / float64(delivered)
	set("server CPU per watch event delivered (fan-out)", "us", false, &measurement{value: perEvent, text: fmt.Sprintf("%.2f us", perEvent),
		detail: fmt.Sprintf("%.2f CPU-s of %s over %d rounds of the fan-out (%d events delivered, the rounds' %d creates and %d watch requests included; /proc/PID/stat), collector included",
			fanCPU.Seconds(), c.processes, fanOutRounds, delivered, fanOutRounds*events, fanOutRounds*o.watchers)})

	// Memory with many objects: top the store up to o.large ConfigMaps.
	stored := 2*o.objects + fanOutRounds*events
	if more := o.large - stored; more > 0 {
		_, wall, err := parallel(more, o.concurrency, func(i int) error {
			_, err := pb.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("large-%06d", i), Labels: map[string]string{"app": "bench-large"}},
				Data:       map[string]string{"key": strings.Repeat("v", 100)},
			}, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			return err
		}
		large := rssOf(c.pids())
		set(fmt.Sprintf("RSS after loading %d ConfigMaps", o.large), "MiB", false, &measurement{value: float64(large) / 1024, text: fmt.Sprintf("%d MiB", large/1024),
			detail: fmt.Sprintf("the last %d created in %.1f s (protobuf); all processes of the cluster", more, wall.Seconds())})
	}

	// Lease renewals, as kubelets send them (protobuf; an Update of the
	// Lease the last answer gave, renewTime moved on): 5,000 nodes send
	// 500 a second, an idle cluster's steady load.
	return renewLeases(ctx, pb, ns, o, timedOn, set)
}

// renewLeases creates o.concurrency*leasesPerWorker Leases, then has
// o.concurrency clients renew them, each its own, o.objects renewals in
// all, and reports their rate, server time and server CPU.
func renewLeases(ctx context.Context, pb kubernetes.Interface, ns string, o options,
	timedOn func(resource, what, verb string, fn func() error) error, set func(name, unit string, higher bool, m *measurement)) error {
	const leasesPerWorker = 64
	leases := pb.CoordinationV1().Leases(ns)
	held := make([]*coordinationv1.Lease, o.concurrency*leasesPerWorker)
	if _, _, err := parallel(len(held), o.concurrency, func(i int) error {
		now := metav1.NewMicroTime(time.Now())
		l, err := leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%05d", i)},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(fmt.Sprintf("node-%05d", i)), LeaseDurationSeconds: ptr.To(int32(40)),
				AcquireTime: &now, RenewTime: &now},
		}, metav1.CreateOptions{})
		held[i] = l
		return err
	}); err != nil {
		return err
	}
	locks := make([]sync.Mutex, len(held))
	const what = "renew Lease (protobuf)"
	var lat []time.Duration
	var wall time.Duration
	if err := timedOn("leases", what, "PUT", func() (err error) {
		lat, wall, err = parallel(o.objects, o.concurrency, func(i int) error {
			// Each Lease is renewed by one client at a time, as by its
			// node's kubelet.
			j := i % len(held)
			locks[j].Lock()
			defer locks[j].Unlock()
			l := held[j].DeepCopy()
			now := metav1.NewMicroTime(time.Now())
			l.Spec.RenewTime = &now
			l, err := leases.Update(ctx, l, metav1.UpdateOptions{})
			if err == nil {
				held[j] = l
			}
			return err
		})
		return err
	}); err != nil {
		return err
	}
	set(what, "/s", true, rateM(o.objects, wall, lat, o.concurrency))
	return nil
}

// fanOut times one round of the watch fan-out: watchers watches from the
// current revision, all of which must see events new ConfigMaps, created
// by concurrency clients; from the first write until the last watch has
// its last event.
func fanOut(ctx context.Context, pb kubernetes.Interface, ns string, round, watchers, events, concurrency int) (time.Duration, error) {
	list, err := pb.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return 0, err
	}
	selector := fmt.Sprintf("fanout=round-%d", round)
	var ws []watch.Interface
	defer func() {
		for _, w := range ws {
			w.Stop()
		}
	}()
	for range watchers {
		w, err := pb.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: selector})
		if err != nil {
			return 0, err
		}
		ws = append(ws, w)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range ws {
		wg.Add(1)
		go func(w watch.Interface) {
			defer wg.Done()
			n := 0
			for range w.ResultChan() {
				if n++; n == events {
					return
				}
			}
		}(w)
	}
	if _, _, err := parallel(events, concurrency, func(i int) error {
		_, err := pb.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fan-%d-%06d", round, i),
			Labels: map[string]string{"fanout": fmt.Sprintf("round-%d", round)}}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return 0, err
	}
	wg.Wait()
	return time.Since(start), nil
}

// startFullReference times the genuine control plane from nothing to
// healthy: etcd + kube-apiserver (hack/reference-peer.sh), then
// kube-controller-manager and kube-scheduler (hack/control-plane.sh) until
// both answer /healthz. It stops them all afterwards.
func startFullReference(o options) (time.Duration, error) {
	peer := filepath.Join(o.repo, "hack", "reference-peer.sh")
	cp := filepath.Join(o.repo, "hack", "control-plane.sh")
	run := filepath.Join(o.referenceDir, "bench-control-plane")
	env := append(os.Environ(), "REFERENCE_DIR="+o.referenceDir, "KCM_PORT=27257", "SCHED_PORT=27259")
	_ = exec.Command(peer, "stop").Run()
	defer func() {
		_ = exec.Command(cp, "stop", run).Run()
		_ = exec.Command(peer, "stop").Run()
	}()
	start := time.Now()
	for _, args := range [][]string{{peer, "start"}, {cp, "start", filepath.Join(o.referenceDir, "kubeconfig"), run}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec: loopback health probe of a self-signed server
	healthy := func(port int) bool {
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if healthy(27257) && healthy(27259) {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("kube-controller-manager and kube-scheduler not healthy within 2 minutes (logs in %s)", run)
}

func durationM(d []time.Duration, detail string) *measurement {
	m := median(d)
	return &measurement{value: float64(m.Microseconds()) / 1000, text: ms(m), detail: fmt.Sprintf("%s; min %s, max %s", detail, ms(minOf(d)), ms(maxOf(d)))}
}

func rateM(n int, wall time.Duration, lat []time.Duration, c int) *measurement {
	return &measurement{value: float64(n) / wall.Seconds(), text: perSec(n, wall), detail: latencies(lat, c)}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func startKubesimCluster(bin string) (*cluster, error) {
	dir, err := os.MkdirTemp("", "kubesim-bench-")
	if err != nil {
		return nil, err
	}
	kc := filepath.Join(dir, "kubeconfig")
	cmd := exec.Command(bin, "up", "--port", "0", "--kubeconfig", kc, apiOnly[0], apiOnly[1])
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitFile(kc, 30*time.Second); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	return &cluster{name: "kubesim", kubeconfig: kc, processes: "kubesim",
		pids: func() []int { return []int{cmd.Process.Pid} },
		stop: func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); os.RemoveAll(dir) },
	}, nil
}

// startReference starts etcd + kube-apiserver with hack/reference-peer.sh
// and times it until kube-apiserver is ready.
func startReference(o options) (*cluster, time.Duration, error) {
	script := filepath.Join(o.repo, "hack", "reference-peer.sh")
	_ = exec.Command(script, "stop").Run()
	start := time.Now()
	cmd := exec.Command(script, "start")
	cmd.Env = append(os.Environ(), "REFERENCE_DIR="+o.referenceDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, 0, fmt.Errorf("unable to start the reference peer: %v\n%s", err, out)
	}
	d := time.Since(start)
	pid := func(name string) int {
		b, _ := os.ReadFile(filepath.Join(o.referenceDir, "run", name+".pid"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	return &cluster{name: "reference", kubeconfig: filepath.Join(o.referenceDir, "kubeconfig"), processes: "kube-apiserver and etcd",
		pids: func() []int { return []int{pid("kube-apiserver"), pid("etcd")} },
		stop: func() { _ = exec.Command(script, "stop").Run() },
	}, d, nil
}

func rssOf(pids []int) int {
	total := 0
	for _, p := range pids {
		total += rss(p)
	}
	return total
}

func startProcess(ctx context.Context, bin string, extraArgs ...string) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "kubesim-bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	kc := filepath.Join(dir, "kubeconfig")
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, append([]string{"up", "--port", "0", "--kubeconfig", kc}, extraArgs...)...)
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
	defer cancel()
	start := time.Now()
	c, err := sim.Start(ctx, sim.Config{APIServer: apiserver.Config{AnyPort: true}})
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	return d, c.Stop()
}

// apiOnly runs kubesim up as the API server alone, the envtest
// configuration the reference's etcd + kube-apiserver are.
var apiOnly = []string{"--controller-manager=false", "--scheduler=false"}

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

// cpuOf returns the CPU time (user and system) the processes have used.
func cpuOf(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The fields after the command name, which is in parentheses and
		// may hold spaces: utime and stime are the 14th and 15th of all.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * time.Second / clockTicks
	}
	return total
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux
// for every architecture Go supports.
const clockTicks = 100

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

// scaleSection starts the part of BENCHMARKS.md that make bench-scale's
// results are recorded in.
const scaleSection = "## Scale (make bench-scale)"

func write(o options, rows []*row, reference bool, durable string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Measured by `make bench` (`go run ./hack/bench`) in one run on one machine: kubesim (`kubesim up`)\n")
	fmt.Fprintf(&b, "and, as the reference, the genuine etcd + kube-apiserver of the pin (`hack/reference-peer.sh`, the\n")
	fmt.Fprintf(&b, "envtest configuration; with `hack/control-plane.sh`, the full control plane), with the same client-go\n")
	fmt.Fprintf(&b, "workloads against the API alone on both sides (no client rate limit, %d concurrent\n", o.concurrency)
	fmt.Fprintf(&b, "workers; kubesim's controllers and scheduler run with client limits of 1000 QPS / 2000 burst,\n")
	fmt.Fprintf(&b, "the reference's with kube-controller-manager's 20/30 and kube-scheduler's 50/100 defaults raised by\n")
	fmt.Fprintf(&b, "hack/control-plane.sh to 200/400). Machine: %d CPUs, %s/%s, %s. Run on %s.\n\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	if !reference {
		fmt.Fprintf(&b, "The reference was not measured in this run (`make reference-peer` builds it).\n\n")
	}
	fmt.Fprintf(&b, "| benchmark | kubesim | kube-apiserver + etcd | kubesim's advantage | kubesim detail | reference detail |\n|---|---|---|---|---|---|\n")
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(a, b *row) int { return cmp.Compare(rowRank(a.name), rowRank(b.name)) })
	for _, r := range rows {
		k, ref, adv, kd, rd := "-", "-", "-", "", ""
		if r.kubesim != nil {
			k, kd = r.kubesim.text, r.kubesim.detail
		}
		if r.refer != nil {
			ref, rd = r.refer.text, r.refer.detail
		}
		if r.kubesim != nil && r.refer != nil && r.kubesim.value > 0 && r.refer.value > 0 {
			ratio := r.refer.value / r.kubesim.value
			if r.higherIsBetter {
				ratio = r.kubesim.value / r.refer.value
			}
			adv = fmt.Sprintf("%.1fx", ratio)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.name, k, ref, adv, kd, rd)
	}
	fmt.Fprintf(&b, "\n\"kubesim's advantage\" is how many times faster (or smaller) kubesim is than the reference on that row.\n")
	fmt.Fprintf(&b, "Reproduce with `make reference-peer && make bench` (`make bench-compare` is the same run).\n")
	// The sections after the main table are kept as they are (the real
	// nodes', the scheduler experiments', make bench-scale's, and notes),
	// but the durable section, which is this run's when it measured one.
	old, _ := os.ReadFile(o.out)
	rest := string(old)
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[i+1:]
	} else {
		rest = ""
	}
	if durable != "" {
		if i := strings.Index(rest, durableSection); i >= 0 {
			after := rest[i+len(durableSection):]
			if j := strings.Index(after, "\n## "); j >= 0 {
				rest = rest[:i] + strings.TrimRight(durable, "\n") + "\n" + after[j:]
			} else {
				rest = rest[:i] + strings.TrimRight(durable, "\n") + "\n"
			}
		} else {
			rest = strings.TrimRight(rest, "\n") + "\n\n" + strings.TrimRight(durable, "\n") + "\n"
		}
	}
	if rest != "" {
		b.WriteString("\n" + rest)
	}
	return os.WriteFile(o.out, []byte(b.String()), 0o644)
}

// rowRank orders the main table: first the rows whose order tools know,
// then the rows added since, then the server-time rows (as before), then
// the server-CPU rows.
func rowRank(name string) int {
	switch {
	case strings.HasPrefix(name, "server CPU per "):
		return 3
	case strings.HasPrefix(name, "server time per "):
		return 2
	case strings.HasPrefix(name, "renew Lease "):
		return 1
	}
	return 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
