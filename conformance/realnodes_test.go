package conformance_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/conformance/framework"
	"github.com/kubesim/kubesim/kubeletsim"
	"github.com/kubesim/kubesim/realnode"
)

// Real nodes: the genuine kubelet and kube-proxy over containerd, in
// network namespaces with no route off the machine, beside 1,000 simulated
// nodes. Against kubesim the cluster is `kubesim up --real-nodes 2 --nodes
// 1000`; against the reference (KUBESIM_CONTROL_PLANE=1, genuine control
// plane) the same nodes join it with `kubesim node run --real` and `kubesim
// node run`. Everything a spec checks from a pod runs in that pod (kubectl
// exec): the test process never sends traffic to a ClusterIP itself.
var _ = Describe("control plane: real nodes", Ordered, Label("realnodes"), func() {
	const simulated = 1000
	var (
		cp    *framework.Target
		cs    kubernetes.Interface
		ns    string
		real  = map[string]string{realnode.NodeTypeLabel: "real"}
		nodes []corev1.Node
	)

	BeforeAll(func(ctx SpecContext) {
		if os.Geteuid() != 0 {
			Skip("real nodes need root (network namespaces, mounts, cgroups)")
		}
		switch {
		case target.IsKubesim():
			var err error
			cp, err = framework.StartKubesim(ctx, "--real-nodes", "2", "--nodes", strconv.Itoa(simulated))
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { Expect(cp.StopWith(os.Interrupt, time.Minute)).To(Succeed(), cp.Logs()) })
		case os.Getenv("KUBESIM_CONTROL_PLANE") == "1":
			cp = target
			caDir := referenceCADir(cp.Kubeconfig)
			// hack/control-plane.sh's --cluster-cidr.
			stopReal, realLogs, err := framework.StartRealNodes(ctx, cp.Kubeconfig, caDir, "--nodes", "2", "--cluster-cidr", "10.128.0.0/10")
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { Expect(stopReal()).To(Succeed(), realLogs.String()) })
		default:
			Skip("the reference runs no controller manager or scheduler here (KUBESIM_CONTROL_PLANE=1 with hack/control-plane.sh runs these specs)")
		}
		cs = cp.Clientset()
		Eventually(func(g Gomega) {
			list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: realnode.NodeTypeLabel + "=real"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list.Items).To(HaveLen(2))
			for _, n := range list.Items {
				g.Expect(n.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionTrue))))
				g.Expect(n.Spec.PodCIDRs).NotTo(BeEmpty())
				g.Expect(n.Spec.Taints).To(BeEmpty())
			}
			nodes = list.Items
		}).WithTimeout(2 * time.Minute).Should(Succeed())
		if !target.IsKubesim() {
			// The simulated nodes join once the real ones have their
			// podCIDRs: the reference's node IPAM has 256 of them.
			stopSim, simLogs, err := framework.StartSimulatedNodes(ctx, cp.Kubeconfig, append(framework.CAArgs(referenceCADir(cp.Kubeconfig)), "--nodes", strconv.Itoa(simulated))...)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func(ctx SpecContext) {
				Expect(stopSim()).To(Succeed(), simLogs.String())
				_ = cp.Clientset().CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: kubeletsim.LabelNodeType + "=simulated"})
			})
		}
		nsObj, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "real-nodes-"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ns = nsObj.Name
		DeferCleanup(func(ctx SpecContext) { _ = cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) })
		Eventually(func() error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		}).WithTimeout(30 * time.Second).Should(Succeed())
	}, NodeTimeout(5*time.Minute))

	// netexec is agnhost's HTTP server on a given real node.
	netexec := func(name, node string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{
				NodeSelector: map[string]string{corev1.LabelHostname: node},
				Containers: []corev1.Container{{
					Name: "netexec", Image: realnode.AgnhostImage, ImagePullPolicy: corev1.PullIfNotPresent,
					Args:           []string{"netexec", "--http-port=8080"},
					Ports:          []corev1.ContainerPort{{ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
				}},
			},
		}
	}
	busybox := func(name string, command ...string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{
				NodeSelector: real,
				Containers:   []corev1.Container{{Name: "c", Image: realnode.BusyboxImage, ImagePullPolicy: corev1.PullIfNotPresent, Command: command}},
			},
		}
	}
	create := func(ctx SpecContext, pod *corev1.Pod) {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	}
	waitReady := func(ctx SpecContext, name string) *corev1.Pod {
		var pod *corev1.Pod
		Eventually(func(g Gomega) {
			var err error
			pod, err = cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pod.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.PodReady), HaveField("Status", corev1.ConditionTrue))), "pod %s: %+v", name, pod.Status)
		}).WithTimeout(2 * time.Minute).Should(Succeed())
		return pod
	}
	// inPod runs a command in a pod's first container and returns its stdout.
	inPod := func(ctx SpecContext, pod string, command ...string) (string, error) {
		r := cp.Kubectl(ctx, "", append([]string{"exec", "-n", ns, pod, "--"}, command...)...)
		if r.Err != nil {
			return r.Stdout, fmt.Errorf("%v: %s", r.Err, r.Stderr)
		}
		return r.Stdout, nil
	}
	// get fetches url from inside pod with busybox's wget.
	get := func(ctx SpecContext, pod, url string) (string, error) {
		return inPod(ctx, pod, "wget", "-q", "-O", "-", url)
	}

	Context("networking, with agnhost netexec on two real nodes", Ordered, func() {
		var web0, web1 *corev1.Pod

		BeforeAll(func(ctx SpecContext) {
			create(ctx, netexec("web-0", nodes[0].Name))
			create(ctx, netexec("web-1", nodes[1].Name))
			web0, web1 = waitReady(ctx, "web-0"), waitReady(ctx, "web-1")
		}, NodeTimeout(3*time.Minute))

		It("runs the containers in containerd, on the nodes they were bound to", func() {
			for i, pod := range []*corev1.Pod{web0, web1} {
				Expect(pod.Spec.NodeName).To(Equal(nodes[i].Name))
				Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
				Expect(pod.Status.ContainerStatuses[0].ContainerID).To(MatchRegexp(`^containerd://[0-9a-f]{64}$`))
				Expect(pod.Status.PodIP).NotTo(BeEmpty())
				_, podCIDR, err := net.ParseCIDR(nodes[i].Spec.PodCIDR)
				Expect(err).NotTo(HaveOccurred())
				Expect(podCIDR.Contains(net.ParseIP(pod.Status.PodIP))).To(BeTrue(), "pod IP %s in node %s's podCIDR %s", pod.Status.PodIP, nodes[i].Name, podCIDR)
			}
		})

		It("carries pod-to-pod HTTP across nodes", func(ctx SpecContext) {
			Expect(get(ctx, "web-0", "http://"+net.JoinHostPort(web1.Status.PodIP, "8080")+"/hostname")).To(Equal("web-1"))
			Expect(get(ctx, "web-1", "http://"+net.JoinHostPort(web0.Status.PodIP, "8080")+"/hostname")).To(Equal("web-0"))
		})

		It("reaches both backends of a ClusterIP Service through kube-proxy, and its NodePort on every node", func(ctx SpecContext) {
			svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "web"},
				Spec: corev1.ServiceSpec{
					Type:     corev1.ServiceTypeNodePort,
					Selector: map[string]string{"app": "web"},
					Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
				},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			// kube-proxy programs the rules once it has seen the Service
			// and its EndpointSlice: until then the ClusterIP is refused.
			seen := map[string]bool{}
			Eventually(func(g Gomega) {
				out, err := get(ctx, "web-0", "http://"+net.JoinHostPort(svc.Spec.ClusterIP, "80")+"/hostname")
				g.Expect(err).NotTo(HaveOccurred())
				seen[out] = true
				g.Expect(seen).To(HaveLen(2), "backends answering so far: %v", seen)
			}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
			Expect(seen).To(Equal(map[string]bool{"web-0": true, "web-1": true}))
			nodePort := strconv.Itoa(int(svc.Spec.Ports[0].NodePort))
			for _, n := range nodes {
				ip := internalIP(n)
				Eventually(func(g Gomega) {
					out, err := get(ctx, "web-1", "http://"+net.JoinHostPort(ip, nodePort)+"/hostname")
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(out).To(BeElementOf("web-0", "web-1"))
				}).WithTimeout(time.Minute).Should(Succeed(), "NodePort %s on %s", nodePort, n.Name)
			}
		})

		It("routes a LoadBalancer Service's address to its backends through kube-proxy", func(ctx SpecContext) {
			if !target.IsKubesim() {
				Skip("the reference control plane runs no load balancer controller")
			}
			_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "web-lb"},
				Spec: corev1.ServiceSpec{
					Type:     corev1.ServiceTypeLoadBalancer,
					Selector: map[string]string{"app": "web"},
					Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
				},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			var ip string
			Eventually(func(g Gomega) {
				svc, err := cs.CoreV1().Services(ns).Get(ctx, "web-lb", metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(svc.Status.LoadBalancer.Ingress).To(HaveLen(1))
				ip = svc.Status.LoadBalancer.Ingress[0].IP
			}).WithTimeout(time.Minute).Should(Succeed())
			seen := map[string]bool{}
			Eventually(func(g Gomega) {
				out, err := get(ctx, "web-1", "http://"+net.JoinHostPort(ip, "80")+"/hostname")
				g.Expect(err).NotTo(HaveOccurred())
				seen[out] = true
				g.Expect(seen).To(HaveLen(2), "backends answering so far: %v", seen)
			}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
			Expect(seen).To(Equal(map[string]bool{"web-0": true, "web-1": true}))
		})

		It("proxies to a pod, a Service and a kubelet through the API server (pods, services and nodes/proxy)", func(ctx SpecContext) {
			rc := cs.CoreV1().RESTClient()
			raw := func(g Gomega, path string, params map[string]string) string {
				req := rc.Get().AbsPath(path)
				for k, v := range params {
					req = req.Param(k, v)
				}
				b, err := req.DoRaw(ctx)
				g.Expect(err).NotTo(HaveOccurred(), "%s: %s", path, b)
				return string(b)
			}
			podPath := "/api/v1/namespaces/" + ns + "/pods/"
			Expect(raw(Default, podPath+"web-0:8080/proxy/hostname", nil)).To(Equal("web-0"))
			Expect(raw(Default, podPath+"http:web-1:8080/proxy/echo", map[string]string{"msg": "through-the-proxy"})).To(Equal("through-the-proxy"))
			// A Service by port number: a random ready backend.
			seen := map[string]bool{}
			Eventually(func(g Gomega) {
				seen[raw(g, "/api/v1/namespaces/"+ns+"/services/web:80/proxy/hostname", nil)] = true
				g.Expect(seen).To(HaveLen(2))
			}).WithTimeout(time.Minute).WithPolling(50 * time.Millisecond).Should(Succeed())
			Expect(seen).To(Equal(map[string]bool{"web-0": true, "web-1": true}))
			// A kubelet, with the API server's kubelet client credentials.
			Expect(raw(Default, "/api/v1/nodes/"+nodes[0].Name+"/proxy/healthz", nil)).To(Equal("ok"))
			Expect(raw(Default, "/api/v1/nodes/"+nodes[0].Name+"/proxy/pods", nil)).To(ContainSubstring(`"name":"web-0"`))
			// What is not there is the reference's error.
			_, err := rc.Get().AbsPath("/api/v1/namespaces/" + ns + "/services/web:81/proxy/").DoRaw(ctx)
			Expect(apierrors.IsServiceUnavailable(err)).To(BeTrue(), "no such port: %v", err)
			_, err = rc.Get().AbsPath(podPath + "no-such-pod/proxy/").DoRaw(ctx)
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no such pod: %v", err)
		})

		It("resolves Services, headless Services, SRV, PTR and ExternalName records through the cluster DNS", func(ctx SpecContext) {
			svc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			_, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "web-headless"},
				Spec: corev1.ServiceSpec{
					ClusterIP: corev1.ClusterIPNone,
					Selector:  map[string]string{"app": "web"},
					Ports:     []corev1.ServicePort{{Name: "http", Port: 8080}},
				},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			_, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"},
				Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "web." + ns + ".svc.cluster.local"},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			dnsSvc, err := cs.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(dnsSvc.Spec.ClusterIP).To(Equal("10.96.0.10"))
			lookup := func(g Gomega, args ...string) string {
				out, err := inPod(ctx, "web-0", append([]string{"nslookup"}, args...)...)
				g.Expect(err).NotTo(HaveOccurred(), out)
				return out
			}
			// The Services were just created: CoreDNS answers once its
			// informers have them.
			Eventually(func(g Gomega) {
				g.Expect(lookup(g, "web."+ns+".svc.cluster.local")).To(ContainSubstring("Address: " + svc.Spec.ClusterIP + "\n"))
				out := lookup(g, "web-headless."+ns+".svc.cluster.local")
				g.Expect(out).To(ContainSubstring("Address: " + web0.Status.PodIP + "\n"))
				g.Expect(out).To(ContainSubstring("Address: " + web1.Status.PodIP + "\n"))
				g.Expect(lookup(g, "-type=SRV", "_http._tcp.web-headless."+ns+".svc.cluster.local")).To(ContainSubstring(" 8080 "))
				g.Expect(lookup(g, "-type=CNAME", "elsewhere."+ns+".svc.cluster.local")).To(ContainSubstring("canonical name = web." + ns + ".svc.cluster.local"))
			}).WithTimeout(time.Minute).Should(Succeed())
			Expect(inPod(ctx, "web-0", "nslookup", "10.96.0.10")).To(ContainSubstring("name = kube-dns.kube-system.svc.cluster.local"))
			// The pod's resolv.conf is the kubelet's clusterDNS.
			Expect(inPod(ctx, "web-0", "cat", "/etc/resolv.conf")).To(And(
				ContainSubstring("nameserver 10.96.0.10\n"),
				ContainSubstring("search "+ns+".svc.cluster.local svc.cluster.local cluster.local"),
			))
		})

		It("lets a pod reach the API server with its service account through the kubernetes Service", func(ctx SpecContext) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "in-cluster"},
				Spec: corev1.PodSpec{
					NodeSelector: real,
					Containers: []corev1.Container{{
						Name: "c", Image: realnode.AgnhostImage, ImagePullPolicy: corev1.PullIfNotPresent,
						Args: []string{"inclusterclient", "--poll-interval", "1"},
					}},
				},
			}
			create(ctx, pod)
			// agnhost's inclusterclient uses rest.InClusterConfig: the
			// KUBERNETES_SERVICE_HOST ClusterIP, the mounted token and CA.
			Eventually(func(g Gomega) {
				r := cp.Kubectl(ctx, "", "logs", "-n", ns, "in-cluster")
				g.Expect(r.Err).NotTo(HaveOccurred(), r.Stderr)
				g.Expect(strings.Count(r.Stdout+r.Stderr, "calling /healthz")).To(BeNumerically(">=", 3))
				g.Expect(r.Stdout + r.Stderr).NotTo(ContainSubstring("status=failed"))
			}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
		})

		It("streams logs, execs, port-forwards and copies files with kubectl", func(ctx SpecContext) {
			By("kubectl logs -f")
			logs := &framework.SafeBuffer{}
			follow, err := cp.KubectlStream(ctx, logs, "logs", "-f", "-n", ns, "web-0")
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { _ = follow.Process.Kill(); _ = follow.Wait() })
			Eventually(logs.String).WithTimeout(30 * time.Second).Should(ContainSubstring("Started HTTP server on port 8080"))
			// A request logged by netexec after logs -f started shows up.
			_, err = get(ctx, "web-1", "http://"+net.JoinHostPort(web0.Status.PodIP, "8080")+"/echo?msg=followed-line")
			Expect(err).NotTo(HaveOccurred())
			Eventually(logs.String).WithTimeout(30 * time.Second).Should(ContainSubstring("followed-line"))

			By("kubectl exec -i with stdin")
			r := cp.Kubectl(ctx, "from-stdin\n", "exec", "-i", "-n", ns, "web-0", "--", "sh", "-c", "read l; echo got $l; hostname")
			Expect(r.Err).NotTo(HaveOccurred(), r.Stderr)
			Expect(r.Stdout).To(Equal("got from-stdin\nweb-0\n"))
			r = cp.Kubectl(ctx, "", "exec", "-n", ns, "web-0", "--", "sh", "-c", "exit 7")
			Expect(r.ExitCode()).To(Equal(7))

			By("kubectl exec -it, in a terminal")
			// script(1) (util-linux) gives kubectl a pseudo-terminal, as a
			// user's shell has; the container's shell then has one too.
			line := fmt.Sprintf("%s --kubeconfig %s exec -it -n %s web-0 -- sh -c 'tty; exit 3'", framework.KubectlBinary(), cp.Kubeconfig, ns)
			tty := exec.CommandContext(ctx, "script", "-qec", line, "/dev/null")
			ttyOut, err := tty.CombinedOutput()
			Expect(tty.ProcessState.ExitCode()).To(Equal(3), "%s: %v", ttyOut, err)
			// (script may echo the end of its own empty stdin before it.)
			Expect(string(ttyOut)).To(MatchRegexp(`/dev/pts/\d+\r?\n`))
			r = cp.Kubectl(ctx, "", "exec", "-n", ns, "web-0", "--", "sh", "-c", "tty || true")
			Expect(r.Stdout).To(Equal("not a tty\n"))

			By("kubectl port-forward")
			pf := &framework.SafeBuffer{}
			fwd, err := cp.KubectlStream(ctx, pf, "port-forward", "-n", ns, "pod/web-1", ":8080")
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { _ = fwd.Process.Kill(); _ = fwd.Wait() })
			var local string
			Eventually(func(g Gomega) {
				m := portForwardLine.FindStringSubmatch(pf.String())
				g.Expect(m).To(HaveLen(2), pf.String())
				local = m[1]
			}).WithTimeout(30 * time.Second).Should(Succeed())
			out, err := exec.CommandContext(ctx, "wget", "-q", "-O", "-", "http://127.0.0.1:"+local+"/hostname").Output()
			if err != nil {
				// Debian's wget is not on every machine; busybox's is.
				out, err = exec.CommandContext(ctx, "busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:"+local+"/hostname").Output()
			}
			Expect(err).NotTo(HaveOccurred())
			Expect(string(out)).To(Equal("web-1"))

			By("kubectl cp, both ways")
			dir := GinkgoT().TempDir()
			src := filepath.Join(dir, "in.txt")
			Expect(os.WriteFile(src, []byte("copied into a real container\n"), 0o644)).To(Succeed())
			r = cp.Kubectl(ctx, "", "cp", src, ns+"/web-0:/tmp/in.txt")
			Expect(r.Err).NotTo(HaveOccurred(), r.Stderr)
			Expect(inPod(ctx, "web-0", "cat", "/tmp/in.txt")).To(Equal("copied into a real container\n"))
			r = cp.Kubectl(ctx, "", "cp", ns+"/web-0:/tmp/in.txt", filepath.Join(dir, "out.txt"))
			Expect(r.Err).NotTo(HaveOccurred(), r.Stderr)
			Expect(os.ReadFile(filepath.Join(dir, "out.txt"))).To(Equal([]byte("copied into a real container\n")))
		})
	})

	It("gives each kubelet its node's identity, confined by the Node authorizer and NodeRestriction", func(ctx SpecContext) {
		kubeconfigs, err := filepath.Glob("/run/kubesim/*/" + nodes[0].Name + "/kubelet.kubeconfig")
		Expect(err).NotTo(HaveOccurred())
		Expect(kubeconfigs).To(HaveLen(1), "the kubelet's kubeconfig of %s", nodes[0].Name)
		asNode := func(args ...string) framework.KubectlResult {
			return cp.Kubectl(ctx, "", append([]string{"--kubeconfig", kubeconfigs[0]}, args...)...)
		}
		r := asNode("auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}")
		Expect(r.Err).NotTo(HaveOccurred(), r.Stderr)
		Expect(r.Stdout).To(Equal("system:node:" + nodes[0].Name + ` ["system:nodes","system:authenticated"]`))
		// Its own Node, yes; Secrets across the cluster, no (Node authorizer).
		r = asNode("get", "node", nodes[0].Name, "-o", "name")
		Expect(r.Err).NotTo(HaveOccurred(), r.Stderr)
		r = asNode("get", "secrets", "-A")
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring(`User "system:node:` + nodes[0].Name + `" cannot list resource "secrets" in API group "" at the cluster scope`))
		Expect(r.Stderr).To(ContainSubstring("can only read namespaced object of this type"))
		// Another Node: not even readable (Node authorizer), and a patch
		// of its labels, which RBAC's system:node role allows, is refused
		// by NodeRestriction.
		r = asNode("get", "node", nodes[1].Name)
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring("node '" + nodes[0].Name + "' cannot read '" + nodes[1].Name + "', only its own Node object"))
		nodeConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfigs[0])
		Expect(err).NotTo(HaveOccurred())
		_, err = kubernetes.NewForConfigOrDie(nodeConfig).CoreV1().Nodes().Patch(ctx, nodes[1].Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"stolen":"yes"}}}`), metav1.PatchOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("node \"" + nodes[0].Name + "\" is not allowed to modify node \"" + nodes[1].Name + "\""))
	})

	It("attaches to a running container's stdin and output", func(ctx SpecContext) {
		pod := busybox("attached", "sh", "-c", "while read l; do echo echo:$l; done; echo closed")
		pod.Spec.Containers[0].Stdin = true
		pod.Spec.Containers[0].StdinOnce = true
		create(ctx, pod)
		waitReady(ctx, "attached")
		r := cp.Kubectl(ctx, "hello\nworld\n", "attach", "-i", "-n", ns, "attached", "-c", "c")
		Expect(r.Err).NotTo(HaveOccurred(), r.Stderr)
		Expect(r.Stdout).To(ContainSubstring("echo:hello\necho:world\n"))
		// StdinOnce: the container's stdin closed with the attach.
		Eventually(func(g Gomega) {
			out := cp.Kubectl(ctx, "", "logs", "-n", ns, "attached")
			g.Expect(out.Stdout).To(HaveSuffix("closed\n"))
		}).WithTimeout(time.Minute).Should(Succeed())
	}, NodeTimeout(3*time.Minute))

	It("backs a crashing container off with a rising restartCount", func(ctx SpecContext) {
		create(ctx, busybox("crash", "sh", "-c", "echo crashing; exit 3"))
		Eventually(func(g Gomega) {
			pod, err := cs.CoreV1().Pods(ns).Get(ctx, "crash", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
			st := pod.Status.ContainerStatuses[0]
			g.Expect(st.RestartCount).To(BeNumerically(">=", 2))
			g.Expect(st.State.Waiting).NotTo(BeNil(), "%+v", st.State)
			g.Expect(st.State.Waiting.Reason).To(Equal("CrashLoopBackOff"))
			g.Expect(st.LastTerminationState.Terminated).NotTo(BeNil())
			g.Expect(st.LastTerminationState.Terminated.ExitCode).To(Equal(int32(3)))
		}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
		r := cp.Kubectl(ctx, "", "logs", "-n", ns, "crash", "--previous")
		Expect(r.Err).NotTo(HaveOccurred(), r.Stderr)
		Expect(r.Stdout).To(Equal("crashing\n"))
	}, NodeTimeout(3*time.Minute))

	It("keeps a pod whose readiness probe fails running and unready", func(ctx SpecContext) {
		pod := busybox("unready", "sleep", "3600")
		pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-e", "/tmp/ready"}}},
			PeriodSeconds: 1,
		}
		create(ctx, pod)
		Eventually(func(g Gomega) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "unready", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.ContainerStatuses).To(HaveLen(1))
			g.Expect(p.Status.ContainerStatuses[0].State.Running).NotTo(BeNil())
		}).WithTimeout(2 * time.Minute).Should(Succeed())
		// Several probe periods: still unready, never restarted.
		Consistently(func(g Gomega) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "unready", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.ContainerStatuses[0].Ready).To(BeFalse())
			g.Expect(p.Status.ContainerStatuses[0].RestartCount).To(BeZero())
			g.Expect(p.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.PodReady), HaveField("Status", corev1.ConditionFalse))))
		}).WithTimeout(5 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
		// The probe's own verdict, not a stuck status: once it passes, ready.
		_, err := inPod(ctx, "unready", "touch", "/tmp/ready")
		Expect(err).NotTo(HaveOccurred())
		waitReady(ctx, "unready")
	}, NodeTimeout(3*time.Minute))

	It("fails an image that is not there with ErrImagePull and backs off, without hanging", func(ctx SpecContext) {
		pod := busybox("absent-image", "sleep", "3600")
		pod.Spec.Containers[0].Image = "registry.k8s.io/e2e-test-images/not-built-here:1.0"
		create(ctx, pod)
		reasons := map[string]bool{}
		Eventually(func(g Gomega) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "absent-image", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.ContainerStatuses).To(HaveLen(1))
			w := p.Status.ContainerStatuses[0].State.Waiting
			g.Expect(w).NotTo(BeNil())
			reasons[w.Reason] = true
			if w.Reason == "ErrImagePull" {
				g.Expect(w.Message).To(ContainSubstring(`failed to pull and unpack image "registry.k8s.io/e2e-test-images/not-built-here:1.0"`))
			}
			g.Expect(reasons).To(HaveKey("ImagePullBackOff"))
		}).WithTimeout(2 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		events, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=absent-image,reason=Failed"})
		Expect(err).NotTo(HaveOccurred())
		Expect(events.Items).NotTo(BeEmpty())
		Expect(events.Items[0].Source.Component).To(Equal("kubelet"))
	}, NodeTimeout(3*time.Minute))

	It("puts a memory limit in the container's cgroup", func(ctx SpecContext) {
		pod := busybox("limited", "sleep", "3600")
		pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
		create(ctx, pod)
		waitReady(ctx, "limited")
		Expect(inPod(ctx, "limited", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")).To(Equal("67108864\n"))
	}, NodeTimeout(3*time.Minute))

	It("stops a deleted pod's container", func(ctx SpecContext) {
		// A command line no other process on the machine has.
		marker := strconv.Itoa(3_000_000 + int(time.Now().UnixNano()%1_000_000))
		pod := busybox("doomed", "sleep", marker)
		create(ctx, pod)
		waitReady(ctx, "doomed")
		Expect(processesWith("sleep " + marker)).To(HaveLen(1))
		Expect(cs.CoreV1().Pods(ns).Delete(ctx, "doomed", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](1)})).To(Succeed())
		Eventually(func() []string { return processesWith("sleep " + marker) }).WithTimeout(time.Minute).Should(BeEmpty())
		Eventually(func(g Gomega) {
			_, err := cs.CoreV1().Pods(ns).Get(ctx, "doomed", metav1.GetOptions{})
			g.Expect(err).To(HaveOccurred())
		}).WithTimeout(time.Minute).Should(Succeed())
	}, NodeTimeout(3*time.Minute))

	It("keeps a claim's data in a real directory of the default StorageClass, across pods, and removes it with the claim", func(ctx SpecContext) {
		if !target.IsKubesim() {
			Skip("the reference control plane runs no provisioner")
		}
		_, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		withClaim := func(name string, command ...string) *corev1.Pod {
			pod := busybox(name, command...)
			pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
			pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
			return pod
		}
		create(ctx, withClaim("writer", "sh", "-c", "echo kept > /data/f && sleep 3600"))
		waitReady(ctx, "writer")
		claim, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(claim.Status.Phase).To(Equal(corev1.ClaimBound))
		pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		dir := pv.Spec.HostPath.Path
		// The data is on this machine's disk.
		Eventually(func() (string, error) {
			b, err := os.ReadFile(filepath.Join(dir, "f"))
			return string(b), err
		}).WithTimeout(30 * time.Second).Should(Equal("kept\n"))
		Expect(cs.CoreV1().Pods(ns).Delete(ctx, "writer", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](1)})).To(Succeed())
		// A later pod of the claim goes to the volume's node and reads it.
		create(ctx, withClaim("reader", "sh", "-c", "cat /data/f && sleep 3600"))
		waitReady(ctx, "reader")
		Eventually(func() string {
			return cp.Kubectl(ctx, "", "logs", "-n", ns, "reader").Stdout
		}).WithTimeout(30 * time.Second).Should(Equal("kept\n"))
		Expect(cs.CoreV1().Pods(ns).Delete(ctx, "reader", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](1)})).To(Succeed())
		Expect(cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{})).To(Succeed())
		// reclaimPolicy Delete: the volume and its directory go.
		Eventually(func() bool {
			_, err := os.Stat(dir)
			_, getErr := cs.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
			return os.IsNotExist(err) && apierrors.IsNotFound(getErr)
		}).WithTimeout(2 * time.Minute).Should(BeTrue())
	}, NodeTimeout(4*time.Minute))

	It("restarts a node's containerd and kubelet when they die, and the node runs pods again", func(ctx SpecContext) {
		node := nodes[1].Name
		for _, component := range []struct{ name, match string }{
			{"containerd", "containerd --config /run/kubesim/"},
			{"kubelet", "realnode-exec kubelet "},
		} {
			By("killing the node's " + component.name)
			mine := func() []string {
				var pids []string
				for _, p := range processesContaining(component.match) {
					if strings.Contains(p.cmdline, "/"+node+"/") || strings.Contains(p.cmdline, "--hostname-override="+node+" ") {
						pids = append(pids, p.pid)
					}
				}
				return pids
			}
			before := mine()
			Expect(before).To(HaveLen(1), "the %s of %s", component.name, node)
			pid, err := strconv.Atoi(before[0])
			Expect(err).NotTo(HaveOccurred())
			Expect(syscall.Kill(pid, syscall.SIGKILL)).To(Succeed())
			Eventually(func(g Gomega) {
				now := mine()
				g.Expect(now).To(HaveLen(1))
				g.Expect(now[0]).NotTo(Equal(before[0]))
			}).WithTimeout(time.Minute).Should(Succeed(), "%s restarted", component.name)
		}
		// The node is Ready again (the genuine kubelet reports it) and runs
		// a new pod.
		Eventually(func(g Gomega) {
			n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(n.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionTrue))))
		}).WithTimeout(2 * time.Minute).Should(Succeed())
		pod := busybox("after-restart", "sleep", "3600")
		pod.Spec.NodeSelector = map[string]string{corev1.LabelHostname: node}
		create(ctx, pod)
		waitReady(ctx, "after-restart")
	}, NodeTimeout(5*time.Minute))

	It("runs a DaemonSet on every real and simulated node, and a Deployment on the real nodes only", func(ctx SpecContext) {
		ds := &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "everywhere"},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "everywhere"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "everywhere"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: "c", Image: realnode.BusyboxImage, ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sleep", "3600"},
					}}},
				},
			},
		}
		_, err := cs.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "on-real"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](4),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "on-real"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "on-real"}},
					Spec: corev1.PodSpec{NodeSelector: real, Containers: []corev1.Container{{
						Name: "c", Image: realnode.BusyboxImage, ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sleep", "3600"},
					}}},
				},
			},
		}
		_, err = cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "everywhere", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Status.DesiredNumberScheduled).To(Equal(int32(simulated + 2)))
			g.Expect(d.Status.NumberReady).To(Equal(int32(simulated+2)), "%+v", d.Status)
		}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
		realNames := map[string]bool{nodes[0].Name: true, nodes[1].Name: true}
		Eventually(func(g Gomega) {
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "on-real", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Status.ReadyReplicas).To(Equal(int32(4)))
		}).WithTimeout(2 * time.Minute).Should(Succeed())
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=on-real"})
		Expect(err).NotTo(HaveOccurred())
		Expect(pods.Items).To(HaveLen(4))
		for _, p := range pods.Items {
			Expect(realNames).To(HaveKey(p.Spec.NodeName))
			Expect(p.Status.ContainerStatuses[0].ContainerID).To(HavePrefix("containerd://"))
		}
		// The DaemonSet's pods on the real nodes run in containerd too.
		dsPods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=everywhere"})
		Expect(err).NotTo(HaveOccurred())
		onReal := 0
		for _, p := range dsPods.Items {
			if realNames[p.Spec.NodeName] {
				onReal++
				Expect(p.Status.ContainerStatuses[0].ContainerID).To(HavePrefix("containerd://"))
			}
		}
		Expect(onReal).To(Equal(2))
	}, NodeTimeout(6*time.Minute))
})

var portForwardLine = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)

func internalIP(n corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

type process struct{ pid, cmdline string }

// processesContaining lists the machine's processes whose command line
// contains s.
func processesContaining(s string) []process {
	entries, _ := os.ReadDir("/proc")
	var found []process
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		line := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(line, s) {
			found = append(found, process{e.Name(), line})
		}
	}
	return found
}

// processesWith lists the machine's processes whose command line is cmd.
func processesWith(cmd string) []string {
	var found []string
	for _, p := range processesContaining(cmd) {
		if strings.TrimRight(p.cmdline, " ") == cmd {
			found = append(found, p.pid)
		}
	}
	return found
}

// referenceCADir is where the reference peer keeps its CA: beside the
// certificate-authority file its kubeconfig names.
func referenceCADir(kubeconfig string) string {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	for _, c := range cfg.Clusters {
		if c.CertificateAuthority != "" {
			return filepath.Dir(c.CertificateAuthority)
		}
	}
	Fail("the reference kubeconfig names no certificate-authority file")
	return ""
}
