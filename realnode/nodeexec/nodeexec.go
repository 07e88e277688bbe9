// Package nodeexec is what runs in real nodes' processes (see package
// realnode): the genuine kubelet and kube-proxy of the pin, CoreDNS, and
// the node's supervisor. It imports all of them, so only binaries that
// start real nodes import it: cmd/kubesim, and tests (in TestMain).
package nodeexec

import (
	"context"
	"fmt"
	"os"

	// CoreDNS as a library: its DNS server type and the plugins of
	// realnode's Corefile, never coremain (whose flags and main are its own).
	"github.com/coredns/caddy"
	_ "github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"

	"k8s.io/component-base/cli"
	"k8s.io/klog/v2"
	kubeproxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"

	"github.com/kubesim/kubesim/realnode"
)

// Main runs the process as a real node's if its arguments say so
// (os.Args[1] is realnode.ExecCommand) and then exits; otherwise it
// returns. Call it first thing in main or TestMain.
func Main() {
	if len(os.Args) > 1 && os.Args[1] == realnode.ExecCommand {
		os.Exit(Exec(os.Args[2:]))
	}
}

// Exec runs what args name and returns the process's exit code:
//
//	supervise DIR    a node's supervisor (in its namespaces)
//	kubelet ARGS     the genuine kubelet, as cmd/kubelet
//	kube-proxy ARGS  the genuine kube-proxy, as cmd/kube-proxy
//	coredns FILE     CoreDNS with the Corefile FILE
func Exec(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, realnode.ExecCommand+": supervise, kubelet, kube-proxy or coredns")
		return 2
	}
	run := func(fn func(ctx context.Context) error) int {
		ctx, cancel := realnode.SignalContext()
		defer cancel()
		if err := fn(ctx); err != nil {
			klog.Background().Error(err, "Real node process failed", "process", args[0])
			klog.Flush()
			return 1
		}
		return 0
	}
	switch args[0] {
	case "supervise":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, realnode.ExecCommand+" supervise DIR")
			return 2
		}
		return run(func(ctx context.Context) error { return realnode.Supervise(ctx, args[1]) })
	case "coredns":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, realnode.ExecCommand+" coredns COREFILE")
			return 2
		}
		return run(func(ctx context.Context) error { return runCoreDNS(ctx, args[1]) })
	case "kubelet":
		cmd := kubelet.NewKubeletCommand(context.Background())
		cmd.SetArgs(args[1:])
		return cli.Run(cmd)
	case "kube-proxy":
		cmd := kubeproxy.NewProxyCommand()
		cmd.SetArgs(args[1:])
		return cli.Run(cmd)
	}
	fmt.Fprintf(os.Stderr, "%s: unknown %q\n", realnode.ExecCommand, args[0])
	return 2
}

// runCoreDNS serves the Corefile at path until ctx is done.
func runCoreDNS(ctx context.Context, path string) error {
	contents, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	caddy.Quiet = true
	instance, err := caddy.Start(caddy.CaddyfileInput{Contents: contents, Filepath: path, ServerTypeName: "dns"})
	if err != nil {
		return err
	}
	klog.FromContext(ctx).Info("CoreDNS serving", "corefile", path)
	<-ctx.Done()
	return instance.Stop()
}
