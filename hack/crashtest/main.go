// Command crashtest is kubesim's crash harness (make crash-test): it runs
// `kubesim up` over durable storage, writes and reads ConfigMaps through
// client-go from several clients, kills kubesim with SIGKILL at random
// moments, restarts it and checks after every restart:
//
//   - no acknowledged write is lost: each key reads back at least at the
//     revision of its last acknowledged write;
//   - no revision is reused: a revision acknowledged once never names
//     another write, and writes after a restart get revisions above every
//     one acknowledged before;
//   - a watch resumed from an acknowledged revision sees every later
//     acknowledged write, in revision order, with no duplicate;
//
// and at the end that the whole history of gets, puts and deletes is
// linearizable (github.com/anishathalye/porcupine).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/server/v3/embed"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

type options struct {
	kubesim   string
	work      string
	cycles    int
	keys      int
	writers   int
	readers   int
	minLoad   time.Duration
	maxLoad   time.Duration
	seed      uint64
	storage   string
	extraArgs []string
}

func main() {
	var o options
	var extra string
	flag.StringVar(&o.kubesim, "kubesim", "bin/kubesim", "the kubesim binary")
	flag.StringVar(&o.work, "work", "", "working directory (data dir, logs); default: a new temporary one, removed on success")
	flag.IntVar(&o.cycles, "cycles", 200, "kill -9 cycles")
	flag.IntVar(&o.keys, "keys", 8, "ConfigMaps written")
	flag.IntVar(&o.writers, "writers", 4, "concurrent writing clients")
	flag.IntVar(&o.readers, "readers", 2, "concurrent reading clients")
	flag.DurationVar(&o.minLoad, "min-load", 300*time.Millisecond, "shortest load before a kill")
	flag.DurationVar(&o.maxLoad, "max-load", 3*time.Second, "longest load before a kill")
	flag.Uint64Var(&o.seed, "seed", 0, "random seed (default: from the clock)")
	flag.StringVar(&o.storage, "storage", "data-dir", "what kubesim stores in: data-dir (--data-dir in the work dir), memory (no durability: the harness must fail, a check of the harness), or etcd (give --storage etcd and its flags with -args)")
	flag.StringVar(&extra, "args", "", "more arguments for kubesim up, space-separated (the storage: --storage etcd --etcd-servers ...)")
	klog.InitFlags(nil)
	flag.Parse()
	if extra != "" {
		o.extraArgs = strings.Fields(extra)
	}
	switch o.storage {
	case "data-dir", "memory", "etcd":
	default:
		fmt.Fprintf(os.Stderr, "unknown -storage %q\n", o.storage)
		os.Exit(2)
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	removeWork := false
	if o.work == "" {
		d, err := os.MkdirTemp("", "kubesim-crashtest-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		o.work, removeWork = d, true
	}
	rep, err := run(context.Background(), o)
	fmt.Println(rep)
	if err != nil {
		fmt.Fprintf(os.Stderr, "crashtest FAILED (seed %d, work dir %s): %v\n", o.seed, o.work, err)
		os.Exit(1)
	}
	if removeWork {
		os.RemoveAll(o.work)
	}
}

// op is one client operation of the history.
type op struct {
	client  int
	kind    string // get, put, delete
	key     string
	value   string // put: the value written; get: the value read
	exists  bool   // get: the key existed; delete: it did
	unknown bool   // the outcome is unknown: the server died
	rev     int64  // put: the revision acknowledged; get: the object's
	call    int64
	ret     int64
}

type history struct {
	mu  sync.Mutex
	ops []op
}

func (h *history) add(o op) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

type report struct {
	cycles, acked, unknown, gets, watchChecks, watchEvents, expiredWatches int
	lost, reused, watchGaps, watchDups                                     int
	startTimes                                                             []time.Duration
	linearizable                                                           string
}

func (r report) String() string {
	sort.Slice(r.startTimes, func(i, j int) bool { return r.startTimes[i] < r.startTimes[j] })
	med := time.Duration(0)
	if len(r.startTimes) > 0 {
		med = r.startTimes[len(r.startTimes)/2]
	}
	return fmt.Sprintf("cycles %d (kill -9 each), acknowledged writes %d, writes of unknown outcome %d, reads %d\n"+
		"lost acknowledged writes %d, reused revisions %d\n"+
		"watch resumptions %d (%d events; %d expired): gaps %d, duplicates %d\n"+
		"restart to ready: median %v\nlinearizability (porcupine): %s",
		r.cycles, r.acked, r.unknown, r.gets, r.lost, r.reused, r.watchChecks, r.watchEvents, r.expiredWatches, r.watchGaps, r.watchDups, med.Round(time.Millisecond), r.linearizable)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func now() int64 { return time.Now().UnixNano() }

func run(ctx context.Context, o options) (rep report, err error) {
	rng := rand.New(rand.NewPCG(o.seed, 1))
	port, err := freePort()
	if err != nil {
		return rep, err
	}
	kubeconfig := filepath.Join(o.work, "kubeconfig")
	logFile, err := os.OpenFile(filepath.Join(o.work, "kubesim.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return rep, err
	}
	defer logFile.Close()
	// With -storage etcd and no etcd given, one runs here (embedded, with
	// fsync as etcd runs by default); kubesim is killed, etcd is not.
	var etcdURL string
	if o.storage == "etcd" && !strings.Contains(strings.Join(o.extraArgs, " "), "--etcd-servers") {
		e, url, err := startEtcd(filepath.Join(o.work, "etcd"))
		if err != nil {
			return rep, err
		}
		defer e.Close()
		etcdURL = url
	}
	h := &history{}
	// acked: revision -> the put acknowledged with it.
	acked := map[int64]op{}
	var maxAcked int64
	const ns = "default"
	for cycle := 0; cycle < o.cycles; cycle++ {
		fmt.Fprintf(logFile, "\n=== crashtest cycle %d\n", cycle)
		os.Remove(kubeconfig)
		start := time.Now()
		args := []string{"up", "--port", strconv.Itoa(port), "--kubeconfig", kubeconfig, "--nodes", "0", "--huge-pages=false"}
		switch o.storage {
		case "data-dir":
			args = append(args, "--data-dir", filepath.Join(o.work, "data"))
		case "etcd":
			args = append(args, "--pki-dir", filepath.Join(o.work, "pki"))
			if etcdURL != "" {
				args = append(args, "--storage", "etcd", "--etcd-servers", etcdURL)
			}
		}
		args = append(args, o.extraArgs...)
		cmd := exec.Command(o.kubesim, args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return rep, err
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		client, watches, err := waitReady(ctx, kubeconfig, exited)
		if err != nil {
			return rep, fmt.Errorf("cycle %d: kubesim did not start (see %s): %w", cycle, logFile.Name(), err)
		}
		rep.startTimes = append(rep.startTimes, time.Since(start))

		// After a restart: every key reads back at least at its last
		// acknowledged revision; a watch from an acknowledged revision
		// sees every later acknowledged write.
		if cycle > 0 {
			lastPut := map[string]op{}
			for _, p := range acked {
				if p.rev > lastPut[p.key].rev {
					lastPut[p.key] = p
				}
			}
			for k := range o.keys {
				key := fmt.Sprintf("k%d", k)
				g := get(ctx, client, -1, ns, key)
				if g.unknown {
					return rep, fmt.Errorf("cycle %d: unable to read %s after restart", cycle, key)
				}
				h.add(g)
				if p, ok := lastPut[key]; ok {
					if g.exists && g.rev < p.rev {
						rep.lost++
						klog.ErrorS(nil, "Acknowledged write lost", "key", key, "revision", g.rev, "acknowledged", p.rev, "value", p.value)
					}
					if !g.exists && !deletedAfter(h, key, p) {
						rep.lost++
						klog.ErrorS(nil, "Acknowledged write lost: the key is gone", "key", key, "acknowledged", p.rev)
					}
				}
			}
			if len(acked) > 0 {
				revs := make([]int64, 0, len(acked))
				for r := range acked {
					revs = append(revs, r)
				}
				from := revs[rng.IntN(len(revs))]
				if err := checkWatch(ctx, watches, ns, from, maxAcked, acked, &rep); err != nil {
					return rep, fmt.Errorf("cycle %d: %w", cycle, err)
				}
			}
		}

		// Load, then kill -9 in the middle of it.
		loadCtx, stopLoad := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var cycleAcked []op
		for w := range o.writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(o.seed+uint64(cycle)*1000+uint64(w), 2))
				for seq := 0; loadCtx.Err() == nil; seq++ {
					key := fmt.Sprintf("k%d", r.IntN(o.keys))
					var res op
					if r.IntN(10) == 0 {
						res = del(loadCtx, client, w, ns, key)
					} else {
						res = put(loadCtx, client, w, ns, key, fmt.Sprintf("c%d-w%d-%d", cycle, w, seq))
					}
					if res.unknown {
						mu.Lock()
						cycleAcked = append(cycleAcked, res) // resolved at the kill
						mu.Unlock()
						return
					}
					h.add(res)
					if res.kind == "put" {
						mu.Lock()
						cycleAcked = append(cycleAcked, res)
						mu.Unlock()
					}
				}
			}()
		}
		for rd := range o.readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(o.seed+uint64(cycle)*1000+uint64(rd), 3))
				for loadCtx.Err() == nil {
					g := get(loadCtx, client, o.writers+rd, ns, fmt.Sprintf("k%d", r.IntN(o.keys)))
					if g.unknown {
						return // a read that did not answer tells nothing
					}
					h.add(g)
				}
			}()
		}
		load := o.minLoad + time.Duration(rng.Int64N(int64(o.maxLoad-o.minLoad)+1))
		time.Sleep(load)
		cmd.Process.Kill()
		<-exited
		killed := now()
		stopLoad()
		wg.Wait()
		for _, p := range cycleAcked {
			if p.unknown {
				// It may have taken effect, but not after the process
				// died.
				p.ret = killed
				h.add(p)
				rep.unknown++
				continue
			}
			if prev, ok := acked[p.rev]; ok {
				rep.reused++
				klog.ErrorS(nil, "Revision reused", "revision", p.rev, "first", prev.key+"="+prev.value, "then", p.key+"="+p.value)
			}
			if p.rev <= maxAcked && cycle > 0 && p.call > 0 {
				// Compared with the revisions of earlier cycles only.
				if p.rev <= cycleStartMax(acked, cycle) {
					rep.reused++
					klog.ErrorS(nil, "Revision at or below one acknowledged before the restart", "revision", p.rev, "key", p.key)
				}
			}
			acked[p.rev] = p
			rep.acked++
		}
		for r := range acked {
			maxAcked = max(maxAcked, r)
		}
		rep.cycles++
	}
	for _, o := range h.ops {
		if o.kind == "get" {
			rep.gets++
		}
	}
	rep.linearizable = checkLinearizable(h.ops)
	var problems []string
	if rep.lost > 0 {
		problems = append(problems, fmt.Sprintf("%d acknowledged writes lost", rep.lost))
	}
	if rep.reused > 0 {
		problems = append(problems, fmt.Sprintf("%d revisions reused", rep.reused))
	}
	if rep.watchGaps+rep.watchDups > 0 {
		problems = append(problems, fmt.Sprintf("watch gaps %d, duplicates %d", rep.watchGaps, rep.watchDups))
	}
	if rep.linearizable != "ok" {
		problems = append(problems, "history not linearizable: "+rep.linearizable)
	}
	if len(problems) > 0 {
		return rep, errors.New(strings.Join(problems, "; "))
	}
	return rep, nil
}

// cycleStartMax is the highest revision acknowledged in cycles before
// cycle.
func cycleStartMax(acked map[int64]op, cycle int) int64 {
	var m int64
	prefix := fmt.Sprintf("c%d-", cycle)
	for r, p := range acked {
		if !strings.HasPrefix(p.value, prefix) {
			m = max(m, r)
		}
	}
	return m
}

// deletedAfter says whether a delete of key was issued after p returned,
// or concurrently with it.
func deletedAfter(h *history, key string, p op) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range h.ops {
		if o.kind == "delete" && o.key == key && o.ret >= p.call && (o.unknown || o.exists) {
			return true
		}
	}
	return false
}

func waitReady(ctx context.Context, kubeconfig string, exited <-chan error) (client, watches kubernetes.Interface, err error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, nil, fmt.Errorf("kubesim exited: %v", err)
		default:
		}
		if _, err := os.Stat(kubeconfig); err == nil {
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return nil, nil, err
			}
			cfg.QPS, cfg.Burst = -1, 0
			cfg.ContentType = "application/vnd.kubernetes.protobuf"
			watches, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return nil, nil, err
			}
			// Requests but watches end after 10s: a write to a server
			// that died is then of unknown outcome.
			cfg.Timeout = 10 * time.Second
			c, err := kubernetes.NewForConfig(cfg)
			return c, watches, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, nil, errors.New("not ready in 2m")
}

var labels = map[string]string{"kubesim.io/crashtest": "true"}

func get(ctx context.Context, c kubernetes.Interface, client int, ns, key string) op {
	o := op{client: client, kind: "get", key: key, call: now()}
	cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, key, metav1.GetOptions{})
	o.ret = now()
	switch {
	case err == nil:
		o.exists, o.value = true, cm.Data["v"]
		o.rev, _ = strconv.ParseInt(cm.ResourceVersion, 10, 64)
	case apierrors.IsNotFound(err):
	default:
		o.unknown = true
	}
	return o
}

func put(ctx context.Context, c kubernetes.Interface, client int, ns, key, value string) op {
	o := op{client: client, kind: "put", key: key, value: value, call: now()}
	cms := c.CoreV1().ConfigMaps(ns)
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: key, Labels: labels}, Data: map[string]string{"v": value}}
	for attempt := 0; ; attempt++ {
		// No resourceVersion: an unconditional update.
		out, err := cms.Update(ctx, obj, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			out, err = cms.Create(ctx, obj, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) && attempt < 5 {
				continue // created meanwhile: update it
			}
		}
		o.ret = now()
		if err != nil {
			o.unknown = true
			return o
		}
		o.rev, _ = strconv.ParseInt(out.ResourceVersion, 10, 64)
		return o
	}
}

func del(ctx context.Context, c kubernetes.Interface, client int, ns, key string) op {
	o := op{client: client, kind: "delete", key: key, call: now()}
	err := c.CoreV1().ConfigMaps(ns).Delete(ctx, key, metav1.DeleteOptions{})
	o.ret = now()
	switch {
	case err == nil:
		o.exists = true
	case apierrors.IsNotFound(err):
	default:
		o.unknown = true
	}
	return o
}

// checkWatch watches the ConfigMaps from revision from until it has seen
// revision upTo, and checks that every acknowledged put after from is
// there, in order, once.
func checkWatch(ctx context.Context, c kubernetes.Interface, ns string, from, upTo int64, acked map[int64]op, rep *report) error {
	// A watch from early in a long history replays hundreds of thousands
	// of events: minutes on a loaded machine.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	w, err := c.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: strconv.FormatInt(from, 10), LabelSelector: "kubesim.io/crashtest=true"})
	if err != nil {
		return fmt.Errorf("unable to watch from %d: %w", from, err)
	}
	defer w.Stop()
	rep.watchChecks++
	seen := map[int64]bool{}
	var last int64
	for last < upTo {
		var e watch.Event
		var ok bool
		select {
		case e, ok = <-w.ResultChan():
		case <-ctx.Done():
			return fmt.Errorf("the watch from %d stopped at %d before %d", from, last, upTo)
		}
		if !ok {
			if ctx.Err() != nil {
				return fmt.Errorf("the watch from %d stopped at %d before %d: %w", from, last, upTo, ctx.Err())
			}
			return fmt.Errorf("the watch from %d ended at %d before %d", from, last, upTo)
		}
		if e.Type == watch.Error {
			if st, ok := e.Object.(*metav1.Status); ok && st.Code == 410 {
				rep.expiredWatches++
				return nil
			}
			return fmt.Errorf("watch error from %d: %v", from, e.Object)
		}
		cm, ok := e.Object.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		r, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
		rep.watchEvents++
		if r <= last || seen[r] {
			rep.watchDups++
			klog.ErrorS(nil, "Watch event out of order or repeated", "from", from, "revision", r, "after", last)
		}
		seen[r] = true
		last = r
		if p, ok := acked[r]; ok && (p.key != cm.Name || (e.Type != watch.Deleted && p.value != cm.Data["v"])) {
			rep.watchGaps++
			klog.ErrorS(nil, "Watch event differs from the acknowledged write", "revision", r, "event", cm.Name+"="+cm.Data["v"], "acknowledged", p.key+"="+p.value)
		}
	}
	for r := range acked {
		if r > from && r <= upTo && !seen[r] {
			rep.watchGaps++
			klog.ErrorS(nil, "Watch missed an acknowledged write", "from", from, "revision", r)
		}
	}
	return nil
}

// kvInput and kvOutput are the model's operations.
type kvInput struct {
	kind, key, value string
}

type kvOutput struct {
	value   string
	exists  bool
	unknown bool
}

// kvState is one key's value; absent when !exists.
type kvState struct {
	value  string
	exists bool
}

func checkLinearizable(ops []op) string {
	history := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		history = append(history, porcupine.Operation{ClientId: o.client + 1, Input: kvInput{o.kind, o.key, o.value},
			Call: o.call, Output: kvOutput{o.value, o.exists, o.unknown}, Return: o.ret})
	}
	nd := &porcupine.NondeterministicModel{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			for _, o := range h {
				k := o.Input.(kvInput).key
				by[k] = append(by[k], o)
			}
			var out [][]porcupine.Operation
			for _, p := range by {
				out = append(out, p)
			}
			return out
		},
		Init: func() []interface{} { return []interface{}{kvState{}} },
		Step: func(state, input, output interface{}) []interface{} {
			s, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
			switch in.kind {
			case "get":
				if out.exists == s.exists && (!s.exists || out.value == s.value) {
					return []interface{}{s}
				}
				return nil
			case "put":
				next := kvState{value: in.value, exists: true}
				if out.unknown {
					return []interface{}{s, next}
				}
				return []interface{}{next}
			case "delete":
				if out.unknown {
					return []interface{}{s, kvState{}}
				}
				if out.exists != s.exists {
					return nil
				}
				return []interface{}{kvState{}}
			}
			return nil
		},
		Equal: func(a, b interface{}) bool { return a.(kvState) == b.(kvState) },
	}
	model := nd.ToModel()
	res := porcupine.CheckOperationsTimeout(model, history, 10*time.Minute)
	switch res {
	case porcupine.Ok:
		return "ok"
	case porcupine.Illegal:
		return "illegal"
	default:
		return "unknown (the check timed out)"
	}
}

// startEtcd runs an embedded etcd (the version the pin's k8s.io/apiserver
// tests use) on free loopback ports.
func startEtcd(dir string) (*embed.Etcd, string, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "error"
	ports := make([]int, 2)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, "", err
		}
		ports[i] = p
	}
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("unable to start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		e.Close()
		return nil, "", errors.New("etcd not ready in 1m")
	}
	return e, client.String(), nil
}
