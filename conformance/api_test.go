package conformance_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/conformance/framework"
)

// newNamespace creates a namespace with its default ServiceAccount, which
// kube-apiserver's ServiceAccount admission requires of pods (the genuine
// control plane's serviceaccount controller creates it; the specs run
// against the API alone).
func newNamespace(ctx SpecContext, name string) {
	GinkgoHelper()
	cs := target.Clientset()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	_, err = cs.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
}

func pod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "api"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
}

var _ = Describe("API semantics", func() {
	It("generates names and fills system fields on create", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-generate")
		cms := target.Clientset().CoreV1().ConfigMaps("conformance-generate")
		a, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		b, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(a.Name).To(MatchRegexp(`^gen-[a-z0-9]{5}$`))
		Expect(a.Name).NotTo(Equal(b.Name))
		Expect(a.UID).NotTo(BeEmpty())
		Expect(a.CreationTimestamp.IsZero()).To(BeFalse())
		// System fields a client sends are not kept.
		c, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sys", UID: "not-mine"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(string(c.UID)).NotTo(Equal("not-mine"))
	})

	It("allocates a Service's ClusterIP and node ports when server-side apply creates it, as when POST does", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-apply-service")
		svcs := target.Clientset().CoreV1().Services("conformance-apply-service")
		for name, spec := range map[string]string{
			"headless": `{"clusterIP":"None","selector":{"app":"db"},"ports":[{"port":5432}]}`,
			"plain":    `{"selector":{"app":"web"},"ports":[{"port":80}]}`,
			"nodeport": `{"type":"NodePort","selector":{"app":"web"},"ports":[{"port":80}]}`,
		} {
			body := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"` + name + `"},"spec":` + spec + `}`
			// A server-side dry run first: it allocates nothing for good.
			_, err := svcs.Patch(ctx, name, types.ApplyPatchType, []byte(body), metav1.PatchOptions{FieldManager: "conformance", DryRun: []string{metav1.DryRunAll}})
			Expect(err).NotTo(HaveOccurred(), name)
			svc, err := svcs.Patch(ctx, name, types.ApplyPatchType, []byte(body), metav1.PatchOptions{FieldManager: "conformance"})
			Expect(err).NotTo(HaveOccurred(), name)
			Expect(svc.Spec.ClusterIPs).To(Equal([]string{svc.Spec.ClusterIP}), name)
			if name == "headless" {
				Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
			} else {
				Expect(net.ParseIP(svc.Spec.ClusterIP)).NotTo(BeNil(), name)
			}
			if name == "nodeport" {
				Expect(svc.Spec.Ports[0].NodePort).To(BeNumerically(">=", 30000))
			}
		}
	})

	It("stores nothing on dryRun=All", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-dryrun")
		cs := target.Clientset()
		cms := cs.CoreV1().ConfigMaps("conformance-dryrun")
		dry, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		Expect(err).NotTo(HaveOccurred())
		Expect(dry.Name).To(Equal("dry"))
		_, err = cms.Get(ctx, "dry", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())

		real, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "real"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		real.Data["k"] = "dry"
		_, err = cms.Update(ctx, real, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		Expect(err).NotTo(HaveOccurred())
		Expect(cms.Delete(ctx, "real", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})).To(Succeed())
		got, err := cms.Get(ctx, "real", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data["k"]).To(Equal("v"))
		Expect(got.ResourceVersion).To(Equal(real.ResourceVersion))

		// A dry-run Service allocates nothing for good.
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dry"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80, NodePort: 31111}}}}
		_, err = cs.CoreV1().Services("conformance-dryrun").Create(ctx, svc, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		Expect(err).NotTo(HaveOccurred())
		_, err = cs.CoreV1().Services("conformance-dryrun").Create(ctx, svc, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("deletes a collection by label", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-deletecollection")
		cms := target.Clientset().CoreV1().ConfigMaps("conformance-deletecollection")
		for _, n := range []string{"a", "b", "c"} {
			labels := map[string]string{"drop": "yes"}
			if n == "c" {
				labels = nil
			}
			_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: labels}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(cms.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "drop=yes"})).To(Succeed())
		list, err := cms.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Name).To(Equal("c"))
	})

	It("binds pods to nodes through pods/binding, once", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-binding")
		pods := target.Clientset().CoreV1().Pods("conformance-binding")
		_, err := pods.Create(ctx, pod("bind-me"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "bind-me"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}
		Expect(pods.Bind(ctx, binding, metav1.CreateOptions{})).To(Succeed())
		bound, err := pods.Get(ctx, "bind-me", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(bound.Spec.NodeName).To(Equal("node-1"))
		Expect(bound.Status.Conditions).To(ContainElement(SatisfyAll(
			HaveField("Type", corev1.PodScheduled), HaveField("Status", corev1.ConditionTrue))))
		err = pods.Bind(ctx, binding, metav1.CreateOptions{})
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(`pod bind-me is already assigned to node "node-1"`))
		// Spec changes other than through binding are refused.
		bound.Spec.NodeName = "node-2"
		_, err = pods.Update(ctx, bound, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	})

	It("deletes a bound pod gracefully and a grace period of zero at once", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-graceful")
		pods := target.Clientset().CoreV1().Pods("conformance-graceful")
		p := pod("graceful")
		p.Spec.NodeName = "node-1"
		_, err := pods.Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pods.Delete(ctx, "graceful", metav1.DeleteOptions{})).To(Succeed())
		got, err := pods.Get(ctx, "graceful", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred(), "a bound pod waits for its kubelet")
		Expect(got.DeletionTimestamp).NotTo(BeNil())
		Expect(*got.DeletionGracePeriodSeconds).To(Equal(int64(30)))
		zero := int64(0)
		Expect(pods.Delete(ctx, "graceful", metav1.DeleteOptions{GracePeriodSeconds: &zero})).To(Succeed())
		_, err = pods.Get(ctx, "graceful", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
	})

	It("leaves the garbage collector's finalizer for foreground and orphan deletion", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-propagation")
		cms := target.Clientset().CoreV1().ConfigMaps("conformance-propagation")
		for policy, finalizer := range map[metav1.DeletionPropagation]string{
			metav1.DeletePropagationForeground: metav1.FinalizerDeleteDependents,
			metav1.DeletePropagationOrphan:     metav1.FinalizerOrphanDependents,
		} {
			name := strings.ToLower(string(policy))
			_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(cms.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy})).To(Succeed())
			got, err := cms.Get(ctx, name, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Finalizers).To(Equal([]string{finalizer}))
			Expect(got.DeletionTimestamp).NotTo(BeNil())
		}
		background := metav1.DeletePropagationBackground
		_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "background"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cms.Delete(ctx, "background", metav1.DeleteOptions{PropagationPolicy: &background})).To(Succeed())
		_, err = cms.Get(ctx, "background", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})

	It("refuses new objects in a terminating namespace", func(ctx SpecContext) {
		cs := target.Clientset()
		newNamespace(ctx, "conformance-terminating")
		Expect(cs.CoreV1().Namespaces().Delete(ctx, "conformance-terminating", metav1.DeleteOptions{})).To(Succeed())
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "conformance-terminating", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(ns.Status.Phase).To(Equal(corev1.NamespaceTerminating))
		_, err = cs.CoreV1().ConfigMaps("conformance-terminating").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("unable to create new content in namespace conformance-terminating because it is being terminated"))
		Expect(apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)).To(BeTrue())
	})

	It("allocates ClusterIPs and NodePorts with kube-apiserver's errors", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-services")
		svcs := target.Clientset().CoreV1().Services("conformance-services")
		kube, err := target.Clientset().CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(kube.Spec.Ports[0].Port).To(Equal(int32(443)))
		a, err := svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(a.Spec.ClusterIP).NotTo(Equal(kube.Spec.ClusterIP))
		Expect(a.Spec.ClusterIPs).To(Equal([]string{a.Spec.ClusterIP}))
		Expect(a.Spec.IPFamilies).To(Equal([]corev1.IPFamily{corev1.IPv4Protocol}))
		Expect(a.Spec.Ports[0].NodePort).To(BeNumerically(">=", 30000))

		_, err = svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80, NodePort: a.Spec.Ports[0].NodePort}}}}, metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("provided port is already allocated"))
		_, err = svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: corev1.ServiceSpec{ClusterIP: a.Spec.ClusterIP, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("provided IP is already allocated"))

		// Deleting a Service frees what it held.
		Expect(svcs.Delete(ctx, "a", metav1.DeleteOptions{})).To(Succeed())
		_, err = svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "d"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: a.Spec.ClusterIP, Ports: []corev1.ServicePort{{Port: 80, NodePort: a.Spec.Ports[0].NodePort}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("keeps a Service's ClusterIPs and NodePorts on updates that leave them out, and refuses to change them as kube-apiserver does", func(ctx SpecContext) {
		const ns = "conformance-service-updates"
		newNamespace(ctx, ns)
		svcs := target.Clientset().CoreV1().Services(ns)
		ports := []corev1.ServicePort{{Name: "http", Port: 80}}
		svc, err := svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: ports}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		// An update from a manifest without the allocated values (kubectl
		// replace) keeps them.
		got, err := svcs.Update(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", ResourceVersion: svc.ResourceVersion, Labels: map[string]string{"tier": "front"}},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: ports},
		}, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Labels).To(HaveKeyWithValue("tier", "front"))
		Expect(got.Spec.ClusterIP).To(Equal(svc.Spec.ClusterIP))
		Expect(got.Spec.ClusterIPs).To(Equal(svc.Spec.ClusterIPs))
		Expect(got.Spec.Ports[0].NodePort).To(Equal(svc.Spec.Ports[0].NodePort))

		// A patch of the singular clusterIP: the plural follows it, and
		// validation refuses the change on clusterIPs[0].
		other := "10.96.0.77"
		if svc.Spec.ClusterIP == other {
			other = "10.96.0.78"
		}
		_, err = svcs.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"clusterIP":"`+other+`"}}`), metav1.PatchOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		status := err.(apierrors.APIStatus).Status()
		Expect(status.Details.Causes).To(ConsistOf(SatisfyAll(
			HaveField("Type", metav1.CauseTypeFieldValueInvalid),
			HaveField("Field", "spec.clusterIPs[0]"),
			HaveField("Message", `Invalid value: ["`+other+`"]: may not change once set`),
		)))
		r := target.Kubectl(ctx, "", "-n", ns, "patch", "svc", "web", "--type=merge", "-p", `{"spec":{"clusterIP":"`+other+`"}}`)
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring(`spec.clusterIPs[0]: Invalid value: ["` + other + `"]: may not change once set`))
		after, err := svcs.Get(ctx, "web", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(after.Spec.ClusterIPs).To(Equal(svc.Spec.ClusterIPs))
	})

	It("allocates and frees ClusterIPs and NodePorts when an update changes a Service's type", func(ctx SpecContext) {
		const ns = "conformance-service-types"
		newNamespace(ctx, ns)
		svcs := target.Clientset().CoreV1().Services(ns)
		svc, err := svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "t"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(svc.Spec.ClusterIP).To(BeEmpty())

		By("ExternalName to ClusterIP: a ClusterIP is allocated")
		svc.Spec.Type, svc.Spec.ExternalName = corev1.ServiceTypeClusterIP, ""
		svc.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9376)}}
		svc, err = svcs.Update(ctx, svc, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(net.ParseIP(svc.Spec.ClusterIP)).NotTo(BeNil(), "clusterIP %q", svc.Spec.ClusterIP)
		Expect(svc.Spec.ClusterIPs).To(Equal([]string{svc.Spec.ClusterIP}))
		Expect(svc.Spec.IPFamilies).To(Equal([]corev1.IPFamily{corev1.IPv4Protocol}))
		ip := svc.Spec.ClusterIP

		By("ClusterIP to NodePort: a node port is allocated")
		svc, err = svcs.Patch(ctx, "t", types.MergePatchType, []byte(`{"spec":{"type":"NodePort"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		nodePort := svc.Spec.Ports[0].NodePort
		Expect(nodePort).To(BeNumerically(">=", 30000))
		_, err = svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "taken"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80, NodePort: nodePort}}}}, metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "the node port is held: %v", err)

		By("NodePort to ClusterIP: the node port is freed")
		svc, err = svcs.Patch(ctx, "t", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/type","value":"ClusterIP"},{"op":"remove","path":"/spec/ports/0/nodePort"}]`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(svc.Spec.Ports[0].NodePort).To(BeZero())
		_, err = svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "np"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80, NodePort: nodePort}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("ClusterIP to ExternalName: the ClusterIP is freed")
		svc, err = svcs.Patch(ctx, "t", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/type","value":"ExternalName"},{"op":"add","path":"/spec/externalName","value":"example.org"},{"op":"remove","path":"/spec/clusterIP"},{"op":"remove","path":"/spec/clusterIPs"}]`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(svc.Spec.ClusterIP).To(BeEmpty())
		_, err = svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ip"}, Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("accepts privileged containers, as kubeadm's kube-apiserver (--allow-privileged=true)", func(ctx SpecContext) {
		const ns = "conformance-privileged"
		newNamespace(ctx, ns)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "privileged"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "c", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
			}}},
		}
		got, err := target.Clientset().CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		Expect(err).NotTo(HaveOccurred())
		Expect(*got.Spec.Containers[0].SecurityContext.Privileged).To(BeTrue())
	})

	It("selects PodCertificateRequests and ClusterTrustBundles by spec.signerName, as signers and the kubelet watch them", func(ctx SpecContext) {
		cs := target.Clientset()
		sel := metav1.ListOptions{FieldSelector: "spec.signerName=example.com/conformance"}
		_, err := cs.CertificatesV1().PodCertificateRequests("default").List(ctx, sel)
		Expect(err).NotTo(HaveOccurred())
		_, err = cs.CertificatesV1().ClusterTrustBundles().List(ctx, sel)
		Expect(err).NotTo(HaveOccurred())
		_, err = cs.CertificatesV1().PodCertificateRequests("default").List(ctx, metav1.ListOptions{FieldSelector: "spec.noSuchField=x"})
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "%v", err)
	})

	It("answers in YAML when asked", func(ctx SpecContext) {
		client, err := rest.HTTPClientFor(target.Config)
		Expect(err).NotTo(HaveOccurred())
		req, _ := http.NewRequestWithContext(ctx, "GET", target.Config.Host+"/api/v1/namespaces/default", nil)
		req.Header.Set("Accept", "application/yaml")
		resp, err := client.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		Expect(resp.Header.Get("Content-Type")).To(Equal("application/yaml"))
	})

	It("serves health, version and discovery", func(ctx SpecContext) {
		client, err := rest.HTTPClientFor(target.Config)
		Expect(err).NotTo(HaveOccurred())
		for _, path := range []string{"/healthz", "/livez", "/readyz"} {
			resp, err := client.Get(target.Config.Host + path)
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusOK), path)
		}
		v, err := target.Clientset().Discovery().ServerVersion()
		Expect(err).NotTo(HaveOccurred())
		Expect([]string{v.Major, v.Minor, v.GitVersion}).To(Equal([]string{"1", "37", "v1.37.2"}))
		groups, err := target.Clientset().Discovery().ServerGroups()
		Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, g := range groups.Groups {
			names = append(names, g.Name)
		}
		Expect(names).To(ContainElements("", "apps", "batch", "rbac.authorization.k8s.io", "resource.k8s.io"))
		apps, err := target.Clientset().Discovery().ServerResourcesForGroupVersion("apps/v1")
		Expect(err).NotTo(HaveOccurred())
		Expect(apps.APIResources).To(ContainElement(SatisfyAll(HaveField("Name", "deployments"), HaveField("ShortNames", []string{"deploy"}), HaveField("Categories", []string{"all"}))))
	})

	It("lists its health checks as kube-apiserver does: /livez, /readyz and /healthz with verbose, exclude and one check", func(ctx SpecContext) {
		client, err := rest.HTTPClientFor(target.Config)
		Expect(err).NotTo(HaveOccurred())
		get := func(path string) (int, string) {
			GinkgoHelper()
			resp, err := client.Get(target.Config.Host + path)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			Expect(err).NotTo(HaveOccurred())
			return resp.StatusCode, string(body)
		}
		checks := func(body string) []string {
			var names []string
			for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
				if name, ok := strings.CutPrefix(line, "[+]"); ok {
					names = append(names, strings.TrimSuffix(name, " ok"))
				}
			}
			return names
		}
		for _, endpoint := range []string{"livez", "readyz", "healthz"} {
			code, body := get("/" + endpoint + "?verbose")
			Expect(code).To(Equal(http.StatusOK), body)
			Expect(body).To(HaveSuffix("\n" + endpoint + " check passed\n"))
			names := checks(body)
			Expect(names[:2]).To(Equal([]string{"ping", "log"}), body)
			Expect(names).To(ContainElements("etcd", "poststarthook/start-apiserver-admission-initializer", "poststarthook/rbac/bootstrap-roles",
				"poststarthook/scheduling/bootstrap-system-priority-classes", "poststarthook/start-apiextensions-controllers", "poststarthook/crd-informer-synced"), body)
			if endpoint == "readyz" {
				Expect(names).To(ContainElements("etcd-readiness", "informer-sync"), body)
				Expect(names[len(names)-1]).To(Equal("shutdown"), body)
			} else {
				Expect(names).NotTo(ContainElement("shutdown"), body)
			}
			code, body = get("/" + endpoint)
			Expect([]any{code, body}).To(Equal([]any{http.StatusOK, "ok"}))
			code, body = get("/" + endpoint + "?verbose&exclude=etcd")
			Expect(code).To(Equal(http.StatusOK), body)
			Expect(body).To(ContainSubstring("\n[+]etcd excluded: ok\n"))
			code, body = get("/" + endpoint + "/poststarthook/rbac/bootstrap-roles")
			Expect([]any{code, body}).To(Equal([]any{http.StatusOK, "ok"}))
			code, _ = get("/" + endpoint + "/no-such-check")
			Expect(code).To(Equal(http.StatusNotFound))
		}
	})

	It("answers access and identity reviews", func(ctx SpecContext) {
		cs := target.Clientset()
		ssar, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: "default"}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(ssar.Status.Allowed).To(BeTrue())
		ssr, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(ssr.Status.UserInfo.Groups).To(ContainElement("system:authenticated"))
		Expect(kubectl(ctx, "auth", "can-i", "create", "deployments")).To(Equal("yes\n"))
		r := target.Kubectl(ctx, "", "auth", "can-i", "delete", "nodes", "--as=someone")
		Expect(r.Stdout).To(Equal("no\n"))
	})

	It("is a different user to a client with no credential", func(ctx SpecContext) {
		anon := rest.AnonymousClientConfig(target.Config)
		client, err := rest.HTTPClientFor(anon)
		Expect(err).NotTo(HaveOccurred())
		resp, err := client.Get(anon.Host + "/api/v1/namespaces")
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusForbidden))
		var status metav1.Status
		Expect(json.NewDecoder(resp.Body).Decode(&status)).To(Succeed())
		Expect(status.Message).To(Equal(`namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" in API group "" at the cluster scope`))
		resp, err = client.Get(anon.Host + "/version")
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
	})
})

var _ = Describe("API semantics, continued", func() {
	It("creates, conflicts and forces with server-side apply", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-ssa")
		manifest := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa","namespace":"conformance-ssa"},"data":{"a":"1"}}`
		Expect(kubectlIn(ctx, manifest, "apply", "--server-side", "-f", "-")).To(ContainSubstring("serverside-applied"))
		kubectl(ctx, "-n", "conformance-ssa", "patch", "configmap", "ssa", "--type=merge", "-p", `{"data":{"a":"2"}}`, "--field-manager=other")
		r := target.Kubectl(ctx, manifest, "apply", "--server-side", "-f", "-")
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring(`conflict with "other"`))
		Expect(r.Stderr).To(ContainSubstring(".data.a"))
		Expect(kubectl(ctx, "-n", "conformance-ssa", "get", "configmap", "ssa", "-o", "jsonpath={.data.a}")).To(Equal("2"))
		kubectlIn(ctx, manifest, "apply", "--server-side", "--force-conflicts", "-f", "-")
		Expect(kubectl(ctx, "-n", "conformance-ssa", "get", "configmap", "ssa", "-o", "jsonpath={.data.a}")).To(Equal("1"))
		cm, err := target.Clientset().CoreV1().ConfigMaps("conformance-ssa").Get(ctx, "ssa", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cm.ManagedFields).To(ContainElement(SatisfyAll(HaveField("Manager", "kubectl"), HaveField("Operation", metav1.ManagedFieldsOperationApply))))
	})

	It("speaks protobuf to client-go, as the genuine controllers do", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-protobuf")
		cfg := rest.CopyConfig(target.Config)
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
		cms := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("conformance-protobuf")
		w, err := cms.Watch(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pb"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		cm.Data["k"] = "w"
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := cms.Get(ctx, "pb", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(Equal(map[string]string{"k": "w"}))
		list, err := cms.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(next(w).Type).To(Equal(watch.Added))
		Expect(next(w).Type).To(Equal(watch.Modified))
	})
})

var _ = Describe("kubesim up", func() {
	BeforeEach(func() {
		if !target.IsKubesim() {
			Skip("starts its own kubesim")
		}
	})

	It("writes its kubeconfig once it serves and exits 0 on SIGINT", func(ctx SpecContext) {
		t, err := framework.StartKubesim(ctx)
		Expect(err).NotTo(HaveOccurred())
		// The kubeconfig exists only once the server is ready: the first
		// request through it succeeds.
		_, err = t.Clientset().CoreV1().Namespaces().Get(ctx, "kube-node-lease", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(t.StopWith(syscall.SIGINT, 30*time.Second)).To(Succeed())
	})
})
