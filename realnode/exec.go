package realnode

import (
	"context"
	"os/signal"
	"syscall"
)

// ExecCommand is the hidden subcommand of the kubesim binary that runs a
// node's processes: kubesim re-executes itself with it (as k3s does), so
// that each kubelet and kube-proxy has a process, a network namespace and
// process-wide feature gates and metrics of its own. Package nodeexec
// implements it; a binary that starts real nodes (Config.Executable) calls
// nodeexec.Main first thing in main (or TestMain).
const ExecCommand = "realnode-exec"

// verbosityEnv passes kubesim's -v to the node's components.
const verbosityEnv = "KUBESIM_REALNODE_V"

// Supervise runs a node's supervisor (ExecCommand supervise DIR): it is
// this binary, started by Nodes in the node's network namespace and a new
// mount namespace, and runs containerd, the kubelet and kube-proxy until
// ctx is done.
func Supervise(ctx context.Context, dir string) error { return supervise(ctx, dir) }

// SignalContext is done on SIGTERM or SIGINT, as the nodes' processes are
// stopped.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}
