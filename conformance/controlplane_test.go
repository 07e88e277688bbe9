package conformance_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/conformance/framework"
)

// The control-plane specs need the genuine kube-scheduler and
// kube-controller-manager beside the API. Against kubesim they start their
// own `kubesim up`, which runs both in-process; against the reference they
// run when KUBESIM_CONTROL_PLANE=1 says the peer has them
// (hack/control-plane.sh; `make conformance-reference` does it).
var _ = Describe("control plane", Ordered, func() {
	var (
		cs  kubernetes.Interface
		cp  *framework.Target
		tag = fmt.Sprintf("%d", time.Now().UnixNano()%100000)
	)

	BeforeAll(func(ctx SpecContext) {
		switch {
		case target.IsKubesim():
			var err error
			cp, err = framework.StartKubesim(ctx)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { Expect(cp.StopWith(os.Interrupt, time.Minute)).To(Succeed()) })
			cs = cp.Clientset()
		case os.Getenv("KUBESIM_CONTROL_PLANE") == "1":
			cp = target
			cs = target.Clientset()
		default:
			Skip("the reference runs no controller manager or scheduler here (KUBESIM_CONTROL_PLANE=1 with hack/control-plane.sh runs these specs)")
		}
	})

	namespace := func(ctx SpecContext, name string) string {
		GinkgoHelper()
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// The service account controller makes the default ServiceAccount,
		// which admission needs before pods can be created.
		Eventually(func() error {
			_, err := cs.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
			return err
		}).WithTimeout(30 * time.Second).Should(Succeed())
		return name
	}

	node := func(ctx SpecContext, name string, cpu string, nodeLabels map[string]string, taints ...corev1.Taint) {
		GinkgoHelper()
		capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
		n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: nodeLabels},
			Spec:       corev1.NodeSpec{Taints: taints},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			Expect(cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
		})
		// The node controllers (IPAM, lifecycle) write the node too: report
		// its status as a kubelet does, retrying on conflicts.
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if n, err = cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil {
				return err
			}
			now := metav1.Now()
			n.Status.Capacity, n.Status.Allocatable = capacity, capacity
			n.Status.Conditions = []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now},
			}
			_, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		})).To(Succeed())
	}

	podsOf := func(ctx SpecContext, ns string, selector map[string]string) []corev1.Pod {
		GinkgoHelper()
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(selector).String()})
		Expect(err).NotTo(HaveOccurred())
		return list.Items
	}

	deployment := func(name string, replicas int32, cpu string) *appsv1.Deployment {
		sel := map[string]string{"app": name}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(replicas),
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: sel},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}},
				},
			},
		}
	}

	It("rolls a Deployment out to a ReplicaSet and pods, which the scheduler binds once nodes fit them", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-deploy-"+tag)
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment("web", 3, "500m"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return podsOf(ctx, ns, map[string]string{"app": "web"}) }).WithTimeout(30 * time.Second).Should(HaveLen(3))
		rs, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(rs.Items).To(HaveLen(1))
		Expect(rs.Items[0].OwnerReferences).To(ContainElement(HaveField("Kind", "Deployment")))
		for _, p := range podsOf(ctx, ns, map[string]string{"app": "web"}) {
			Expect(p.OwnerReferences).To(ContainElement(HaveField("Name", rs.Items[0].Name)))
		}

		// No node fits yet: the scheduler says so.
		Eventually(func() []string {
			events, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedScheduling"})
			Expect(err).NotTo(HaveOccurred())
			var sources []string
			for _, e := range events.Items {
				sources = append(sources, e.ReportingController)
			}
			return sources
		}).WithTimeout(30 * time.Second).Should(ContainElement("default-scheduler"))

		// A tainted node and a node with the wrong label get nothing; the
		// pods land on the two that fit, honouring their requests
		// (one CPU each: two pods of half a CPU per node at most).
		node(ctx, "cp-fit-a-"+tag, "1", map[string]string{"pool": "web"})
		node(ctx, "cp-fit-b-"+tag, "1", map[string]string{"pool": "web"})
		node(ctx, "cp-tainted-"+tag, "8", map[string]string{"pool": "web"}, corev1.Taint{Key: "dedicated", Value: "other", Effect: corev1.TaintEffectNoSchedule})
		Eventually(func() map[string]int {
			perNode := map[string]int{}
			for _, p := range podsOf(ctx, ns, map[string]string{"app": "web"}) {
				perNode[p.Spec.NodeName]++
			}
			return perNode
		}).WithTimeout(60 * time.Second).Should(SatisfyAll(
			HaveLen(2),
			HaveKeyWithValue("cp-fit-a-"+tag, BeNumerically(">=", 1)),
			HaveKeyWithValue("cp-fit-b-"+tag, BeNumerically(">=", 1)),
		))

		// A pod that asks for more CPU than any fitting node has stays
		// Pending, with the scheduler's reason.
		big := deployment("big", 1, "2")
		big.Spec.Template.Spec.NodeSelector = map[string]string{"pool": "web"}
		_, err = cs.AppsV1().Deployments(ns).Create(ctx, big, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string {
			pods := podsOf(ctx, ns, map[string]string{"app": "big"})
			if len(pods) != 1 {
				return ""
			}
			for _, c := range pods[0].Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					return c.Message
				}
			}
			return ""
		}).WithTimeout(30 * time.Second).Should(ContainSubstring("Insufficient cpu"))
		Expect(cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})).To(Succeed())
	})

	// The garbage collector starts collecting once its monitors of every
	// deletable resource have synced (or after 30 s): the timeouts leave
	// room for that on a loaded machine.
	It("cascades deletions in the background, in the foreground and not at all (orphan)", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-gc-"+tag)
		for _, name := range []string{"background", "foreground", "orphan"} {
			_, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(name, 2, "10m"), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Eventually(func() []corev1.Pod { return podsOf(ctx, ns, map[string]string{"app": name}) }).WithTimeout(30 * time.Second).Should(HaveLen(2))
		}
		replicaSets := func(app string) []appsv1.ReplicaSet {
			list, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
			Expect(err).NotTo(HaveOccurred())
			return list.Items
		}

		Expect(cs.AppsV1().Deployments(ns).Delete(ctx, "background", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})).To(Succeed())
		Eventually(func() []corev1.Pod { return podsOf(ctx, ns, map[string]string{"app": "background"}) }).WithTimeout(2 * time.Minute).Should(BeEmpty())
		Expect(replicaSets("background")).To(BeEmpty())

		Expect(cs.AppsV1().Deployments(ns).Delete(ctx, "foreground", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})).To(Succeed())
		// The owner waits, with the foregroundDeletion finalizer, for its
		// dependents, then goes.
		Eventually(func() error {
			_, err := cs.AppsV1().Deployments(ns).Get(ctx, "foreground", metav1.GetOptions{})
			return err
		}).WithTimeout(2 * time.Minute).Should(Satisfy(apierrors.IsNotFound))
		Expect(podsOf(ctx, ns, map[string]string{"app": "foreground"})).To(BeEmpty())
		Expect(replicaSets("foreground")).To(BeEmpty())

		Expect(cs.AppsV1().Deployments(ns).Delete(ctx, "orphan", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)})).To(Succeed())
		Eventually(func() error {
			_, err := cs.AppsV1().Deployments(ns).Get(ctx, "orphan", metav1.GetOptions{})
			return err
		}).WithTimeout(2 * time.Minute).Should(Satisfy(apierrors.IsNotFound))
		orphans := replicaSets("orphan")
		Expect(orphans).To(HaveLen(1))
		Expect(orphans[0].OwnerReferences).To(BeEmpty())
		Expect(podsOf(ctx, ns, map[string]string{"app": "orphan"})).To(HaveLen(2))
	})

	It("follows a CRD installed after start: an owner of its kind deleted a second after it is established has its dependents collected", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-crd-gc-"+tag)
		group := "gc" + tag + ".kubesim.io"
		crds := apiextensionsclient.NewForConfigOrDie(cp.Config)
		crd := &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: "gadgets." + group},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: group,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Singular: "gadget", Kind: "Gadget", ListKind: "GadgetList"},
				Scope: apiextensionsv1.NamespaceScoped,
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object", XPreserveUnknownFields: ptr.To(true)}}}},
			},
		}
		_, err := crds.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			Expect(crds.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, crd.Name, metav1.DeleteOptions{})).To(Succeed())
		})
		Eventually(func(g Gomega) {
			got, err := crds.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			established := false
			for _, c := range got.Status.Conditions {
				established = established || c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
			}
			g.Expect(established).To(BeTrue())
		}).WithTimeout(30 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
		established := time.Now()

		gadgets := cp.Dynamic().Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gadgets"}).Namespace(ns)
		owner, err := gadgets.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": group + "/v1", "kind": "Gadget", "metadata": map[string]any{"name": "owner"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ref := metav1.OwnerReference{APIVersion: group + "/v1", Kind: "Gadget", Name: owner.GetName(), UID: owner.GetUID()}
		for i := range 3 {
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("dependent-%d", i), Labels: map[string]string{"owner": "gadget"}, OwnerReferences: []metav1.OwnerReference{ref}}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		dependents := func() []corev1.ConfigMap {
			list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=gadget"})
			Expect(err).NotTo(HaveOccurred())
			return list.Items
		}
		Expect(dependents()).To(HaveLen(3))

		time.Sleep(time.Until(established.Add(time.Second)))
		Expect(gadgets.Delete(ctx, "owner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})).To(Succeed())
		deleted := time.Now()
		// kubesim's garbage collector reads discovery every second.
		// kube-controller-manager's reads it every 30 s, and until then
		// the owner is a node of unknown kind that it retries with back-off:
		// on the reference the dependents go, but only after that.
		within := 5 * time.Second
		if !target.IsKubesim() {
			within = 2 * time.Minute
		}
		Eventually(dependents).WithTimeout(within).WithPolling(50 * time.Millisecond).Should(BeEmpty())
		GinkgoWriter.Printf("dependents collected %v after their owner's deletion\n", time.Since(deleted).Round(time.Millisecond))
	})

	It("completes a Job whose pods succeed", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-job-"+tag)
		_, err := cs.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "once"},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
			}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var pods []corev1.Pod
		Eventually(func() []corev1.Pod {
			pods = podsOf(ctx, ns, map[string]string{"job-name": "once"})
			return pods
		}).WithTimeout(30 * time.Second).Should(HaveLen(1))
		// What a kubelet would report: the container ran and exited 0. The
		// scheduler and the Job controller write the pod too: retry on
		// conflicts, as a kubelet does.
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, pods[0].Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := metav1.Now()
			p.Status.Phase = corev1.PodSucceeded
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "registry.k8s.io/pause:3.10",
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}}}}
			_, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
			return err
		})).To(Succeed())
		Eventually(func() []batchv1.JobCondition {
			j, err := cs.BatchV1().Jobs(ns).Get(ctx, "once", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			return j.Status.Conditions
		}).WithTimeout(60 * time.Second).Should(ContainElement(SatisfyAll(HaveField("Type", batchv1.JobComplete), HaveField("Status", corev1.ConditionTrue))))
	})

	It("tracks ResourceQuota usage and refuses creates over the quota", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-quota-"+tag)
		_, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Name: "small"},
			Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceConfigMaps: resource.MustParse("3")}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// The quota controller computes usage: kube-root-ca.crt is one.
		Eventually(func() corev1.ResourceList {
			q, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "small", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			return q.Status.Used
		}).WithTimeout(30 * time.Second).Should(HaveKeyWithValue(corev1.ResourceConfigMaps, resource.MustParse("1")))
		for _, name := range []string{"one", "two"} {
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "three"}}, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`configmaps "three" is forbidden: exceeded quota: small, requested: configmaps=1, used: configmaps=3, limited: configmaps=3`))
	})

	// runReady reports a pod Running and Ready with an IP, as its kubelet
	// would.
	runReady := func(ctx SpecContext, ns, name, ip string) {
		GinkgoHelper()
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := metav1.Now()
			p.Status.Phase = corev1.PodRunning
			p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
			p.Status.StartTime = &now
			p.Status.Conditions = []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "registry.k8s.io/pause:3.10", Ready: true, Started: ptr.To(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}
			_, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
			return err
		})).To(Succeed())
	}

	It("runs a DaemonSet pod on every node and a StatefulSet's pods in order", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-workloads-"+tag)
		node(ctx, "cp-ds-a-"+tag, "4", map[string]string{"pool": "ds-" + tag})
		node(ctx, "cp-ds-b-"+tag, "4", map[string]string{"pool": "ds-" + tag})
		sel := map[string]string{"app": "agent"}
		_, err := cs.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "agent"},
			Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: sel}, Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{NodeSelector: map[string]string{"pool": "ds-" + tag},
					Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
			}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string {
			var nodes []string
			for _, p := range podsOf(ctx, ns, sel) {
				nodes = append(nodes, p.Spec.NodeName)
			}
			return nodes
		}).WithTimeout(60 * time.Second).Should(ConsistOf("cp-ds-a-"+tag, "cp-ds-b-"+tag))

		web := map[string]string{"app": "web"}
		_, err = cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2), ServiceName: "web", Selector: &metav1.LabelSelector{MatchLabels: web},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: web},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// web-1 waits for web-0 to be Running and Ready.
		Eventually(func() []corev1.Pod { return podsOf(ctx, ns, web) }).WithTimeout(30 * time.Second).Should(
			ConsistOf(HaveField("Name", "web-0")))
		Consistently(func() []corev1.Pod { return podsOf(ctx, ns, web) }).WithTimeout(2 * time.Second).Should(HaveLen(1))
		runReady(ctx, ns, "web-0", "10.244.0.10")
		Eventually(func() []corev1.Pod { return podsOf(ctx, ns, web) }).WithTimeout(30 * time.Second).Should(HaveLen(2))
	})

	It("keeps EndpointSlices on a Service's ready pods and a PodDisruptionBudget's status", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-endpoints-"+tag)
		sel := map[string]string{"app": "backend"}
		_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "backend"},
			Spec:       corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "backend"},
			Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: sel}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// Endpoints name their pod's node: the pods run on one.
		node(ctx, "cp-endpoints-"+tag, "4", nil)
		for i, name := range []string{"backend-a", "backend-b"} {
			p := pod(name)
			p.Labels = sel
			p.Spec.NodeName = "cp-endpoints-" + tag
			_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			runReady(ctx, ns, name, fmt.Sprintf("10.244.1.%d", i+10))
		}
		Eventually(func() []string {
			slices, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=backend"})
			Expect(err).NotTo(HaveOccurred())
			var ready []string
			for _, sl := range slices.Items {
				for _, e := range sl.Endpoints {
					if e.Conditions.Ready != nil && *e.Conditions.Ready {
						ready = append(ready, e.Addresses...)
					}
				}
			}
			return ready
		}).WithTimeout(30 * time.Second).Should(ConsistOf("10.244.1.10", "10.244.1.11"))
		Eventually(func() policyv1.PodDisruptionBudgetStatus {
			pdb, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "backend", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			return pdb.Status
		}).WithTimeout(30 * time.Second).Should(SatisfyAll(HaveField("CurrentHealthy", int32(2)), HaveField("DesiredHealthy", int32(1)), HaveField("DisruptionsAllowed", int32(1))))
	})

	It("rolls a Deployment out again on kubectl rollout restart, and back on rollout undo", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-rollout-"+tag)
		node(ctx, "cp-rollout-"+tag, "8", nil)
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment("app", 2, "100m"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// The test plays the kubelet: every bound pod becomes Running and
		// Ready.
		ip := 0
		readyAll := func() {
			for _, p := range podsOf(ctx, ns, map[string]string{"app": "app"}) {
				if p.Spec.NodeName != "" && p.Status.Phase != corev1.PodRunning && p.DeletionTimestamp == nil {
					ip++
					runReady(ctx, ns, p.Name, fmt.Sprintf("10.244.2.%d", ip))
				}
			}
		}
		rolledOut := func() bool {
			readyAll()
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "app", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			return d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 2 && d.Status.AvailableReplicas == 2 && d.Status.Replicas == 2
		}
		Eventually(rolledOut).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(BeTrue())

		kubectl := func(args ...string) string {
			GinkgoHelper()
			r := cp.Kubectl(ctx, "", append([]string{"-n", ns}, args...)...)
			Expect(r.Err).NotTo(HaveOccurred(), "%s\n%s", r.Stdout, r.Stderr)
			return r.Stdout
		}
		Expect(kubectl("rollout", "restart", "deployment/app")).To(ContainSubstring("restarted"))
		Eventually(rolledOut).WithTimeout(90 * time.Second).WithPolling(200 * time.Millisecond).Should(BeTrue())
		rs, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(rs.Items).To(HaveLen(2))
		Expect(kubectl("rollout", "history", "deployment/app")).To(SatisfyAll(ContainSubstring("1 "), ContainSubstring("2 ")))

		Expect(kubectl("rollout", "undo", "deployment/app")).To(ContainSubstring("rolled back"))
		Eventually(rolledOut).WithTimeout(90 * time.Second).WithPolling(200 * time.Millisecond).Should(BeTrue())
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "app", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Spec.Template.Annotations).NotTo(HaveKey("kubectl.kubernetes.io/restartedAt"))
		Expect(d.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "3"))
	})

	It("evicts the pods of a node whose lease stops being renewed", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-evict-"+tag)
		name, alive := "cp-lost-"+tag, "cp-alive-"+tag
		leases := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
		for _, n := range []string{name, alive} {
			node(ctx, n, "4", nil)
			now := metav1.NewMicroTime(time.Now())
			_, err := leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: n},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(n), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		// One node keeps renewing its lease, as its kubelet would: with every
		// node of a zone lost, the node lifecycle controller assumes its own
		// network is at fault and evicts nothing.
		heartbeat := func() {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				l, err := leases.Get(ctx, alive, metav1.GetOptions{})
				if err != nil {
					return err
				}
				now := metav1.NewMicroTime(time.Now())
				l.Spec.RenewTime = &now
				_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
				return err
			})).To(Succeed())
		}
		p := pod("doomed")
		p.Spec.NodeName = name
		p.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](1)}}
		_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// No more heartbeats: after the grace period the node lifecycle
		// controller marks the node unreachable and the taint evicts the pod.
		Eventually(func() []corev1.Taint {
			heartbeat()
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			return n.Spec.Taints
		}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(ContainElement(HaveField("Key", corev1.TaintNodeUnreachable)))
		Eventually(func() *metav1.Time {
			heartbeat()
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "doomed", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return &metav1.Time{}
			}
			Expect(err).NotTo(HaveOccurred())
			return p.DeletionTimestamp
		}).WithTimeout(30 * time.Second).ShouldNot(BeNil())
	})

	It("terminates a namespace: its content goes, then the namespace", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-terminate-"+tag)
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "content"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cs.AppsV1().Deployments(ns).Create(ctx, deployment("content", 1, "10m"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// The root CA publisher put kube-root-ca.crt in the namespace.
		Eventually(func() error {
			_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			return err
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() error {
			_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return err
		}).WithTimeout(90 * time.Second).Should(Satisfy(apierrors.IsNotFound))
	})

	It("gives service accounts credentials: kube-root-ca.crt, TokenRequest tokens and legacy token Secrets, which the API accepts", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-sa-"+tag)
		Eventually(func() (string, error) {
			cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			return cm.Data["ca.crt"], nil
		}).WithTimeout(30 * time.Second).Should(ContainSubstring("BEGIN CERTIFICATE"))

		// A client with nothing but a bearer token.
		as := func(token string) kubernetes.Interface {
			cfg := rest.AnonymousClientConfig(cp.Config)
			cfg.BearerToken = token
			return kubernetes.NewForConfigOrDie(cfg)
		}
		whoami := func(token string) (authenticationv1.UserInfo, error) {
			r, err := as(token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if err != nil {
				return authenticationv1.UserInfo{}, err
			}
			return r.Status.UserInfo, nil
		}
		account := "system:serviceaccount:" + ns + ":default"

		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "default", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(tr.Status.ExpirationTimestamp.Time).To(BeTemporally("~", time.Now().Add(10*time.Minute), time.Minute))
		user, err := whoami(tr.Status.Token)
		Expect(err).NotTo(HaveOccurred())
		Expect(user.Username).To(Equal(account))
		Expect(user.Groups).To(ConsistOf("system:serviceaccounts", "system:serviceaccounts:"+ns, "system:authenticated"))
		// The account may do nothing yet: RBAC says so, naming it.
		_, err = as(tr.Status.Token).CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(`User "` + account + `" cannot list resource "pods"`))
		// A TokenReview reads the same token, for the API server's audience.
		review, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(review.Status.Authenticated).To(BeTrue())
		Expect(review.Status.User.Username).To(Equal(account))
		Expect(review.Status.Audiences).NotTo(BeEmpty())
		// A token for another audience is no credential for the API.
		other, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "default", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = whoami(other.Status.Token)
		Expect(apierrors.IsUnauthorized(err)).To(BeTrue(), "%v", err)

		// kubectl create token asks the same.
		out := cp.Kubectl(ctx, "", "create", "token", "default", "-n", ns)
		Expect(out.Err).NotTo(HaveOccurred(), out.Stderr)
		user, err = whoami(strings.TrimSpace(out.Stdout))
		Expect(err).NotTo(HaveOccurred())
		Expect(user.Username).To(Equal(account))

		// A token bound to a pod says so, and dies with the pod.
		_, err = cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "bound"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "default", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "missing"}}}, metav1.CreateOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		bound, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "default", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "bound"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		user, err = whoami(bound.Status.Token)
		Expect(err).NotTo(HaveOccurred())
		Expect(user.Extra).To(HaveKeyWithValue("authentication.kubernetes.io/pod-name", authenticationv1.ExtraValue{"bound"}))
		Expect(cs.CoreV1().Pods(ns).Delete(ctx, "bound", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
		// kube-apiserver caches a token's success for 10 s.
		Eventually(func() error {
			_, err := whoami(bound.Status.Token)
			return err
		}).WithTimeout(30 * time.Second).Should(Satisfy(apierrors.IsUnauthorized))

		// A legacy token Secret gets its token from the token controller.
		_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "legacy", Annotations: map[string]string{corev1.ServiceAccountNameKey: "default"}},
			Type:       corev1.SecretTypeServiceAccountToken,
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var secret *corev1.Secret
		Eventually(func() map[string][]byte {
			secret, err = cs.CoreV1().Secrets(ns).Get(ctx, "legacy", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			return secret.Data
		}).WithTimeout(30 * time.Second).Should(SatisfyAll(HaveKey("token"), HaveKey("ca.crt"), HaveKeyWithValue("namespace", []byte(ns))))
		user, err = whoami(string(secret.Data["token"]))
		Expect(err).NotTo(HaveOccurred())
		Expect(user.Username).To(Equal(account))
	})

	It("creates a CronJob's Jobs on its schedule", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-cron-"+tag)
		_, err := cs.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: "every-minute"},
			Spec: batchv1.CronJobSpec{
				Schedule: "* * * * *",
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
				}}}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// The next minute starts a Job owned by the CronJob, which records it.
		var jobs *batchv1.JobList
		Eventually(func() []batchv1.Job {
			jobs, err = cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
			Expect(err).NotTo(HaveOccurred())
			return jobs.Items
		}).WithTimeout(90 * time.Second).ShouldNot(BeEmpty())
		Expect(jobs.Items[0].OwnerReferences).To(ContainElement(SatisfyAll(HaveField("Kind", "CronJob"), HaveField("Name", "every-minute"))))
		Expect(jobs.Items[0].Annotations).To(HaveKey("batch.kubernetes.io/cronjob-scheduled-timestamp"))
		Eventually(func() *metav1.Time {
			cj, err := cs.BatchV1().CronJobs(ns).Get(ctx, "every-minute", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			return cj.Status.LastScheduleTime
		}).WithTimeout(30 * time.Second).ShouldNot(BeNil())
	})

	It("spreads a Deployment's pods evenly over zones with a topology spread constraint", func(ctx SpecContext) {
		ns := namespace(ctx, "cp-spread-"+tag)
		zone := "topology.kubernetes.io/zone"
		pool := map[string]string{"pool": "spread-" + tag}
		// Zone a has two nodes, zone b one: spreading over nodes would put
		// two thirds in zone a, spreading over zones puts half.
		node(ctx, "cp-spread-a1-"+tag, "4", map[string]string{"pool": pool["pool"], zone: "a"})
		node(ctx, "cp-spread-a2-"+tag, "4", map[string]string{"pool": pool["pool"], zone: "a"})
		node(ctx, "cp-spread-b1-"+tag, "4", map[string]string{"pool": pool["pool"], zone: "b"})
		d := deployment("spread", 6, "100m")
		d.Spec.Template.Spec.NodeSelector = pool
		d.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: zone, WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}},
		}}
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() map[string]int {
			perZone := map[string]int{}
			for _, p := range podsOf(ctx, ns, map[string]string{"app": "spread"}) {
				switch {
				case strings.HasPrefix(p.Spec.NodeName, "cp-spread-a"):
					perZone["a"]++
				case strings.HasPrefix(p.Spec.NodeName, "cp-spread-b"):
					perZone["b"]++
				}
			}
			return perZone
		}).WithTimeout(60 * time.Second).Should(Equal(map[string]int{"a": 3, "b": 3}))
		Expect(cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})).To(Succeed())
	})
})
