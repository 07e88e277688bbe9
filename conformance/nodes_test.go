package conformance_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/conformance/framework"
	"github.com/kubesim/kubesim/kubeletsim"
)

// Workloads on simulated nodes, run by the genuine controllers and
// scheduler. Against kubesim the cluster is `kubesim up --nodes 10`;
// against the reference (KUBESIM_CONTROL_PLANE=1, genuine control plane)
// the same simulated kubelets join it with `kubesim node run`.
var _ = Describe("control plane: simulated nodes", Ordered, func() {
	const nodeCount = 10
	var (
		cs   kubernetes.Interface
		cp   *framework.Target
		pool = map[string]string{kubeletsim.LabelNodePool: "sim"}
		ns   string
	)

	BeforeAll(func(ctx SpecContext) {
		switch {
		case target.IsKubesim():
			var err error
			// One pool named "sim", as `kubesim node run` names it below.
			cp, err = framework.StartKubesim(ctx, "--node-config", "../testdata/nodes/conformance.yaml")
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { Expect(cp.StopWith(os.Interrupt, time.Minute)).To(Succeed()) })
		case os.Getenv("KUBESIM_CONTROL_PLANE") == "1":
			cp = target
			stop, logs, err := framework.StartSimulatedNodes(ctx, cp.Kubeconfig, append(framework.CAArgs(referenceCADir(cp.Kubeconfig)), "--node-config", "../testdata/nodes/conformance.yaml")...)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func(ctx SpecContext) {
				Expect(stop()).To(Succeed(), logs.String())
				_ = cp.Clientset().CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: kubeletsim.LabelNodePool + "=sim"})
			})
		default:
			Skip("the reference runs no controller manager or scheduler here (KUBESIM_CONTROL_PLANE=1 with hack/control-plane.sh runs these specs)")
		}
		cs = cp.Clientset()
		Eventually(func(g Gomega) {
			nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: kubeletsim.LabelNodePool + "=sim"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(nodes.Items).To(HaveLen(nodeCount))
			for _, n := range nodes.Items {
				g.Expect(n.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionTrue))))
				// The node lifecycle controller lifts the not-ready taint
				// kube-apiserver puts on new nodes.
				g.Expect(n.Spec.Taints).To(BeEmpty())
			}
		}).WithTimeout(60 * time.Second).Should(Succeed())
		nsObj, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "sim-nodes-"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ns = nsObj.Name
		DeferCleanup(func(ctx SpecContext) { _ = cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) })
		Eventually(func() error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})

	podSpec := func(image string) corev1.PodSpec {
		return corev1.PodSpec{
			NodeSelector: pool,
			Containers: []corev1.Container{{Name: "app", Image: image,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}}}},
		}
	}

	It("runs a Deployment of 50 replicas on 10 simulated nodes to Available, and rolls it out", func(ctx SpecContext) {
		sel := map[string]string{"app": "web"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](50),
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: podSpec("nginx:1.27")},
			},
		}
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		available := func(g Gomega, image string) {
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
			g.Expect(d.Status.UpdatedReplicas).To(BeEquivalentTo(50))
			g.Expect(d.Status.AvailableReplicas).To(BeEquivalentTo(50))
			g.Expect(d.Status.Replicas).To(BeEquivalentTo(50))
			g.Expect(d.Status.Conditions).To(ContainElement(And(HaveField("Type", appsv1.DeploymentAvailable), HaveField("Status", corev1.ConditionTrue))))
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			g.Expect(err).NotTo(HaveOccurred())
			nodes := map[string]bool{}
			running := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Spec.Containers[0].Image == image {
					running++
					nodes[p.Spec.NodeName] = true
					g.Expect(p.Status.PodIP).NotTo(BeEmpty())
					g.Expect(p.Status.ContainerStatuses[0].Ready).To(BeTrue())
				}
			}
			g.Expect(running).To(Equal(50))
			g.Expect(nodes).To(HaveLen(nodeCount), "the scheduler spreads replicas over every node")
		}
		Eventually(func(g Gomega) { available(g, "nginx:1.27") }).WithTimeout(90 * time.Second).Should(Succeed())

		res := cp.Kubectl(ctx, "", "-n", ns, "set", "image", "deployment/web", "app=nginx:1.28")
		Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
		res = cp.Kubectl(ctx, "", "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s")
		Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
		Expect(res.Stdout).To(ContainSubstring(`deployment "web" successfully rolled out`))
		Eventually(func(g Gomega) { available(g, "nginx:1.28") }).WithTimeout(90 * time.Second).Should(Succeed())
	})

	It("evicts pods as their PodDisruptionBudget allows, with kube-apiserver's 429 while it does not", func(ctx SpecContext) {
		sel := map[string]string{"app": "evictable"}
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "evictable"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: podSpec("nginx:1.27")},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		minAvailable := intstr.FromInt32(2)
		_, err = cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "evictable"},
			Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvailable, Selector: &metav1.LabelSelector{MatchLabels: sel}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var victim string
		Eventually(func(g Gomega) {
			pdb, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "evictable", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
			g.Expect(pdb.Status.CurrentHealthy).To(BeEquivalentTo(2))
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=evictable"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods.Items).NotTo(BeEmpty())
			victim = pods.Items[0].Name
		}).WithTimeout(60 * time.Second).Should(Succeed())

		evict := func() error {
			return cs.CoreV1().Pods(ns).EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: victim, Namespace: ns}})
		}
		err = evict()
		Expect(apierrors.IsTooManyRequests(err)).To(BeTrue(), "%v", err)
		Expect(apierrors.HasStatusCause(err, policyv1.DisruptionBudgetCause)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal("Cannot evict pod as it would violate the pod's disruption budget."))
		_, err = cs.CoreV1().Pods(ns).Get(ctx, victim, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred(), "a refused eviction leaves the pod")

		// With room in the budget the eviction deletes the pod.
		_, err = cs.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, "evictable", types.MergePatchType, []byte(`{"spec":{"minAvailable":1}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(evict).WithTimeout(30 * time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, victim, metav1.GetOptions{})
			if err == nil {
				g.Expect(p.DeletionTimestamp).NotTo(BeNil())
			} else {
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
			}
		}).WithTimeout(30 * time.Second).Should(Succeed())
		// The evicted pod gets the DisruptionTarget condition before it is
		// deleted (a finalizer keeps this one to be looked at).
		held := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"conformance.kubesim.io/hold"}}, Spec: podSpec("nginx:1.27")}
		_, err = cs.CoreV1().Pods(ns).Create(ctx, held, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_, _ = cs.CoreV1().Pods(ns).Patch(ctx, "held", types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`), metav1.PatchOptions{})
		})
		Expect(cs.CoreV1().Pods(ns).EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: ns}})).To(Succeed())
		got, err := cs.CoreV1().Pods(ns).Get(ctx, "held", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.DeletionTimestamp).NotTo(BeNil())
		Expect(got.Status.Conditions).To(ContainElement(And(
			HaveField("Type", corev1.DisruptionTarget), HaveField("Status", corev1.ConditionTrue), HaveField("Reason", "EvictionByEvictionAPI"))))

		_, err = cs.CoreV1().Pods(ns).Get(ctx, "no-such-pod", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
		err = cs.CoreV1().Pods(ns).EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "no-such-pod", Namespace: ns}})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
	})

	It("completes a Job whose pods run for the annotated duration", func(ctx SpecContext) {
		spec := podSpec("busybox")
		spec.RestartPolicy = corev1.RestartPolicyNever
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "batch"},
			Spec: batchv1.JobSpec{
				Completions: ptr.To[int32](4), Parallelism: ptr.To[int32](2),
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{kubeletsim.AnnotationRunDuration: "3s"}}, Spec: spec},
			},
		}
		_, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			j, err := cs.BatchV1().Jobs(ns).Get(ctx, "batch", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(j.Status.Succeeded).To(BeEquivalentTo(4))
			g.Expect(j.Status.Conditions).To(ContainElement(And(HaveField("Type", batchv1.JobComplete), HaveField("Status", corev1.ConditionTrue))))
		}).WithTimeout(60 * time.Second).Should(Succeed())
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=batch"})
		Expect(err).NotTo(HaveOccurred())
		Expect(pods.Items).To(HaveLen(4))
		for _, p := range pods.Items {
			Expect(p.Status.Phase).To(Equal(corev1.PodSucceeded))
			term := p.Status.ContainerStatuses[0].State.Terminated
			Expect(term).NotTo(BeNil())
			Expect(term.Reason).To(Equal("Completed"))
			// Three seconds, at the API's one-second precision.
			Expect(term.FinishedAt.Sub(term.StartedAt.Time)).To(And(BeNumerically(">=", 2*time.Second), BeNumerically("<=", 4*time.Second)))
		}
	})

	It("shows a crash-looping pod's increasing restartCount and CrashLoopBackOff", func(ctx SpecContext) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "crash", Annotations: map[string]string{kubeletsim.AnnotationRunDuration: "1s", kubeletsim.AnnotationExitCode: "2"}},
			Spec:       podSpec("busybox"),
		}
		_, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var seen []int32
		Eventually(func(g Gomega) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "crash", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.ContainerStatuses).To(HaveLen(1))
			st := p.Status.ContainerStatuses[0]
			if len(seen) == 0 || seen[len(seen)-1] != st.RestartCount {
				seen = append(seen, st.RestartCount)
			}
			g.Expect(st.State.Waiting).NotTo(BeNil())
			g.Expect(st.State.Waiting.Reason).To(Equal("CrashLoopBackOff"))
			g.Expect(st.State.Waiting.Message).To(MatchRegexp(`^back-off (10|20|40)s restarting failed container=app pod=crash_` + ns + `\(`))
			g.Expect(st.LastTerminationState.Terminated).NotTo(BeNil())
			g.Expect(st.LastTerminationState.Terminated.ExitCode).To(BeEquivalentTo(2))
			g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		// After the 10s back-off it runs again and counts another restart.
		Eventually(func(g Gomega) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "crash", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.ContainerStatuses[0].RestartCount).To(BeNumerically(">=", 2))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		res := cp.Kubectl(ctx, "", "-n", ns, "get", "pod", "crash")
		Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
		Expect(res.Stdout).To(MatchRegexp(`crash\s+[01]/1\s+(CrashLoopBackOff|Error|Running)\s+[2-9]`))
	})

	It("runs a DaemonSet pod on every simulated node", func(ctx SpecContext) {
		sel := map[string]string{"app": "agent"}
		ds := &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "agent"},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: podSpec("fluent-bit")},
			},
		}
		_, err := cs.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Status.DesiredNumberScheduled).To(BeEquivalentTo(nodeCount))
			g.Expect(d.Status.NumberReady).To(BeEquivalentTo(nodeCount))
			g.Expect(d.Status.NumberAvailable).To(BeEquivalentTo(nodeCount))
		}).WithTimeout(60 * time.Second).Should(Succeed())
	})

	It("records kubelet's events, which kubectl describe shows with the scheduler's", func(ctx SpecContext) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "described"}, Spec: podSpec("nginx:1.27")}
		_, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			res := cp.Kubectl(ctx, "", "-n", ns, "describe", "pod", "described")
			g.Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
			g.Expect(res.Stdout).To(MatchRegexp(`Normal\s+Scheduled\s+\S+\s+default-scheduler\s+Successfully assigned ` + ns + `/described to sim-\d+`))
			g.Expect(res.Stdout).To(MatchRegexp(`Normal\s+Pulled\s+\S+\s+kubelet\s+Container image "nginx:1.27" already present on machine`))
			g.Expect(res.Stdout).To(MatchRegexp(`Normal\s+Created\s+\S+\s+kubelet\s+Container created`))
			g.Expect(res.Stdout).To(MatchRegexp(`Normal\s+Started\s+\S+\s+kubelet\s+Container started`))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(cs.CoreV1().Pods(ns).Delete(ctx, "described", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			res := cp.Kubectl(ctx, "", "-n", ns, "events", "--for", "pod/described")
			g.Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
			g.Expect(res.Stdout).To(MatchRegexp(`Normal\s+Killing\s+Pod/described\s+Stopping container app`))
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})

	It("serves kubectl logs and kubectl top from the simulated kubelet, and names the node when exec cannot run", func(ctx SpecContext) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "talker", Annotations: map[string]string{kubeletsim.AnnotationLogs: "hello from $(POD)\nsecond line"}},
			Spec:       podSpec("busybox"),
		}
		_, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var node string
		Eventually(func(g Gomega) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "talker", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
			node = p.Spec.NodeName
		}).WithTimeout(30 * time.Second).Should(Succeed())
		res := cp.Kubectl(ctx, "", "-n", ns, "logs", "talker")
		Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
		Expect(res.Stdout).To(Equal("hello from talker\nsecond line\n"))
		res = cp.Kubectl(ctx, "", "-n", ns, "logs", "talker", "--tail=1", "--timestamps")
		Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
		Expect(res.Stdout).To(MatchRegexp(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z second line\n$`))
		res = cp.Kubectl(ctx, "", "-n", ns, "logs", "talker", "--previous")
		Expect(res.ExitCode()).To(Equal(1))
		Expect(res.Stderr).To(ContainSubstring(`previous terminated container "app" in pod "talker" not found`))
		res = cp.Kubectl(ctx, "", "-n", ns, "logs", "talker", "-c", "nope")
		Expect(res.ExitCode()).To(Equal(1))
		Expect(res.Stderr).To(ContainSubstring(`container nope is not valid for pod talker`))

		res = cp.Kubectl(ctx, "", "-n", ns, "exec", "talker", "--", "ls")
		Expect(res.ExitCode()).NotTo(Equal(0))
		Expect(res.Stderr).To(ContainSubstring(fmt.Sprintf("exec is not supported on simulated node %q", node)))

		if !target.IsKubesim() {
			// The reference has no metrics server: kubectl top says so,
			// and exits 1.
			res = cp.Kubectl(ctx, "", "-n", ns, "top", "pod", "talker")
			Expect(res.ExitCode()).To(Equal(1))
			Expect(res.Stderr).To(ContainSubstring("Metrics API not available"))
			return
		}
		// kubesim's metrics-server reports the pod once it has scraped its
		// node twice: 10% of its 100m request, half its 64Mi, as the
		// default usage model has it.
		Eventually(func(g Gomega) {
			res := cp.Kubectl(ctx, "", "-n", ns, "top", "pod", "talker", "--no-headers")
			g.Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
			g.Expect(strings.Fields(res.Stdout)).To(Equal([]string{"talker", "10m", "32Mi"}))
		}).WithTimeout(2 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())
	})

	It("taints a NotReady node and evicts its pods by the genuine node lifecycle controller, and lifts the taint when it heals", func(ctx SpecContext) {
		const victim = "sim-9"
		spec := podSpec("busybox")
		spec.NodeSelector = map[string]string{corev1.LabelHostname: victim}
		spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](2)}}
		_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "evictee"}, Spec: spec}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "evictee", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
		}).WithTimeout(30 * time.Second).Should(Succeed())

		bin, err := framework.Binary()
		Expect(err).NotTo(HaveOccurred())
		out, err := exec.CommandContext(ctx, bin, "node", "not-ready", victim, "--kubeconfig", cp.Kubeconfig).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(Equal("node/" + victim + " not ready\n"))

		notReadyTaint := And(HaveField("Key", corev1.TaintNodeNotReady), HaveField("Effect", corev1.TaintEffectNoExecute))
		Eventually(func(g Gomega) {
			n, err := cs.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(n.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionFalse), HaveField("Reason", "KubeletNotReady"))))
			g.Expect(n.Spec.Taints).To(ContainElement(notReadyTaint))
		}).WithTimeout(60 * time.Second).Should(Succeed())
		// The taint-eviction controller deletes the pod once its toleration
		// runs out; the simulated kubelet then removes it.
		Eventually(func(g Gomega) {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=evictee"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods.Items).To(BeEmpty())
		}).WithTimeout(60 * time.Second).Should(Succeed())
		events, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=evictee,reason=TaintManagerEviction"})
		Expect(err).NotTo(HaveOccurred())
		Expect(events.Items).NotTo(BeEmpty())

		out, err = exec.CommandContext(ctx, bin, "node", "heal", victim, "--kubeconfig", cp.Kubeconfig).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Eventually(func(g Gomega) {
			n, err := cs.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(n.Spec.Taints).NotTo(ContainElement(notReadyTaint))
			g.Expect(n.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionTrue))))
		}).WithTimeout(60 * time.Second).Should(Succeed())
	})
})
