package conformance_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// APIServices, as kube-aggregator registers and marks them in
// kube-apiserver.
var _ = Describe("aggregation", func() {
	apiServices := schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
	available := func(g Gomega, svc *unstructured.Unstructured, reason string) {
		conds, _, _ := unstructured.NestedSlice(svc.Object, "status", "conditions")
		g.Expect(conds).To(ContainElement(And(HaveKeyWithValue("type", "Available"), HaveKeyWithValue("status", "True"), HaveKeyWithValue("reason", reason))), svc.GetName())
	}

	It("lists an APIService for every group version the server serves, with kube-apiserver's priorities, all Available", func(ctx SpecContext) {
		list, err := target.Dynamic().Resource(apiServices).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		byName := map[string]*unstructured.Unstructured{}
		for i := range list.Items {
			byName[list.Items[i].GetName()] = &list.Items[i]
		}
		for _, name := range []string{"v1.", "v1.admissionregistration.k8s.io", "v1.apiextensions.k8s.io", "v1.apps", "v1.authentication.k8s.io",
			"v1.authorization.k8s.io", "v1.autoscaling", "v1.batch", "v1.certificates.k8s.io", "v1.coordination.k8s.io", "v1.discovery.k8s.io",
			"v1.events.k8s.io", "v1.flowcontrol.apiserver.k8s.io", "v1.networking.k8s.io", "v1.node.k8s.io", "v1.policy",
			"v1.rbac.authorization.k8s.io", "v1.resource.k8s.io", "v1.scheduling.k8s.io", "v1.storage.k8s.io", "v1.storagemigration.k8s.io", "v2.autoscaling"} {
			svc, ok := byName[name]
			Expect(ok).To(BeTrue(), "APIService %s", name)
			available(Default, svc, "Local")
			Expect(svc.GetLabels()).To(HaveKeyWithValue("kube-aggregator.kubernetes.io/automanaged", "onstart"))
		}
		apps, _, _ := unstructured.NestedInt64(byName["v1.apps"].Object, "spec", "groupPriorityMinimum")
		Expect(apps).To(BeEquivalentTo(17800))
		v2, _, _ := unstructured.NestedInt64(byName["v2.autoscaling"].Object, "spec", "versionPriority")
		Expect(v2).To(BeEquivalentTo(30))
	})

	It("registers an APIService for each version of a CustomResourceDefinition, and removes it with the CRD", func(ctx SpecContext) {
		crds := apiextensionsclient.NewForConfigOrDie(target.Config).ApiextensionsV1().CustomResourceDefinitions()
		schemaProps := &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptrTo(true)}
		crd := &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: "gizmos.aggregation.kubesim.io"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "aggregation.kubesim.io", Scope: apiextensionsv1.NamespaceScoped,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "gizmos", Singular: "gizmo", Kind: "Gizmo", ListKind: "GizmoList"},
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
					{Name: "v1", Served: true, Storage: true, Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: schemaProps}},
					{Name: "v1beta1", Served: true, Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: schemaProps}},
				},
			},
		}
		_, err := crds.Create(ctx, crd, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { _ = crds.Delete(ctx, crd.Name, metav1.DeleteOptions{}) })
		for _, name := range []string{"v1.aggregation.kubesim.io", "v1beta1.aggregation.kubesim.io"} {
			Eventually(func(g Gomega) {
				svc, err := target.Dynamic().Resource(apiServices).Get(ctx, name, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				available(g, svc, "Local")
				g.Expect(svc.GetLabels()).To(HaveKeyWithValue("kube-aggregator.kubernetes.io/automanaged", "true"))
				group, _, _ := unstructured.NestedInt64(svc.Object, "spec", "groupPriorityMinimum")
				g.Expect(group).To(BeEquivalentTo(1000))
			}).WithTimeout(30 * time.Second).Should(Succeed())
		}
		Expect(crds.Delete(ctx, crd.Name, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() bool {
			_, err := target.Dynamic().Resource(apiServices).Get(ctx, "v1.aggregation.kubesim.io", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(30 * time.Second).Should(BeTrue())
	})
})

func ptrTo[T any](v T) *T { return &v }
