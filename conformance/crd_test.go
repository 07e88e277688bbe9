package conformance_test

import (
	"encoding/json"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// widgetCRD reads testdata/crds/widgets.yaml.
func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	GinkgoHelper()
	b, err := os.ReadFile(testdata("crds", "widgets.yaml"))
	Expect(err).NotTo(HaveOccurred())
	crd := &apiextensionsv1.CustomResourceDefinition{}
	Expect(yaml.UnmarshalStrict(b, crd)).To(Succeed())
	return crd
}

// statusCauses are the field causes of an API error, as "field: type".
func statusCauses(err error) []string {
	var out []string
	if s, ok := err.(apierrors.APIStatus); ok && s.Status().Details != nil {
		for _, c := range s.Status().Details.Causes {
			out = append(out, c.Field+": "+string(c.Type))
		}
	}
	return out
}

var _ = Describe("custom resources", Ordered, func() {
	const (
		ns    = "conformance-crd"
		group = "example.kubesim.io"
	)
	var (
		crds    apiextensionsclient.Interface
		dyn     dynamic.Interface
		widgets dynamic.ResourceInterface
		gvr     = schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}
	)
	widget := func(name string, spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": group + "/v1", "kind": "Widget",
			"metadata": map[string]any{"name": name},
			"spec":     spec,
		}}
	}

	// deleteWidgetsCRD deletes the CRD and waits until it is gone and
	// discovery no longer serves its group.
	deleteWidgetsCRD := func(ctx SpecContext) {
		GinkgoHelper()
		Expect(crds.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, "widgets."+group, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() bool {
			_, err := crds.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets."+group, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(30 * time.Second).Should(BeTrue())
		Eventually(func() error {
			_, err := target.Clientset().Discovery().ServerResourcesForGroupVersion(group + "/v1")
			return err
		}).WithTimeout(10 * time.Second).Should(MatchError(ContainSubstring("the server could not find the requested resource")))
	}

	BeforeAll(func(ctx SpecContext) {
		crds = apiextensionsclient.NewForConfigOrDie(target.Config)
		dyn = target.Dynamic()
		widgets = dyn.Resource(gvr).Namespace(ns)
		newNamespace(ctx, ns)
		kubectl(ctx, "apply", "-f", testdata("crds", "widgets.yaml"))
		kubectl(ctx, "wait", "--for=condition=Established", "crd/widgets."+group, "--timeout=30s")
		// The last spec deletes the CRD; if it did not run (a focused
		// run) or failed, the CRD goes here.
		DeferCleanup(func(ctx SpecContext) {
			if _, err := crds.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets."+group, metav1.GetOptions{}); err == nil {
				deleteWidgetsCRD(ctx)
			}
		})
	})

	It("accepts the names and serves the CRD in discovery and OpenAPI", func(ctx SpecContext) {
		crd, err := crds.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets."+group, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		conditions := map[apiextensionsv1.CustomResourceDefinitionConditionType]apiextensionsv1.CustomResourceDefinitionCondition{}
		for _, c := range crd.Status.Conditions {
			conditions[c.Type] = c
		}
		Expect(conditions[apiextensionsv1.NamesAccepted].Status).To(Equal(apiextensionsv1.ConditionTrue))
		Expect(conditions[apiextensionsv1.NamesAccepted].Reason).To(Equal("NoConflicts"))
		Expect(conditions[apiextensionsv1.Established].Status).To(Equal(apiextensionsv1.ConditionTrue))
		Expect(conditions[apiextensionsv1.Established].Reason).To(Equal("InitialNamesAccepted"))
		Expect(crd.Status.AcceptedNames.ShortNames).To(Equal([]string{"wd"}))
		Expect(crd.Status.StoredVersions).To(Equal([]string{"v1"}))

		// Legacy and aggregated discovery (kubectl api-resources reads the
		// latter), preferred version first.
		list, err := target.Clientset().Discovery().ServerResourcesForGroupVersion(group + "/v1")
		Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, r := range list.APIResources {
			names = append(names, r.Name)
		}
		Expect(names).To(ConsistOf("widgets", "widgets/status", "widgets/scale"))
		Expect(kubectl(ctx, "api-resources", "--api-group", group, "--no-headers")).To(MatchRegexp(`^widgets\s+wd\s+example.kubesim.io/v1\s+true\s+Widget\n$`))
		Expect(strings.Fields(kubectl(ctx, "api-versions"))).To(ContainElements(group+"/v1", group+"/v1beta1"))

		// kubectl explain reads /openapi/v3, which kube-apiserver's OpenAPI
		// controller updates shortly after the CRD is established.
		var explain string
		Eventually(func() error {
			r := target.Kubectl(ctx, "", "explain", "widgets.spec.size")
			explain = r.Stdout
			return r.Err
		}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(explain).To(ContainSubstring("GROUP:      example.kubesim.io"))
		Expect(explain).To(ContainSubstring("FIELD: size <string>"))
		Expect(explain).To(ContainSubstring(`ENUM:`))
		// /openapi/v2 merges the CRD in, as kube-apiserver's aggregator does.
		Eventually(func() (string, error) {
			v2, err := target.Clientset().Discovery().RESTClient().Get().AbsPath("/openapi/v2").SetHeader("Accept", "application/json").DoRaw(ctx)
			return string(v2), err
		}).WithTimeout(10 * time.Second).Should(ContainSubstring(`"io.kubesim.example.v1.Widget"`))
	})

	It("defaults, prunes and validates objects as the structural schema says", func(ctx SpecContext) {
		created, err := widgets.Create(ctx, widget("defaults", map[string]any{"unknown": "pruned", "port": "http"}), metav1.CreateOptions{FieldValidation: "Ignore"})
		Expect(err).NotTo(HaveOccurred())
		spec := created.Object["spec"].(map[string]any)
		Expect(spec).To(Equal(map[string]any{"size": "small", "replicas": int64(1), "maxReplicas": int64(10), "port": "http"}))
		Expect(created.GetGeneration()).To(Equal(int64(1)))

		_, err = widgets.Create(ctx, widget("strict", map[string]any{"bogus": true}), metav1.CreateOptions{FieldValidation: "Strict"})
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.bogus"`))

		_, err = widgets.Create(ctx, widget("invalid", map[string]any{"size": "huge", "replicas": -1}), metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		// The schema's errors, the scale subresource's replicas check, and
		// the CEL rules left unchecked.
		Expect(statusCauses(err)).To(ConsistOf("spec.replicas: FieldValueInvalid", "spec.size: FieldValueNotSupported", ".spec.replicas: FieldValueInvalid", "<nil>: FieldValueInvalid"))
		Expect(err.Error()).To(ContainSubstring(`spec.size: Unsupported value: "huge": supported values: "small", "medium", "large"`))
		Expect(err.Error()).To(ContainSubstring(`spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0`))
		_, err = widgets.Get(ctx, "invalid", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})

	It("enforces CEL validation rules, transition rules included", func(ctx SpecContext) {
		_, err := widgets.Create(ctx, widget("cel", map[string]any{"replicas": 20, "maxReplicas": 5}), metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`Widget.example.kubesim.io "cel" is invalid: spec: Invalid value: replicas must not exceed maxReplicas`))

		created, err := widgets.Create(ctx, widget("cel", map[string]any{"size": "medium"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(unstructured.SetNestedField(created.Object, "large", "spec", "size")).To(Succeed())
		_, err = widgets.Update(ctx, created, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`Widget.example.kubesim.io "cel" is invalid: spec: Invalid value: size is immutable`))
	})

	It("serves the status and scale subresources", func(ctx SpecContext) {
		created, err := widgets.Create(ctx, widget("sub", map[string]any{"replicas": 2}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// A write of the object leaves its status alone, and the other way round.
		Expect(unstructured.SetNestedField(created.Object, "Ignored", "status", "phase")).To(Succeed())
		updated, err := widgets.Update(ctx, created, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Object).NotTo(HaveKey("status"))
		Expect(unstructured.SetNestedField(updated.Object, "Ready", "status", "phase")).To(Succeed())
		Expect(unstructured.SetNestedField(updated.Object, int64(2), "status", "replicas")).To(Succeed())
		Expect(unstructured.SetNestedField(updated.Object, "app=sub", "status", "selector")).To(Succeed())
		Expect(unstructured.SetNestedField(updated.Object, int64(9), "spec", "replicas")).To(Succeed())
		status, err := widgets.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(status.Object["status"]).To(Equal(map[string]any{"phase": "Ready", "replicas": int64(2), "selector": "app=sub"}))
		Expect(status.Object["spec"].(map[string]any)["replicas"]).To(Equal(int64(2)))
		Expect(status.GetGeneration()).To(Equal(int64(1)))

		Expect(kubectl(ctx, "scale", "-n", ns, "widget/sub", "--replicas=4")).To(Equal("widget.example.kubesim.io/sub scaled\n"))
		scale, err := widgets.Get(ctx, "sub", metav1.GetOptions{}, "scale")
		Expect(err).NotTo(HaveOccurred())
		Expect(scale.GetKind()).To(Equal("Scale"))
		Expect(scale.Object["spec"]).To(Equal(map[string]any{"replicas": int64(4)}))
		Expect(scale.Object["status"]).To(Equal(map[string]any{"replicas": int64(2), "selector": "app=sub"}))
		got, err := widgets.Get(ctx, "sub", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.GetGeneration()).To(Equal(int64(2)))
		// Scaling past maxReplicas is refused by the CEL rule.
		r := target.Kubectl(ctx, "", "scale", "-n", ns, "widget/sub", "--replicas=11")
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring("replicas must not exceed maxReplicas"))
	})

	It("prints the additional printer columns", func(ctx SpecContext) {
		_, err := widgets.Create(ctx, widget("printed", map[string]any{"size": "large", "replicas": 3}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		out := kubectl(ctx, "get", "-n", ns, "widgets", "printed")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(lines).To(HaveLen(2))
		Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "SIZE", "REPLICAS", "AGE"}))
		Expect(strings.Fields(lines[1])[:3]).To(Equal([]string{"printed", "large", "3"}))
		// kubectl get all includes the category.
		Expect(kubectl(ctx, "get", "all", "-n", ns, "-o", "name")).To(ContainSubstring("widget.example.kubesim.io/printed"))
	})

	It("serves every version, converted, and warns on deprecated ones", func(ctx SpecContext) {
		_, err := widgets.Create(ctx, widget("versions", map[string]any{"size": "medium"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var warnings []string
		cfg := rest.CopyConfig(target.Config)
		cfg.WarningHandler = warningFunc(func(_ int, _ string, text string) { warnings = append(warnings, text) })
		beta := dynamic.NewForConfigOrDie(cfg).Resource(schema.GroupVersionResource{Group: group, Version: "v1beta1", Resource: "widgets"}).Namespace(ns)
		got, err := beta.Get(ctx, "versions", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.GetAPIVersion()).To(Equal(group + "/v1beta1"))
		Expect(got.Object["spec"].(map[string]any)["size"]).To(Equal("medium"))
		Expect(warnings).To(ContainElement("example.kubesim.io/v1beta1 Widget is deprecated; use example.kubesim.io/v1 Widget"))
		// Written through v1beta1, stored at v1.
		got.SetLabels(map[string]string{"via": "v1beta1"})
		_, err = beta.Update(ctx, got, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		v1, err := widgets.Get(ctx, "versions", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(v1.GetLabels()).To(HaveKeyWithValue("via", "v1beta1"))
		Expect(v1.GetAPIVersion()).To(Equal(group + "/v1"))
	})

	It("merges map-keyed lists under server-side apply and reports conflicts", func(ctx SpecContext) {
		apply := func(manager string, force bool, ports ...string) error {
			var items []any
			for _, p := range ports {
				items = append(items, map[string]any{"name": p, "port": int64(len(p))})
			}
			obj := widget("applied", map[string]any{"ports": items})
			b, err := json.Marshal(obj.Object)
			Expect(err).NotTo(HaveOccurred())
			_, err = widgets.Patch(ctx, "applied", types.ApplyPatchType, b, metav1.PatchOptions{FieldManager: manager, Force: ptr.To(force)})
			return err
		}
		Expect(apply("alice", false, "http")).To(Succeed())
		Expect(apply("bob", false, "metrics")).To(Succeed())
		got, err := widgets.Get(ctx, "applied", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		ports, _, _ := unstructured.NestedSlice(got.Object, "spec", "ports")
		Expect(ports).To(HaveLen(2))
		var managers []string
		for _, m := range got.GetManagedFields() {
			managers = append(managers, m.Manager)
		}
		Expect(managers).To(ConsistOf("alice", "bob"))

		// Both own spec.size's default? No: a conflict comes from a field
		// another manager set to another value.
		obj := widget("applied", map[string]any{"ports": []any{map[string]any{"name": "http", "port": int64(99)}}})
		b, _ := json.Marshal(obj.Object)
		_, err = widgets.Patch(ctx, "applied", types.ApplyPatchType, b, metav1.PatchOptions{FieldManager: "bob"})
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(`conflict with "alice": .spec.ports[name="http"].port`))
	})

	It("watches custom resources", func(ctx SpecContext) {
		w, err := widgets.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=watched"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		_, err = widgets.Create(ctx, widget("watched", map[string]any{}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(widgets.Delete(ctx, "watched", metav1.DeleteOptions{})).To(Succeed())
		var events []watch.EventType
		for len(events) < 2 {
			select {
			case e := <-w.ResultChan():
				events = append(events, e.Type)
				Expect(e.Object.(*unstructured.Unstructured).GetName()).To(Equal("watched"))
			case <-time.After(10 * time.Second):
				Fail("no watch event within 10s")
			}
		}
		Expect(events).To(Equal([]watch.EventType{watch.Added, watch.Deleted}))
	})

	It("refuses invalid CRDs with kube-apiserver's causes", func(ctx SpecContext) {
		client := crds.ApiextensionsV1().CustomResourceDefinitions()

		misnamed := widgetCRD()
		misnamed.Name = "gadgets." + group
		_, err := client.Create(ctx, misnamed, metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(`metadata.name: Invalid value: "gadgets.example.kubesim.io": must be spec.names.plural+"."+spec.group`))

		nonStructural := widgetCRD()
		props := nonStructural.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
		props.Type = ""
		nonStructural.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = props
		_, err = client.Create(ctx, nonStructural, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(statusCauses(err)).To(ContainElement("spec.versions[0].schema.openAPIV3Schema.properties[spec].type: FieldValueRequired"))

		badCEL := widgetCRD()
		props = badCEL.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
		props.XValidations[0].Rule = "self.replicas <="
		badCEL.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = props
		_, err = client.Create(ctx, badCEL, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(statusCauses(err)).To(ContainElement("spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: FieldValueInvalid"))
		Expect(err.Error()).To(ContainSubstring("compilation failed"))

		// Another CRD may not take a kind its group already serves.
		clash := widgetCRD()
		clash.Name = "gizmos." + group
		clash.Spec.Names.Plural, clash.Spec.Names.Singular, clash.Spec.Names.ListKind, clash.Spec.Names.ShortNames = "gizmos", "gizmo", "GizmoList", nil
		_, err = client.Create(ctx, clash, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { _ = client.Delete(ctx, clash.Name, metav1.DeleteOptions{}) })
		Eventually(func(g Gomega) {
			got, err := client.Get(ctx, clash.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			var accepted *apiextensionsv1.CustomResourceDefinitionCondition
			for i := range got.Status.Conditions {
				if got.Status.Conditions[i].Type == apiextensionsv1.NamesAccepted {
					accepted = &got.Status.Conditions[i]
				}
			}
			g.Expect(accepted).NotTo(BeNil())
			g.Expect(accepted.Status).To(Equal(apiextensionsv1.ConditionFalse))
			g.Expect(accepted.Reason).To(Equal("KindConflict"))
			g.Expect(accepted.Message).To(Equal(`"Widget" is already in use`))
		}).WithTimeout(10 * time.Second).Should(Succeed())
	})

	It("removes a deleted CRD's objects, then the CRD and its discovery", func(ctx SpecContext) {
		list, err := widgets.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).NotTo(BeEmpty())
		deleteWidgetsCRD(ctx)
		_, err = widgets.List(ctx, metav1.ListOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		// Created again, it serves none of the old objects.
		kubectl(ctx, "apply", "-f", testdata("crds", "widgets.yaml"))
		kubectl(ctx, "wait", "--for=condition=Established", "crd/widgets."+group, "--timeout=30s")
		Eventually(func() ([]unstructured.Unstructured, error) {
			l, err := widgets.List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			return l.Items, nil
		}).WithTimeout(10 * time.Second).Should(BeEmpty())
		// Gone, with its discovery, before the next container: the golden
		// files of kubectl api-resources and api-versions list the
		// cluster's groups.
		deleteWidgetsCRD(ctx)
	})
})
