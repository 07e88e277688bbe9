package conformance_test

import (
	"os"
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
})
