package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/conformance/framework"
)

type options struct {
	bin         string
	duration    time.Duration
	nodes       int
	replicas    int
	writers     int
	listers     int
	abandoners  int
	slowReaders int
	garbage     int
	bulk        int
	rssBound    int64
	out         string
	extraArgs   string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "kubesim", "bin/kubesim", "the kubesim binary")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the load runs")
	flag.IntVar(&o.nodes, "nodes", 100, "simulated nodes")
	flag.IntVar(&o.replicas, "replicas", 1000, "the Deployment's replicas, created when the load starts")
	flag.IntVar(&o.writers, "writers", 64, "clients writing ConfigMaps")
	flag.IntVar(&o.listers, "listers", 128, "clients listing every ConfigMap or pod without a limit, as 8 users")
	flag.IntVar(&o.abandoners, "abandoners", 64, "clients opening watches and abandoning them")
	flag.IntVar(&o.slowReaders, "slow-readers", 32, "clients reading a watch one event a second")
	flag.IntVar(&o.garbage, "garbage", 16, "clients sending oversized, truncated and malformed bodies")
	flag.IntVar(&o.bulk, "bulk", 5000, "ConfigMaps of 1 KiB created before the load, which the lists and watches carry")
	flag.Int64Var(&o.rssBound, "rss-bound-mib", 2048, "the kubesim process's RSS must stay below this")
	flag.StringVar(&o.out, "out", "", "also write the report to this file")
	flag.StringVar(&o.extraArgs, "kubesim-args", "", "more flags of kubesim up, split on spaces (e.g. \"--max-requests-inflight 40\")")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, ok, err := run(ctx, o)
	if err != nil {
		klog.ErrorS(err, "Soak failed")
		os.Exit(2)
	}
	fmt.Print(report)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			klog.ErrorS(err, "Unable to write the report")
		}
	}
	if !ok {
		os.Exit(1)
	}
}

// cluster is the kubesim process under load.
type cluster struct {
	cmd    *exec.Cmd
	logs   *framework.SafeBuffer
	exited chan error
	cfg    *rest.Config
}

func startCluster(ctx context.Context, o options) (*cluster, error) {
	dir, err := os.MkdirTemp("", "kubesim-soak-")
	if err != nil {
		return nil, err
	}
	kc := filepath.Join(dir, "kubeconfig")
	c := &cluster{logs: &framework.SafeBuffer{}, exited: make(chan error, 1)}
	c.cmd = exec.Command(o.bin, append([]string{"up", "--port", "0", "--kubeconfig", kc, "--nodes", strconv.Itoa(o.nodes)}, strings.Fields(o.extraArgs)...)...)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.exited <- c.cmd.Wait() }()
	for {
		if _, err := os.Stat(kc); err == nil {
			break
		}
		select {
		case err := <-c.exited:
			return nil, fmt.Errorf("kubesim exited: %v\n%s", err, c.logs.String())
		case <-ctx.Done():
			c.cmd.Process.Kill()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if c.cfg, err = clientcmd.BuildConfigFromFlags("", kc); err != nil {
		return nil, err
	}
	c.cfg.QPS, c.cfg.Burst = -1, -1
	return c, nil
}

func (c *cluster) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		return err
	case <-time.After(time.Minute):
		c.cmd.Process.Kill()
		return errors.New("kubesim did not exit within a minute of SIGTERM")
	}
}

// as returns a configuration for user (in group soak:clients) on a
// connection of its own: the administrator impersonates the user, whom
// API Priority and Fairness then classifies.
func (c *cluster) as(user string) *rest.Config {
	cfg := rest.CopyConfig(c.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"soak:clients"}}
	// A dialer of its own makes client-go build a transport of its own
	// (one HTTP/2 connection, of at most 100 streams, per client).
	cfg.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return cfg
}

// wellBehaved returns the well-behaved client's configuration: a service
// account's, as an operator's controller runs (API Priority and Fairness:
// the service-accounts FlowSchema, workload-low), while the hostile clients
// are users (global-default), as a runaway tool run by a person is.
func (c *cluster) wellBehaved() *rest.Config {
	cfg := rest.CopyConfig(c.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:soak-app:well-behaved", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:soak-app"}}
	cfg.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return cfg
}

// stats counts what the clients saw.
type stats struct {
	mu       sync.Mutex
	codes    map[string]map[int]int // by kind of client
	fivexx   []string
	failures []string
}

func (s *stats) note(kind string, code int, what string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.codes[kind] == nil {
		s.codes[kind] = map[int]int{}
	}
	s.codes[kind][code]++
	if code >= 500 && len(s.fivexx) < 100 {
		if len(body) > 300 {
			body = body[:300]
		}
		s.fivexx = append(s.fivexx, fmt.Sprintf("%s %s: %d %s", kind, what, code, body))
	}
}

func (s *stats) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) < 100 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	}
}

// noteErr notes a typed client's answer: its code, 0 for a transport error.
func (s *stats) noteErr(kind, what string, err error) {
	if err == nil {
		s.note(kind, 200, what, nil)
		return
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s.note(kind, int(st.Status().Code), what, []byte(st.Status().Message))
		return
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		s.note(kind, 0, what, []byte(err.Error()))
	}
}

func run(ctx context.Context, o options) (string, bool, error) {
	c, err := startCluster(ctx, o)
	if err != nil {
		return "", false, err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.stop()
		}
	}()
	admin := kubernetes.NewForConfigOrDie(c.cfg)
	for _, ns := range []string{"soak-bulk", "soak-write", "soak-app"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return "", false, err
		}
	}
	for _, role := range []string{"edit", "view"} {
		if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "soak-" + role},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: "Group", Name: "soak:clients"}},
		}, metav1.CreateOptions{}); err != nil {
			return "", false, err
		}
	}
	klog.InfoS("Cluster up", "url", c.cfg.Host)
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "soak-well-behaved"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "soak-app", Name: "well-behaved"}},
	}, metav1.CreateOptions{}); err != nil {
		return "", false, err
	}
	if err := createBulk(ctx, admin, o.bulk); err != nil {
		return "", false, err
	}
	// RBAC's informers have the bindings before the load starts.
	for _, probe := range []kubernetes.Interface{kubernetes.NewForConfigOrDie(c.as("soak-probe")), kubernetes.NewForConfigOrDie(c.wellBehaved())} {
		for {
			if _, err := probe.CoreV1().ConfigMaps("soak-bulk").List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
				break
			} else if ctx.Err() != nil {
				return "", false, ctx.Err()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	klog.InfoS("Load starts", "duration", o.duration)
	st := &stats{codes: map[string]map[int]int{}}
	loadCtx, endLoad := context.WithTimeout(ctx, o.duration)
	defer endLoad()
	var wg sync.WaitGroup
	spawn := func(n int, fn func(ctx context.Context, i int)) {
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); fn(loadCtx, i) }()
		}
	}
	start := time.Now()

	// What is measured meanwhile.
	var rssMax atomic.Int64
	go sampleRSS(loadCtx, c.cmd.Process.Pid, &rssMax)
	good := &latencies{}
	wg.Add(1)
	go func() { defer wg.Done(); wellBehaved(loadCtx, c, good, st) }()
	deployment := make(chan time.Duration, 1)
	wg.Add(1)
	go func() { defer wg.Done(); deployment <- runDeployment(loadCtx, admin, o.replicas, st) }()

	// The load.
	w := newWriteLog()
	spawn(o.writers, func(ctx context.Context, i int) { writer(ctx, c, i, w, st) })
	spawn(o.listers, func(ctx context.Context, i int) { lister(ctx, c, i, st) })
	spawn(o.abandoners, func(ctx context.Context, i int) { abandoner(ctx, c, i, st) })
	spawn(o.slowReaders, func(ctx context.Context, i int) { slowReader(ctx, c, i, st) })
	spawn(o.garbage, func(ctx context.Context, i int) { garbage(ctx, c, i, st) })
	wg.Wait()
	loaded := time.Since(start)
	klog.InfoS("Load ended; checking the writes")
	deployed := <-deployment

	// Every acknowledged write is there.
	checked, lost, err := w.verify(ctx, admin)
	if err != nil {
		return "", false, err
	}
	// The garbage was written nowhere.
	if cm, err := admin.CoreV1().ConfigMaps("soak-bulk").Get(ctx, "bulk-0", metav1.GetOptions{}); err != nil || cm.Data["v"] != strings.Repeat("b", 1024) || len(cm.Data) != 1 {
		lost = append(lost, fmt.Sprintf("soak-bulk/bulk-0, the garbage's target, changed: %v", err))
	}
	if _, err := admin.CoreV1().ConfigMaps("soak-bulk").Get(ctx, "garbage", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		lost = append(lost, fmt.Sprintf("soak-bulk/garbage was created by a malformed body: %v", err))
	}
	// The simulated kubelets (one flow of system-nodes and node-high) kept
	// their nodes Ready through the load.
	ready := 0
	if nodes, err := admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
	}
	alive := true
	select {
	case <-c.exited:
		alive = false
	default:
	}
	stopErr := c.stop()
	stopped = true
	logs := c.logs.String()
	panics := countPanics(logs)

	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: %s of hostile and heavy clients (%s)\n\n", loaded.Round(time.Second), time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "kubesim up --nodes %d %s; %d bulk ConfigMaps of 1 KiB; %d writers, %d listers (8 users), %d watch abandoners, %d slow readers, %d garbage senders.\n\n",
		o.nodes, o.extraArgs, o.bulk, o.writers, o.listers, o.abandoners, o.slowReaders, o.garbage)
	ok := true
	row := func(name, value string, pass bool) {
		mark := "yes"
		if !pass {
			mark, ok = "NO", false
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, value, mark)
	}
	fmt.Fprintf(&b, "| measure | value | met |\n|---|---|---|\n")
	rp50, rp99, rmax, rn := good.percentiles("readyz")
	gp50, gp99, gmax, gn := good.percentiles("get")
	row("well-behaved /readyz p50 / p99 / max (n)", fmt.Sprintf("%v / %v / %v (%d)", rp50, rp99, rmax, rn), rn > 0 && rp99 < time.Second)
	row("well-behaved get p50 / p99 / max (n)", fmt.Sprintf("%v / %v / %v (%d)", gp50, gp99, gmax, gn), gn > 0 && gp99 < time.Second)
	row("well-behaved requests failed", strconv.Itoa(good.failed()), good.failed() == 0)
	row(fmt.Sprintf("%d-pod Deployment available after", o.replicas), deployed.Round(time.Second).String(), deployed > 0)
	row("nodes Ready at the end", fmt.Sprintf("%d of %d", ready, o.nodes), ready == o.nodes)
	row("peak RSS (bound)", fmt.Sprintf("%d MiB (%d MiB)", rssMax.Load()>>20, o.rssBound), rssMax.Load()>>20 < o.rssBound)
	row("acknowledged writes checked / lost", fmt.Sprintf("%d / %d", checked, len(lost)), len(lost) == 0)
	row("5xx answers", strconv.Itoa(len(st.fivexx)), len(st.fivexx) == 0)
	row("panics in kubesim's log", strconv.Itoa(panics), panics == 0)
	row("kubesim alive at the end, clean exit on SIGTERM", fmt.Sprintf("%v, %v", alive, stopErr == nil), alive && stopErr == nil)
	row("harness failures", strconv.Itoa(len(st.failures)), len(st.failures) == 0)
	fmt.Fprintf(&b, "\nAnswers by client kind (code: count; 0 is a transport error):\n\n")
	kinds := make([]string, 0, len(st.codes))
	for k := range st.codes {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		codes := make([]int, 0, len(st.codes[k]))
		for code := range st.codes[k] {
			codes = append(codes, code)
		}
		slices.Sort(codes)
		var parts []string
		for _, code := range codes {
			parts = append(parts, fmt.Sprintf("%d: %d", code, st.codes[k][code]))
		}
		fmt.Fprintf(&b, "- %s: %s\n", k, strings.Join(parts, ", "))
	}
	for _, l := range lost {
		fmt.Fprintf(&b, "- lost: %s\n", l)
	}
	for _, f := range st.fivexx {
		fmt.Fprintf(&b, "- 5xx: %s\n", f)
	}
	for _, f := range st.failures {
		fmt.Fprintf(&b, "- failure: %s\n", f)
	}
	if panics > 0 {
		fmt.Fprintf(&b, "\nkubesim's log around the first panic:\n\n```\n%s\n```\n", aroundPanic(logs))
	}
	return b.String(), ok, nil
}

func createBulk(ctx context.Context, cs kubernetes.Interface, n int) error {
	value := strings.Repeat("b", 1024)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				if _, err := cs.CoreV1().ConfigMaps("soak-bulk").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bulk-%d", i)}, Data: map[string]string{"v": value}}, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// sampleRSS records the process's largest resident set size.
func sampleRSS(ctx context.Context, pid int, max *atomic.Int64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
					if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb<<10 > max.Load() {
						max.Store(kb << 10)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// latencies are the well-behaved client's.
type latencies struct {
	mu    sync.Mutex
	by    map[string][]time.Duration
	fails int
}

func (l *latencies) add(kind string, d time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[string][]time.Duration{}
	}
	l.by[kind] = append(l.by[kind], d)
	if !ok {
		l.fails++
	}
}

func (l *latencies) failed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fails
}

func (l *latencies) percentiles(kind string) (p50, p99, max time.Duration, n int) {
	l.mu.Lock()
	d := slices.Clone(l.by[kind])
	l.mu.Unlock()
	if len(d) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(d)
	at := func(q float64) time.Duration {
		return d[min(len(d)-1, int(q*float64(len(d))))].Round(100 * time.Microsecond)
	}
	return at(0.5), at(0.99), d[len(d)-1].Round(100 * time.Microsecond), len(d)
}

// wellBehaved asks for /readyz and gets a ConfigMap every 100 ms, as a
// service account, and records how long each took; a request that is not
// answered 200 counts as failed.
func wellBehaved(ctx context.Context, c *cluster, l *latencies, st *stats) {
	cfg, client, ok := rawClient(c.wellBehaved(), "well-behaved client", st)
	if !ok {
		return
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		for _, r := range []struct{ kind, path string }{{"readyz", "/readyz"}, {"get", "/api/v1/namespaces/soak-bulk/configmaps/bulk-1"}} {
			began := time.Now()
			code, body, err := do(ctx, client, http.MethodGet, cfg.Host+r.path, nil, "")
			if ctx.Err() != nil {
				return
			}
			l.add(r.kind, time.Since(began), err == nil && code == http.StatusOK)
			st.note("well-behaved", code, r.path, body)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rawClient is an HTTP client of cfg, which does not retry a 429 as
// client-go's REST client does.
func rawClient(cfg *rest.Config, kind string, st *stats) (*rest.Config, *http.Client, bool) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		st.fail("%s: %v", kind, err)
		return nil, nil, false
	}
	return cfg, client, true
}

// do sends a request and reads the whole answer.
func do(ctx context.Context, client *http.Client, method, url string, body []byte, contentType string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// runDeployment creates the Deployment and returns how long it took to have
// every replica available (0 if it did not within the load's time).
func runDeployment(ctx context.Context, cs kubernetes.Interface, replicas int, st *stats) time.Duration {
	labels := map[string]string{"app": "soak"}
	start := time.Now()
	_, err := cs.AppsV1().Deployments("soak-app").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "soak"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{}}}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		st.fail("create the Deployment: %v", err)
		return 0
	}
	for {
		d, err := cs.AppsV1().Deployments("soak-app").Get(ctx, "soak", metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas == int32(replicas) && d.Status.ObservedGeneration == d.Generation {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			st.fail("the Deployment had not all replicas available when the load ended")
			return 0
		case <-time.After(time.Second):
		}
	}
}

// writeLog is what each written ConfigMap holds by its last acknowledged
// write: its data, or deleted. A name whose last write's outcome is not
// known (a timeout, a dropped connection) is not checked.
type writeLog struct {
	mu     sync.Mutex
	state  map[string]*string // nil: deleted
	unsure map[string]bool
}

func newWriteLog() *writeLog {
	return &writeLog{state: map[string]*string{}, unsure: map[string]bool{}}
}

func (w *writeLog) acked(name string, data *string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state[name] = data
	delete(w.unsure, name)
}

func (w *writeLog) unknown(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unsure[name] = true
}

func (w *writeLog) verify(ctx context.Context, cs kubernetes.Interface) (int, []string, error) {
	list, err := cs.CoreV1().ConfigMaps("soak-write").List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, nil, err
	}
	stored := map[string]string{}
	for _, cm := range list.Items {
		stored[cm.Name] = cm.Data["v"]
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	checked := 0
	var lost []string
	for name, data := range w.state {
		if w.unsure[name] {
			continue
		}
		checked++
		got, ok := stored[name]
		switch {
		case data == nil && ok:
			lost = append(lost, name+": deleted, but listed")
		case data != nil && !ok:
			lost = append(lost, name+": written, but not listed")
		case data != nil && got != *data:
			lost = append(lost, fmt.Sprintf("%s: holds %.20q, the last acknowledged write %.20q", name, got, *data))
		}
	}
	return checked, lost, nil
}

// definite reports whether an error says the write was not done: an
// answer of the server's other than a timeout. A transport error or a
// timeout leaves it unknown.
func definite(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return false
	}
	code := st.Status().Code
	return code != http.StatusGatewayTimeout && code < 500 && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err)
}

// writer creates, updates and deletes ConfigMaps of its own, and records
// every acknowledged write.
func writer(ctx context.Context, c *cluster, i int, w *writeLog, st *stats) {
	cs := kubernetes.NewForConfigOrDie(c.as(fmt.Sprintf("soak-writer-%d", i%8)))
	rng := rand.New(rand.NewPCG(uint64(i), 1))
	for n := 0; ctx.Err() == nil; n++ {
		name := fmt.Sprintf("w%d-%d", i, rng.IntN(50))
		data := strings.Repeat(string(rune('a'+rng.IntN(26))), 100+rng.IntN(2000)) + strconv.Itoa(n)
		var err error
		var what string
		switch cur, getErr := cs.CoreV1().ConfigMaps("soak-write").Get(ctx, name, metav1.GetOptions{}); {
		case apierrors.IsNotFound(getErr):
			what = "create"
			_, err = cs.CoreV1().ConfigMaps("soak-write").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": data}}, metav1.CreateOptions{})
			if err == nil {
				w.acked(name, &data)
			}
		case getErr != nil:
			st.noteErr("writer", "get", getErr)
			continue
		case rng.IntN(4) == 0:
			what = "delete"
			err = cs.CoreV1().ConfigMaps("soak-write").Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &cur.ResourceVersion}})
			if err == nil {
				w.acked(name, nil)
			}
		default:
			what = "update"
			cur.Data = map[string]string{"v": data}
			_, err = cs.CoreV1().ConfigMaps("soak-write").Update(ctx, cur, metav1.UpdateOptions{})
			if err == nil {
				w.acked(name, &data)
			}
		}
		if ctx.Err() != nil && err != nil {
			w.unknown(name) // cut off: it may or may not have been done
			return
		}
		if err != nil && !definite(err) {
			w.unknown(name)
		}
		st.noteErr("writer", what, err)
	}
}

// lister lists every ConfigMap or every pod without a limit, again and
// again, as one of 8 users, on a raw client: a 429 is not retried.
func lister(ctx context.Context, c *cluster, i int, st *stats) {
	cfg, client, ok := rawClient(c.as(fmt.Sprintf("soak-lister-%d", i%8)), "lister", st)
	if !ok {
		return
	}
	path := []string{"/api/v1/configmaps", "/api/v1/pods"}[i%2]
	for ctx.Err() == nil {
		code, body, err := do(ctx, client, http.MethodGet, cfg.Host+path, nil, "")
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			st.note("lister", 0, path, []byte(err.Error()))
			continue
		}
		st.note("lister", code, path, body)
		if code == http.StatusTooManyRequests {
			time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
		}
	}
}

// abandoner opens a watch of every ConfigMap (from the current state: all
// of them first), reads it for up to two seconds, sometimes not at all,
// and drops it.
func abandoner(ctx context.Context, c *cluster, i int, st *stats) {
	cfg, client, ok := rawClient(c.as(fmt.Sprintf("soak-abandoner-%d", i%8)), "abandoner", st)
	if !ok {
		return
	}
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, time.Duration(rand.IntN(2000))*time.Millisecond)
		req, _ := http.NewRequestWithContext(wctx, http.MethodGet, cfg.Host+"/api/v1/configmaps?watch=true", nil)
		resp, err := client.Do(req)
		if err == nil {
			st.note("abandoner", resp.StatusCode, "watch", nil)
			if rand.IntN(3) > 0 {
				io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
		} else if wctx.Err() == nil {
			st.note("abandoner", 0, "watch", []byte(err.Error()))
		}
		cancel()
	}
}

// slowReader watches every pod and ConfigMap and reads one event a second.
func slowReader(ctx context.Context, c *cluster, i int, st *stats) {
	cfg, client, ok := rawClient(c.as(fmt.Sprintf("soak-slow-%d", i%4)), "slow reader", st)
	if !ok {
		return
	}
	path := []string{"/api/v1/configmaps?watch=true", "/api/v1/pods?watch=true"}[i%2]
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				st.note("slow-reader", 0, path, []byte(err.Error()))
				time.Sleep(time.Second)
			}
			continue
		}
		st.note("slow-reader", resp.StatusCode, path, nil)
		r := bufio.NewReader(resp.Body)
		for ctx.Err() == nil {
			if _, err := r.ReadBytes('\n'); err != nil {
				break // the server ended the watch
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		resp.Body.Close()
	}
}

// garbage sends bodies that are too large, truncated or not what they
// claim to be, as creates, updates and patches; each must be refused with
// a 4xx (kube-apiserver's: 413, 400, 415, 422) and write nothing.
func garbage(ctx context.Context, c *cluster, i int, st *stats) {
	cfg, client, ok := rawClient(c.as(fmt.Sprintf("soak-garbage-%d", i%4)), "garbage", st)
	if !ok {
		return
	}
	base := cfg.Host + "/api/v1/namespaces/soak-bulk/configmaps"
	big := bytes.Repeat([]byte("x"), 4<<20)
	valid := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"garbage"},"data":{"v":"` + strings.Repeat("g", 512) + `"}}`)
	rng := rand.New(rand.NewPCG(uint64(i), 2))
	for ctx.Err() == nil {
		var body []byte
		switch rng.IntN(4) {
		case 0:
			body = big
		case 1:
			body = valid[:rng.IntN(len(valid))]
		case 2:
			body = make([]byte, rng.IntN(4096))
			for j := range body {
				body[j] = byte(rng.IntN(256))
			}
		case 3:
			body = append([]byte("k8s\x00"), valid[:rng.IntN(len(valid))]...)
		}
		method, url, ct := http.MethodPost, base, []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}[rng.IntN(3)]
		switch rng.IntN(3) {
		case 1:
			method, url = http.MethodPut, base+"/bulk-0"
		case 2:
			method, url, ct = http.MethodPatch, base+"/bulk-0", []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"}[rng.IntN(4)]
			if ct == "application/apply-patch+yaml" {
				url += "?fieldManager=garbage"
			}
		}
		code, answer, err := do(ctx, client, method, url, body, ct)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			st.note("garbage", 0, method, []byte(err.Error()))
			continue
		}
		st.note("garbage", code, method+" "+ct, answer)
		if code < 400 && len(body) > 0 && !bytes.Equal(body, valid) {
			st.fail("garbage %s %s (%d bytes) answered %d: %.200s", method, ct, len(body), code, answer)
		}
	}
}

// countPanics counts panics in kubesim's log: runtime panics and those
// recovered by k8s.io/apimachinery's crash handler.
func countPanics(logs string) int {
	return strings.Count(logs, "panic: ") + strings.Count(logs, "Observed a panic")
}

func aroundPanic(logs string) string {
	i := strings.Index(logs, "panic")
	if i < 0 {
		return ""
	}
	start, end := max(0, i-2000), min(len(logs), i+4000)
	return logs[start:end]
}
