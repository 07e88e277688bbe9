package realnode

import (
	"context"
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/klog/v2"
	kubeproxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// ExecCommand is the hidden subcommand of the kubesim binary that runs a
// node's processes: kubesim re-executes itself with it (as k3s does), so
// that each kubelet and kube-proxy has a process, a network namespace and
// process-wide feature gates and metrics of its own.
const ExecCommand = "realnode-exec"

const execCommand = ExecCommand

// verbosityEnv passes kubesim's -v to the node's components.
const verbosityEnv = "KUBESIM_REALNODE_V"

// Exec runs what args name and returns the process's exit code:
//
//	supervise DIR    a node's supervisor (in its namespaces)
//	kubelet ARGS     the genuine kubelet, as cmd/kubelet
//	kube-proxy ARGS  the genuine kube-proxy, as cmd/kube-proxy
//	coredns FILE     CoreDNS with the Corefile FILE
func Exec(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "realnode-exec: supervise, kubelet or kube-proxy")
		return 2
	}
	switch args[0] {
	case "supervise":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "realnode-exec supervise DIR")
			return 2
		}
		ctx, cancel := signalContext()
		defer cancel()
		if err := supervise(ctx, args[1]); err != nil {
			klog.Background().Error(err, "Real node supervisor failed")
			klog.Flush()
			return 1
		}
		return 0
	case "kubelet":
		cmd := kubelet.NewKubeletCommand(context.Background())
		cmd.SetArgs(args[1:])
		return cli.Run(cmd)
	case "coredns":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "realnode-exec coredns COREFILE")
			return 2
		}
		ctx, cancel := signalContext()
		defer cancel()
		if err := runCoreDNS(ctx, args[1]); err != nil {
			klog.Background().Error(err, "CoreDNS failed")
			klog.Flush()
			return 1
		}
		return 0
	case "kube-proxy":
		cmd := kubeproxy.NewProxyCommand()
		cmd.SetArgs(args[1:])
		return cli.Run(cmd)
	}
	fmt.Fprintf(os.Stderr, "realnode-exec: unknown %q\n", args[0])
	return 2
}
