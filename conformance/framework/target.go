package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Target is the cluster under test.
type Target struct {
	// Name is "kubesim" or "reference".
	Name string
	// Kubeconfig is the path of a cluster-admin kubeconfig.
	Kubeconfig string
	// Config is a cluster-admin client configuration.
	Config *rest.Config
	// AuditLog is the path of the target's audit log, written under
	// testdata/audit/policy.yaml (the suite's kubesim and the reference
	// peer both run with it); empty when the target has none.
	AuditLog string

	cmd    *exec.Cmd
	waited chan error
	logs   *bytes.Buffer
	dir    string
}

// IsKubesim reports whether the target is kubesim (not the reference).
func (t *Target) IsKubesim() bool { return t.Name == "kubesim" }

// Start starts or reaches the target named by KUBESIM_TARGET.
func Start(ctx context.Context) (*Target, error) {
	name := os.Getenv("KUBESIM_TARGET")
	if name == "" {
		name = "kubesim"
	}
	switch name {
	case "kubesim":
		// A short compaction interval lets specs see 410 Expired. The API
		// suite runs, like the reference peer, without the controllers and
		// the scheduler: what it asserts is the API server's own behaviour
		// (specs of the control plane start their own cluster).
		// Both run with the same audit policy, which records the requests
		// of two namespaces only.
		policy, err := filepath.Abs("../testdata/audit/policy.yaml")
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "kubesim-audit-")
		if err != nil {
			return nil, err
		}
		log := filepath.Join(dir, "audit.log")
		t, err := startKubesim(ctx, "--compaction-interval", "10s", "--controller-manager=false", "--scheduler=false",
			"--audit-policy-file", policy, "--audit-log-path", log)
		if err != nil {
			return nil, err
		}
		t.AuditLog = log
		return t, nil
	case "reference":
		kc := os.Getenv("KUBECONFIG")
		if kc == "" {
			return nil, errors.New("KUBESIM_TARGET=reference needs KUBECONFIG")
		}
		t, err := newTarget(name, kc)
		if err != nil {
			return nil, err
		}
		// hack/reference-peer.sh writes the audit log in its run
		// directory, beside the kubeconfig's.
		t.AuditLog = os.Getenv("KUBESIM_AUDIT_LOG")
		if t.AuditLog == "" {
			t.AuditLog = filepath.Join(filepath.Dir(kc), "run", "audit.log")
		}
		return t, nil
	}
	return nil, fmt.Errorf("unknown KUBESIM_TARGET %q", name)
}

func newTarget(name, kubeconfig string) (*Target, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = -1, -1
	return &Target{Name: name, Kubeconfig: kubeconfig, Config: cfg}, nil
}

// Binary returns the kubesim binary the suite runs.
func Binary() (string, error) {
	if b := os.Getenv("KUBESIM_BIN"); b != "" {
		return b, nil
	}
	// conformance/ is one level below the repository root.
	b, err := filepath.Abs("../bin/kubesim")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(b); err != nil {
		return "", fmt.Errorf("no kubesim binary at %s: run `make build` or set KUBESIM_BIN", b)
	}
	return b, nil
}

// startBound is how long startKubesim waits for the kubeconfig: ctx's
// deadline if it has one (ginkgo's SpecContext has none: NodeTimeout
// cancels it instead), else 30 s, and 3 minutes with real nodes, whose
// start (containerd, the kubelet, its podCIDR, which kube-controller-manager
// allocates after the simulated nodes') Start waits for: about 11 s with a
// thousand simulated nodes on a loaded 2-core machine.
func startBound(ctx context.Context, args []string) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	for _, a := range args {
		if a == "--real-nodes" || strings.HasPrefix(a, "--real-nodes=") {
			return 3 * time.Minute
		}
	}
	return 30 * time.Second
}

// StartKubesim starts `kubesim up` with extra arguments, whatever the target.
func StartKubesim(ctx context.Context, extraArgs ...string) (*Target, error) {
	return startKubesim(ctx, extraArgs...)
}

func startKubesim(ctx context.Context, extraArgs ...string) (*Target, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kubesim-conformance-")
	if err != nil {
		return nil, err
	}
	kc := filepath.Join(dir, "kubeconfig")
	args := append([]string{"up", "--port", "0", "--kubeconfig", kc}, extraArgs...)
	cmd := exec.Command(bin, args...)
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &Target{Name: "kubesim", cmd: cmd, waited: make(chan error, 1), logs: logs, dir: dir}
	go func() { t.waited <- cmd.Wait() }()
	wait := startBound(ctx, extraArgs)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(kc); err == nil {
			break
		}
		select {
		case err := <-t.waited:
			return nil, fmt.Errorf("kubesim exited before it was ready: %v\n%s", err, logs.String())
		case <-deadline.C:
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("kubesim wrote no kubeconfig within %s\n%s", wait, logs.String())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	nt, err := newTarget("kubesim", kc)
	if err != nil {
		return nil, err
	}
	t.Kubeconfig, t.Config = nt.Kubeconfig, nt.Config
	return t, nil
}

// Stop stops a target the suite started with SIGTERM and returns an error
// unless it exits 0 within timeout.
func (t *Target) Stop(timeout time.Duration) error {
	return t.StopWith(syscall.SIGTERM, timeout)
}

// StopWith stops a target the suite started with sig and returns an error
// unless it exits 0 within timeout.
func (t *Target) StopWith(sig os.Signal, timeout time.Duration) error {
	if t.cmd == nil {
		return nil
	}
	defer os.RemoveAll(t.dir)
	if err := t.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case err := <-t.waited:
		if err != nil {
			return fmt.Errorf("kubesim did not exit cleanly: %v\n%s", err, t.Logs())
		}
		return nil
	case <-time.After(timeout):
		_ = t.cmd.Process.Kill()
		return fmt.Errorf("kubesim did not exit within %s of SIGTERM", timeout)
	}
}

// Logs returns what a started target printed so far.
func (t *Target) Logs() string {
	if t.logs == nil {
		return ""
	}
	return t.logs.String()
}

// Clientset returns a typed clientset.
func (t *Target) Clientset() kubernetes.Interface { return kubernetes.NewForConfigOrDie(t.Config) }

// Dynamic returns a dynamic client.
func (t *Target) Dynamic() dynamic.Interface { return dynamic.NewForConfigOrDie(t.Config) }

// KubectlBinary is the kubectl the suite runs: KUBECTL, or stock kubectl
// from PATH.
func KubectlBinary() string {
	if k := os.Getenv("KUBECTL"); k != "" {
		return k
	}
	return "kubectl"
}

// KubectlResult is what a kubectl run printed.
type KubectlResult struct {
	Stdout, Stderr string
	Err            error
}

// ExitCode is kubectl's exit status: 0 on success, -1 if it did not run
// or was killed.
func (r KubectlResult) ExitCode() int {
	if r.Err == nil {
		return 0
	}
	var exit *exec.ExitError
	if errors.As(r.Err, &exit) {
		return exit.ExitCode()
	}
	return -1
}

// PinnedKubectlBinary is the kubectl of the pinned Kubernetes version
// (KUBECTL_PIN, built by `make kubectl-pin`), or "" when it is not set.
func PinnedKubectlBinary() string { return os.Getenv("KUBECTL_PIN") }

// KubectlOptions says how KubectlWith runs kubectl.
type KubectlOptions struct {
	// Binary is the kubectl to run; "" means KubectlBinary().
	Binary string
	// Stdin is kubectl's standard input, if not "".
	Stdin string
	// Env is added to the suite's environment, as KEY=VALUE
	// (e.g. KUBE_EDITOR=/path/to/script).
	Env []string
}

// Kubectl runs kubectl against the target with args, stdin optional.
func (t *Target) Kubectl(ctx context.Context, stdin string, args ...string) KubectlResult {
	return t.KubectlWith(ctx, KubectlOptions{Stdin: stdin}, args...)
}

// KubectlWith runs a given kubectl binary against the target with args.
func (t *Target) KubectlWith(ctx context.Context, opts KubectlOptions, args ...string) KubectlResult {
	bin := opts.Binary
	if bin == "" {
		bin = KubectlBinary()
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", t.Kubeconfig}, args...)...)
	if len(opts.Env) > 0 {
		cmd.Env = append(os.Environ(), opts.Env...)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if opts.Stdin != "" {
		cmd.Stdin = strings.NewReader(opts.Stdin)
	}
	err := cmd.Run()
	return KubectlResult{Stdout: out.String(), Stderr: errOut.String(), Err: err}
}

// KubectlStream starts kubectl and returns it running (for get -w).
func (t *Target) KubectlStream(ctx context.Context, out *SafeBuffer, args ...string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, KubectlBinary(), append([]string{"--kubeconfig", t.Kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, cmd.Start()
}

// StartSimulatedNodes runs `kubesim node run --kubeconfig KUBECONFIG args...`:
// simulated kubelets for any target. The returned stop interrupts them and
// waits for them to exit.
func StartSimulatedNodes(ctx context.Context, kubeconfig string, args ...string) (stop func() error, logs *SafeBuffer, err error) {
	bin, err := Binary()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, append([]string{"node", "run", "--kubeconfig", kubeconfig}, args...)...)
	logs = &SafeBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	return func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-waited:
			return err
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			return fmt.Errorf("kubesim node run did not exit within 30s\n%s", logs.String())
		}
	}, logs, nil
}

// CAArgs are node run's flags for the CA in caDir (ca.crt, ca.key): the
// reference verifies kubelets' serving certificates with it.
func CAArgs(caDir string) []string {
	return []string{"--ca-cert-file", filepath.Join(caDir, "ca.crt"), "--ca-key-file", filepath.Join(caDir, "ca.key")}
}

// StartRealNodes runs `kubesim node run --real --kubeconfig KUBECONFIG
// --ca-cert-file CA.crt --ca-key-file CA.key args...`: real nodes for any
// target whose CA is caDir/ca.crt and caDir/ca.key. The returned stop
// interrupts them and waits until they have removed what they made.
func StartRealNodes(ctx context.Context, kubeconfig, caDir string, args ...string) (stop func() error, logs *SafeBuffer, err error) {
	return StartSimulatedNodes(ctx, kubeconfig, append(append([]string{"--real"}, CAArgs(caDir)...), args...)...)
}
