package conformance_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubesim/kubesim/conformance/framework"
)

// The cluster add-ons of `kubesim up --nodes 3`: what kind and a cloud
// provider give a cluster (a default StorageClass and its provisioner,
// LoadBalancer addresses) and metrics-server, read by kubectl top and the
// genuine HPA controller. The reference has none of them.
var _ = Describe("cluster add-ons", Ordered, func() {
	var (
		cp *framework.Target
		cs kubernetes.Interface
		ns string
	)
	kubectl := func(ctx SpecContext, stdin string, args ...string) string {
		GinkgoHelper()
		res := cp.Kubectl(ctx, stdin, append([]string{"-n", ns}, args...)...)
		Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
		return res.Stdout
	}

	BeforeAll(func(ctx SpecContext) {
		if !target.IsKubesim() {
			Skip("the reference runs no add-ons")
		}
		var err error
		// Time scale 10: the usage curves run ten times as fast.
		cp, err = framework.StartKubesim(ctx, "--nodes", "3", "--time-scale", "10")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(cp.StopWith(os.Interrupt, time.Minute)).To(Succeed()) })
		cs = cp.Clientset()
		nsObj, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "addons-"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ns = nsObj.Name
		Eventually(func() error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})

	It("runs a StatefulSet of 2 with volumeClaimTemplates to Ready, its claims Bound to volumes on their pods' nodes", func(ctx SpecContext) {
		kubectl(ctx, `
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: postgres:17
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
`, "apply", "-f", "-")
		Expect(kubectl(ctx, "", "rollout", "status", "statefulset/db", "--timeout=120s")).To(ContainSubstring("roll out complete"))
		for _, i := range []string{"0", "1"} {
			claim, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-db-"+i, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(claim.Status.Phase).To(Equal(corev1.ClaimBound))
			Expect(*claim.Spec.StorageClassName).To(Equal("standard"), "the default class")
			pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			pod, err := cs.CoreV1().Pods(ns).Get(ctx, "db-"+i, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			// WaitForFirstConsumer: provisioned on the node the scheduler
			// picked for the pod.
			Expect(pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values).To(Equal([]string{pod.Spec.NodeName}))
			Expect(pv.Spec.Capacity.Storage().String()).To(Equal("1Gi"))
		}
		// Deleting the claims releases the volumes, which reclaimPolicy
		// Delete deletes.
		kubectl(ctx, "", "delete", "statefulset", "db", "--wait")
		kubectl(ctx, "", "delete", "pvc", "--all", "--wait")
		Eventually(func(g Gomega) {
			pvs, err := cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			for _, pv := range pvs.Items {
				g.Expect(pv.Spec.ClaimRef.Namespace).NotTo(Equal(ns))
			}
		}).WithTimeout(60 * time.Second).Should(Succeed())
	})

	It("gives a LoadBalancer Service an address from the pool, and takes it back", func(ctx SpecContext) {
		kubectl(ctx, "", "create", "service", "loadbalancer", "web", "--tcp=80:8080")
		var ip string
		Eventually(func(g Gomega) {
			svc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(svc.Status.LoadBalancer.Ingress).To(HaveLen(1))
			ip = svc.Status.LoadBalancer.Ingress[0].IP
		}).WithTimeout(60 * time.Second).Should(Succeed())
		Expect(ip).To(HavePrefix("10.240.0."))
		Expect(kubectl(ctx, "", "get", "service", "web")).To(ContainSubstring(ip))
		kubectl(ctx, "", "delete", "service", "web", "--wait")
	})

	It("registers metrics-server as kube-apiserver's aggregator sees it: APIService v1beta1.metrics.k8s.io of Service kube-system/metrics-server, Available", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			res := cp.Kubectl(ctx, "", "get", "apiservice", "v1beta1.metrics.k8s.io", "--no-headers")
			g.Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
			g.Expect(strings.Fields(res.Stdout)[:3]).To(Equal([]string{"v1beta1.metrics.k8s.io", "kube-system/metrics-server", "True"}))
		}).WithTimeout(time.Minute).Should(Succeed())
		// The remote availability controller's own check passed.
		out := kubectl(ctx, "", "get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "jsonpath={.status.conditions[0].reason}")
		Expect(out).To(Equal("Passed"))
		// Its discovery, legacy and aggregated, through the proxy.
		Expect(kubectl(ctx, "", "get", "--raw", "/apis/metrics.k8s.io")).To(ContainSubstring(`"preferredVersion":{"groupVersion":"metrics.k8s.io/v1beta1"`))
		Expect(kubectl(ctx, "", "api-resources", "--api-group=metrics.k8s.io", "--no-headers")).To(MatchRegexp(`(?m)^pods\s+metrics.k8s.io/v1beta1\s+true\s+PodMetrics$`))
		// Its OpenAPI v3 document, as kube-aggregator's proxier serves it:
		// kubectl explain reads it.
		Expect(kubectl(ctx, "", "explain", "nodemetrics.usage")).To(ContainSubstring("FIELD: usage <map[string]Quantity>"))
		// What aggregated servers read to trust the proxy's headers.
		Expect(kubectl(ctx, "", "-n", "kube-system", "get", "configmap", "extension-apiserver-authentication", "-o", "jsonpath={.data.requestheader-allowed-names}")).To(Equal(`["front-proxy-client"]`))
	})

	It("prints the usage model's figures in kubectl top, and warns of a usage annotation it cannot read", func(ctx SpecContext) {
		kubectl(ctx, `
apiVersion: v1
kind: Pod
metadata:
  name: busy
  annotations: {kubesim.io/cpu-usage: 250m, kubesim.io/memory-usage: 200Mi}
spec:
  containers: [{name: app, image: nginx, resources: {requests: {cpu: 500m, memory: 256Mi}}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: odd
  annotations: {kubesim.io/cpu-usage: "ramp(10%, 200%"}
spec:
  containers: [{name: app, image: nginx, resources: {requests: {cpu: 100m}}}]
`, "apply", "-f", "-")
		// metrics-server reports a pod after two scrapes.
		Eventually(func(g Gomega) {
			res := cp.Kubectl(ctx, "", "-n", ns, "top", "pod", "busy", "--no-headers")
			g.Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
			f := strings.Fields(res.Stdout)
			g.Expect(f).To(HaveLen(3))
			g.Expect(f[1]).To(MatchRegexp(`^(249|250|251)m$`))
			g.Expect(f[2]).To(Equal("200Mi"))
		}).WithTimeout(3 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			res := cp.Kubectl(ctx, "", "top", "nodes", "--no-headers")
			g.Expect(res.Err).NotTo(HaveOccurred(), res.Stderr)
			lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
			g.Expect(lines).To(HaveLen(3))
			for _, l := range lines {
				g.Expect(strings.TrimSpace(l)).To(MatchRegexp(`^node-\d\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%$`))
			}
		}).WithTimeout(time.Minute).WithPolling(2 * time.Second).Should(Succeed())

		Eventually(func(g Gomega) {
			evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=odd,reason=InvalidUsage"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(evs.Items).To(HaveLen(1))
			g.Expect(evs.Items[0].Type).To(Equal(corev1.EventTypeWarning))
			g.Expect(evs.Items[0].Message).To(ContainSubstring("kubesim.io/cpu-usage"))
			pod, err := cs.CoreV1().Pods(ns).Get(ctx, "odd", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning), "the pod runs with its profile's usage")
		}).WithTimeout(time.Minute).Should(Succeed())
		kubectl(ctx, "", "delete", "pod", "busy", "odd", "--wait=false")
	})

	It("lets the genuine HPA controller scale a Deployment whose pods use twice their request", func(ctx SpecContext) {
		kubectl(ctx, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: hot}
spec:
  replicas: 1
  selector: {matchLabels: {app: hot}}
  template:
    metadata:
      labels: {app: hot}
      annotations: {kubesim.io/cpu-usage: 200%}
    spec:
      containers: [{name: app, image: nginx, resources: {requests: {cpu: 100m}}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: hot}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: hot}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
`, "apply", "-f", "-")
		// 200% against a 50% target: 4 replicas (the maximum), by way of
		// the controller's own steps.
		Eventually(func(g Gomega) {
			hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "hot", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(hpa.Status.DesiredReplicas).To(BeEquivalentTo(4))
			g.Expect(hpa.Status.CurrentMetrics).NotTo(BeEmpty())
			g.Expect(*hpa.Status.CurrentMetrics[0].Resource.Current.AverageUtilization).To(BeNumerically("~", 200, 2))
		}).WithTimeout(4 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			out := kubectl(ctx, "", "get", "deployment", "hot", "-o", "jsonpath={.status.availableReplicas}")
			n, err := strconv.Atoi(out)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(n).To(Equal(4))
		}).WithTimeout(time.Minute).Should(Succeed())
		Expect(regexp.MustCompile(`SuccessfulRescale.*New size: \d`).MatchString(kubectl(ctx, "", "describe", "hpa", "hot"))).To(BeTrue())
	})

	It("lets the genuine HPA follow a ramp of 10% to 200% of requests and back, scale-down stabilisation window included", func(ctx SpecContext) {
		// Every pod follows one curve from the same start (as a load
		// does): up over 10 curve minutes, down over 10, at time scale 10
		// a minute each.
		start := time.Now().UTC().Truncate(time.Second)
		kubectl(ctx, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: wave}
spec:
  replicas: 2
  selector: {matchLabels: {app: wave}}
  template:
    metadata:
      labels: {app: wave}
      annotations:
        kubesim.io/cpu-usage: points(0s 10%, 10m 200%, 20m 10%)
        kubesim.io/usage-start: `+start.Format(time.RFC3339)+`
    spec:
      containers: [{name: app, image: nginx, resources: {requests: {cpu: 100m}}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: wave}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: wave}
  minReplicas: 2
  maxReplicas: 8
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 60}
`, "apply", "-f", "-")
		type sample struct {
			at          time.Time
			replicas    int32
			utilization int32
		}
		var samples []sample
		var peaked bool
		var low, scaledDown time.Time // utilization first under target after the peak; the first scale-down
		for {
			Expect(time.Since(start)).To(BeNumerically("<", 7*time.Minute), "the HPA did not come back to 2 replicas: %+v", samples)
			hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "wave", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			cur := sample{at: time.Now(), replicas: hpa.Status.DesiredReplicas}
			if len(hpa.Status.CurrentMetrics) > 0 && hpa.Status.CurrentMetrics[0].Resource != nil && hpa.Status.CurrentMetrics[0].Resource.Current.AverageUtilization != nil {
				cur.utilization = *hpa.Status.CurrentMetrics[0].Resource.Current.AverageUtilization
			}
			if n := len(samples); n == 0 || samples[n-1].replicas != cur.replicas || samples[n-1].utilization != cur.utilization {
				if n > 0 && cur.replicas > samples[n-1].replicas {
					// Scale-up policies: at most double, or 4 more, a step.
					prev := samples[n-1].replicas
					Expect(cur.replicas).To(BeNumerically("<=", max(2*prev, prev+4)), "%+v", append(samples, cur))
					Expect(scaledDown.IsZero()).To(BeTrue(), "scaled up again after scaling down: %+v", append(samples, cur))
				}
				samples = append(samples, cur)
			}
			if cur.replicas == 8 {
				peaked = true
			}
			if peaked && low.IsZero() && cur.utilization > 0 && cur.utilization < 45 {
				low = cur.at
			}
			if peaked && scaledDown.IsZero() && cur.replicas < 8 {
				scaledDown = cur.at
				Expect(low.IsZero()).To(BeFalse(), "scaled down before utilization fell: %+v", samples)
				// The window holds the high recommendations of the syncs
				// (every 15 s) before utilization fell: no scale-down
				// until 60 s after the last of them.
				Expect(scaledDown.Sub(low)).To(BeNumerically(">=", 40*time.Second), "%+v", samples)
			}
			if !scaledDown.IsZero() && cur.replicas == 2 && cur.utilization > 0 && cur.utilization < 20 {
				break
			}
			time.Sleep(time.Second)
		}
		Expect(peaked).To(BeTrue())
		var trace []string
		for _, x := range samples {
			trace = append(trace, fmt.Sprintf("+%ds %d replicas at %d%%", int(x.at.Sub(start).Seconds()), x.replicas, x.utilization))
		}
		GinkgoWriter.Printf("HPA: %s\n", strings.Join(trace, ", "))
	})

	It("installs each chart of testdata/charts with helm install --wait", func(ctx SpecContext) {
		helm := os.Getenv("HELM")
		Expect(helm).NotTo(BeEmpty(), "HELM names the helm v4 binary (make helm builds it)")
		for _, chart := range []string{"database", "webapp", "agent"} {
			cmd := exec.CommandContext(ctx, helm, "install", chart, filepath.Join("..", "testdata", "charts", chart),
				"--kubeconfig", cp.Kubeconfig, "--namespace", ns, "--wait", "--timeout", "3m")
			cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+GinkgoT().TempDir(), "HELM_CONFIG_HOME="+GinkgoT().TempDir(), "HELM_DATA_HOME="+GinkgoT().TempDir())
			out, err := cmd.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "helm install %s:\n%s", chart, out)
			Expect(string(out)).To(ContainSubstring("STATUS: deployed"))
		}
		// What --wait waited for.
		for _, i := range []string{"0", "1"} {
			claim, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-database-database-"+i, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(claim.Status.Phase).To(Equal(corev1.ClaimBound))
		}
		svc, err := cs.CoreV1().Services(ns).Get(ctx, "webapp-webapp", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(svc.Status.LoadBalancer.Ingress).To(HaveLen(1))
		ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "agent-agent", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(ds.Status.NumberReady).To(BeEquivalentTo(3))
	})
})
