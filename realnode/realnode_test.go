package realnode_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/realnode"
	"github.com/kubesim/kubesim/realnode/nodeexec"
	"github.com/kubesim/kubesim/sim"
)

// childEnv makes the test binary a kubesim with one real node that runs a
// pod, prints "ready" and waits to be killed.
const childEnv = "KUBESIM_REALNODE_TEST_CHILD"

// TestMain runs the nodes' processes when the test binary is re-executed
// as them (realnode.Config.Executable defaults to this binary), and the
// child cluster of TestKill9LeavesNothingAfterSweep.
func TestMain(m *testing.M) {
	nodeexec.Main()
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

func runChild() int {
	ctx := context.Background()
	c, err := sim.Start(ctx, sim.Config{APIServer: apiserver.Config{AnyPort: true}, RealNodes: 1})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	cs := kubernetes.NewForConfigOrDie(c.API.RESTConfig())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "survivor", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{realnode.NodeTypeLabel: "real"},
			Containers:   []corev1.Container{{Name: "c", Image: realnode.BusyboxImage, Command: []string{"sleep", os.Getenv(childEnv + "_MARKER")}}},
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "survivor", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		fmt.Println("error: pod not running:", err)
		return 1
	}
	fmt.Println("ready", c.RealNodes.NetNS(c.RealNodes.Names()[0]))
	select {}
}

// TestKill9LeavesNothingAfterSweep kills a kubesim with a real node
// running a pod with SIGKILL: the node's own processes die with it
// (Pdeathsig); the pod's container and its shim, which containerd
// detaches, are what the next start's Sweep finds and removes, with the
// network namespaces, links, cgroups, mounts and directories.
func TestKill9LeavesNothingAfterSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("real nodes need root")
	}
	if err := realnode.Preflight(realnode.DefaultImagesDir()); err != nil {
		t.Fatalf("%v (make realnode-deps images)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// A command line no other container on the machine has.
	marker := strconv.Itoa(4_000_000 + os.Getpid())
	sleep := "sleep " + marker
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childEnv+"_MARKER="+marker)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q %v", line, err)
	}
	netns := strings.TrimSpace(strings.TrimPrefix(line, "ready "))
	if _, err := os.Stat(netns); err != nil {
		t.Fatalf("the node's network namespace: %v", err)
	}
	// What the killed cluster has is told by its network index (other
	// clusters with real nodes may run on the machine meanwhile).
	index := strings.SplitN(strings.TrimPrefix(filepath.Base(netns), "kubesim-"), "-", 2)[0]
	ours := "/run/kubesim/" + index + "/"
	if got := processes(sleep); len(got) != 1 {
		t.Fatalf("the pod's container: %d processes", len(got))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// The node's processes die with kubesim; its pod's container lives on
	// (its shim is detached from containerd) until a sweep.
	nodeProcs := func() []string {
		return filter(append(processes(realnode.ExecCommand), processesPrefix("containerd --config")...), ours)
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return len(nodeProcs()) == 0, nil
	}); err != nil {
		t.Fatalf("node processes outlived kubesim: %v", nodeProcs())
	}
	if got := processes(sleep); len(got) != 1 {
		t.Logf("the container did not survive kubesim (%d processes): Sweep has less to do", len(got))
	}

	realnode.Sweep(ctx)

	if got := processes(sleep); len(got) != 0 {
		t.Errorf("containers after Sweep: %v", got)
	}
	if got := processesPrefix("/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id"); len(filter(got, ours)) != 0 {
		t.Errorf("shims after Sweep: %v", got)
	}
	if entries, _ := filepath.Glob("/run/netns/kubesim-" + index + "-*"); len(entries) > 0 {
		t.Errorf("network namespaces after Sweep: %v", entries)
	}
	if _, err := os.Stat("/sys/class/net/kubesim" + index); !os.IsNotExist(err) {
		t.Errorf("link kubesim%s after Sweep: %v", index, err)
	}
	if cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/kubesim/" + index); len(cgroups) > 0 {
		t.Errorf("cgroups after Sweep: %v", cgroups)
	}
	for _, d := range []string{"/run/kubesim/" + index, "/var/lib/kubesim/" + index} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s after Sweep: %v", d, err)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), "/kubesim/"+index+"/") || strings.Contains(string(mounts), "kubesim-"+index+"-") {
		t.Errorf("mounts after Sweep:\n%s", mounts)
	}
}

// processes lists the machine's processes whose command line is cmd (or
// contains it, for cmd with a space).
func processes(cmd string) []string {
	return scan(func(line string) bool {
		return line == cmd || strings.Contains(line, " "+cmd) || strings.HasPrefix(line, cmd+" ")
	})
}

// processesPrefix lists the processes whose command line starts with p.
func processesPrefix(p string) []string {
	return scan(func(line string) bool { return strings.HasPrefix(line, p) })
}

func scan(match func(string) bool) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		line := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		if match(line) {
			found = append(found, e.Name()+": "+line)
		}
	}
	return found
}

func filter(lines []string, sub string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// TestStartCancelledWhileRealNodesStart cancels sim.Start once a real
// node's directory is written, while realnode.Start runs (the real nodes
// start beside the simulated ones and the components): Start returns the
// cancellation, and the node's processes, network and directories are gone
// when it has returned, without a Sweep.
func TestStartCancelledWhileRealNodesStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("real nodes need root")
	}
	if err := realnode.Preflight(realnode.DefaultImagesDir()); err != nil {
		t.Fatalf("%v (make realnode-deps images)", err)
	}
	before := map[string]bool{}
	for _, d := range runDirs() {
		before[d] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	startCtx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	// The new cluster's run directory, once its node's is written.
	found := make(chan string, 1)
	go func() {
		_ = wait.PollUntilContextCancel(startCtx, 20*time.Millisecond, true, func(context.Context) (bool, error) {
			for _, d := range runDirs() {
				if before[d] {
					continue
				}
				if _, err := os.Stat(filepath.Join(d, "real-0")); err == nil {
					found <- d
					cancelStart()
					return true, nil
				}
			}
			return false, nil
		})
	}()
	c, err := sim.Start(startCtx, sim.Config{APIServer: apiserver.Config{AnyPort: true}, RealNodes: 1})
	if err == nil {
		c.Stop()
		t.Fatal("Start returned a cluster after its context was cancelled (the node's directory was not seen)")
	}
	var ours string
	select {
	case ours = <-found:
	default:
		t.Fatalf("Start failed before the real node's directory was written: %v", err)
	}
	t.Logf("Start: %v", err)
	index := filepath.Base(ours)
	if got := filter(append(processes(realnode.ExecCommand), processesPrefix("containerd --config")...), ours+"/"); len(got) != 0 {
		t.Errorf("node processes after Start returned: %v", got)
	}
	if entries, _ := filepath.Glob("/run/netns/kubesim-" + index + "-*"); len(entries) > 0 {
		t.Errorf("network namespaces after Start returned: %v", entries)
	}
	if _, err := os.Stat("/sys/class/net/kubesim" + index); !os.IsNotExist(err) {
		t.Errorf("link kubesim%s after Start returned: %v", index, err)
	}
	for _, d := range []string{ours, "/var/lib/kubesim/" + index} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s after Start returned: %v", d, err)
		}
	}
}

// runDirs lists the run directories of the machine's real-node clusters.
func runDirs() []string {
	dirs, _ := filepath.Glob("/run/kubesim/[0-9]*")
	return dirs
}
