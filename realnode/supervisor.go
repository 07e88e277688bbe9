package realnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// The supervisor is a node's process: kubesim re-executed by its parent in
// the node's network namespace and a mount namespace of its own (see
// Nodes). It runs containerd, the kubelet and kube-proxy as its children
// and restarts any that exits, with back-off, until it is told to stop.

// bindMounts are the paths the kubelet, containerd and the CNI plugins use
// whatever their configuration says: each node gets its own, in its mount
// namespace.
func (s *spec) bindMounts() [][2]string {
	return [][2]string{
		{filepath.Join(s.DataDir, "kubelet"), "/var/lib/kubelet"},
		{filepath.Join(s.DataDir, "cni"), "/var/lib/cni"},
		{filepath.Join(s.DataDir, "log", "pods"), "/var/log/pods"},
		{filepath.Join(s.DataDir, "log", "containers"), "/var/log/containers"},
		{filepath.Join(s.RunDir, "run-containerd"), "/run/containerd"},
	}
}

// kernelTunables are the host-wide sysctls the kubelet writes at start
// (setupKernelTunables: vm.overcommit_memory=1, kernel.panic=10,
// kernel.panic_on_oops=1). A network namespace does not isolate them, and
// a test cluster has no business changing how the machine panics: each
// node's mount namespace has a file of its own over each, holding the
// host's value, which the kubelet reads and writes instead.
var kernelTunables = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

// setupMounts makes the mount namespace private and mounts the node's own
// directories and tunables.
func (s *spec) setupMounts() error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	for _, m := range s.bindMounts() {
		for _, d := range m {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := syscall.Mount(m[0], m[1], "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s on %s: %w", m[0], m[1], err)
		}
	}
	dir := filepath.Join(s.RunDir, "sysctl")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, t := range kernelTunables {
		target := filepath.Join("/proc/sys", t)
		v, err := os.ReadFile(target)
		if err != nil {
			return err
		}
		f := filepath.Join(dir, strings.ReplaceAll(t, "/", "."))
		if err := os.WriteFile(f, v, 0o644); err != nil {
			return err
		}
		if err := syscall.Mount(f, target, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s on %s: %w", f, target, err)
		}
	}
	// The node routes its pods' traffic to other nodes' pods.
	return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
}

// child is a supervised process.
type child struct {
	name string
	args []string
	log  string
	// ready, if set, returns nil once the child serves.
	ready func(ctx context.Context) error
}

// supervise runs the node until ctx is done.
func supervise(ctx context.Context, dir string) error {
	logger := klog.FromContext(ctx)
	s, err := readSpec(dir)
	if err != nil {
		return err
	}
	if err := joinCgroup(s.Cgroup+"/system", os.Getpid()); err != nil {
		return fmt.Errorf("joining the node's cgroup: %w", err)
	}
	if err := s.setupMounts(); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	containerd := child{
		name: "containerd",
		args: []string{"containerd", "--config", s.path("containerd.toml")},
		log:  s.path("containerd.log"),
		ready: func(ctx context.Context) error {
			return waitSocket(ctx, s.containerdSocket())
		},
	}
	kubelet := child{
		name: "kubelet",
		args: []string{exe, ExecCommand, "kubelet",
			"--config=" + s.path("kubelet.yaml"),
			"--kubeconfig=" + s.path("kubelet.kubeconfig"),
			"--hostname-override=" + s.Name,
			"--node-ip=" + s.IP,
			"--node-labels=" + s.labelFlag(),
			"--root-dir=/var/lib/kubelet",
			"--v=" + os.Getenv(verbosityEnv),
		},
		log: s.path("kubelet.log"),
	}
	proxy := child{
		name: "kube-proxy",
		args: []string{exe, ExecCommand, "kube-proxy", "--config=" + s.path("kube-proxy.yaml"), "--v=" + os.Getenv(verbosityEnv)},
		log:  s.path("kube-proxy.log"),
	}
	var wg sync.WaitGroup
	containerdUp := make(chan struct{})
	wg.Add(3)
	go func() {
		defer wg.Done()
		keepRunning(ctx, containerd, func() {
			// Images are imported at every containerd start: it is the
			// only writer of its content store.
			if err := importImages(ctx, s); err != nil {
				logger.Error(err, "Importing images")
			}
			select {
			case <-containerdUp:
			default:
				close(containerdUp)
			}
		})
	}()
	go func() {
		defer wg.Done()
		select {
		case <-containerdUp:
		case <-ctx.Done():
			return
		}
		keepRunning(ctx, kubelet, nil)
	}()
	go func() {
		defer wg.Done()
		keepRunning(ctx, proxy, nil)
	}()
	wg.Wait()
	return nil
}

// keepRunning runs c, and runs it again with back-off (1 s doubling to
// 30 s, reset after 60 s of running) whenever it exits, until ctx is done;
// then it sends SIGTERM and, 10 s later, SIGKILL. started runs after each
// start once c is ready.
func keepRunning(ctx context.Context, c child, started func()) {
	logger := klog.FromContext(ctx).WithValues("component", c.name)
	backoff := time.Second
	for ctx.Err() == nil {
		begin := time.Now()
		err := runOnce(ctx, c, started)
		if ctx.Err() != nil {
			return
		}
		if time.Since(begin) > time.Minute {
			backoff = time.Second
		}
		logger.Error(err, "Node component exited; restarting", "after", backoff, "log", c.log)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func runOnce(ctx context.Context, c child, started func()) error {
	out, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(c.args[0], c.args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if c.ready != nil {
		rctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-done:
				cancel()
				done <- errors.New("exited before it was ready")
			case <-rctx.Done():
			}
		}()
		err := c.ready(rctx)
		cancel()
		if err != nil {
			_ = cmd.Process.Kill()
			return fmt.Errorf("%s not ready: %w", c.name, err)
		}
	}
	if started != nil {
		started()
	}
	select {
	case err := <-done:
		return fmt.Errorf("%s exited: %w", c.name, err)
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return nil
	}
}

// waitSocket waits until a unix socket accepts connections.
func waitSocket(ctx context.Context, path string) error {
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// importImages imports the image tarballs of ImagesDir into containerd's
// k8s.io namespace (where CRI looks) and pins the sandbox image, as the
// CRI plugin pins its own. Their layers are not unpacked: CRI unpacks an
// image into the snapshotter when a container first needs it, as it does a
// pulled one, so a node start does not unpack a dozen images it may never
// run (unpacking all of them took 2 s of a quiet machine per node, 8 s of a
// loaded one, before the kubelet could start).
func importImages(ctx context.Context, s *spec) error {
	ctr := func(args ...string) error {
		args = append([]string{"--address", s.containerdSocket(), "--namespace", "k8s.io"}, args...)
		out, err := exec.CommandContext(ctx, "ctr", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, t := range imageTarballs(s.ImagesDir) {
		if err := ctr("images", "import", "--no-unpack", t); err != nil {
			return err
		}
	}
	return ctr("images", "label", PauseImage, "io.cri-containerd.pinned=pinned")
}

// imageTarballs lists what a node imports from dir: BundleFile, if there,
// instead of the tarballs make images wrote (those with a .stamp), and
// every other *.tar.
func imageTarballs(dir string) []string {
	tars, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
	bundle := filepath.Join(dir, BundleFile)
	if _, err := os.Stat(bundle); err != nil {
		return tars
	}
	files := []string{bundle}
	for _, t := range tars {
		if _, err := os.Stat(t + ".stamp"); err != nil {
			files = append(files, t)
		}
	}
	return files
}
