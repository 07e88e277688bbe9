package operator_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	webappv1 "github.com/kubesim/kubesim/testdata/operator/api/v1"
)

// newNamespace creates a namespace of its own for a spec.
func newNamespace(ctx SpecContext) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "website-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func website(ns, name string, replicas *int32) *webappv1.Website {
	return &webappv1.Website{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       webappv1.WebsiteSpec{Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Replicas: replicas},
	}
}

var _ = Describe("Website", func() {
	It("runs as a Deployment and a Service it owns, and reports them available", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		site := website(ns, "shop", ptr.To[int32](2))
		Expect(k8sClient.Create(ctx, site)).To(Succeed())

		var deployment appsv1.Deployment
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, &deployment)
		}).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(metav1.IsControlledBy(&deployment, site)).To(BeTrue())
		Expect(deployment.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort).To(Equal(int32(8080)))

		var service corev1.Service
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, &service)
		}).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(metav1.IsControlledBy(&service, site)).To(BeTrue())
		Expect(service.Spec.ClusterIP).NotTo(BeEmpty())

		// Scheduled and run by the cluster's nodes, the pods become
		// available; the operator reports it.
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(site), site)).To(Succeed())
			g.Expect(site.Status.AvailableReplicas).To(Equal(int32(2)))
			g.Expect(meta.IsStatusConditionTrue(site.Status.Conditions, "Available")).To(BeTrue())
		}).WithTimeout(time.Minute).Should(Succeed())
	})

	It("is defaulted and validated by its webhooks", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		site := website(ns, "defaulted", nil)
		Expect(k8sClient.Create(ctx, site)).To(Succeed())
		Expect(site.Spec.Replicas).To(Equal(ptr.To[int32](1)))
		Expect(site.Spec.Port).To(Equal(int32(8080)))

		err := k8sClient.Create(ctx, website(ns, "too-big", ptr.To[int32](20)))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`admission webhook "vwebsite-v1.kb.io" denied the request: Website.webapp.kubesim.io "too-big" is invalid: spec.replicas: Invalid value: 20: must be at most 10`))

		// The CRD's schema still applies.
		err = k8sClient.Create(ctx, &webappv1.Website{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-image"}})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("spec.image: Invalid value: \"\": spec.image in body should be at least 1 chars long"))
	})

	It("has what it created garbage-collected when it is deleted", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		site := website(ns, "gone", nil)
		Expect(k8sClient.Create(ctx, site)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "gone"}, &corev1.Service{})
		}).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "gone"}, &appsv1.Deployment{})).To(Succeed())

		Expect(k8sClient.Delete(ctx, site)).To(Succeed())
		for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}} {
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "gone"}, obj))
			}).WithTimeout(30*time.Second).Should(BeTrue(), fmt.Sprintf("%T not collected", obj))
		}
	})

	It("goes with its namespace", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		Expect(k8sClient.Create(ctx, website(ns, "doomed", ptr.To[int32](1)))).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "doomed"}, &appsv1.Deployment{})
		}).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Name: ns}, &corev1.Namespace{}))
		}).WithTimeout(time.Minute).Should(BeTrue())
		var sites webappv1.WebsiteList
		Expect(k8sClient.List(ctx, &sites, client.InNamespace(ns))).To(Succeed())
		Expect(sites.Items).To(BeEmpty(), "Websites of the deleted namespace %s", ns)
	})
})
