package conformance_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/internal/pki"
)

// admissionServer is the webhook the specs register: one path a behaviour.
type admissionServer struct {
	url string
	ca  []byte

	mu    sync.Mutex
	calls map[string][]admissionv1.AdmissionRequest
}

func (s *admissionServer) record(path string, req *admissionv1.AdmissionRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[path] = append(s.calls[path], *req)
}

func (s *admissionServer) callsOf(path string) []admissionv1.AdmissionRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]admissionv1.AdmissionRequest(nil), s.calls[path]...)
}

// review answers an AdmissionReview with what respond says.
func (s *admissionServer) review(path string, respond func(req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		s.record(path, review.Request)
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		respond(review.Request, resp)
		review.Response, review.Request = resp, nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	}
}

func jsonPatch(ops ...map[string]any) []byte {
	b, _ := json.Marshal(ops)
	return b
}

func startAdmissionServer() *admissionServer {
	GinkgoHelper()
	ca, err := pki.NewCA("conformance-webhook-ca")
	Expect(err).NotTo(HaveOccurred())
	kp, err := ca.Issue(pki.CertOptions{CommonName: "conformance-webhook", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true})
	Expect(err).NotTo(HaveOccurred())
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	Expect(err).NotTo(HaveOccurred())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	Expect(err).NotTo(HaveOccurred())
	s := &admissionServer{url: "https://" + ln.Addr().String(), ca: ca.CertPEM, calls: map[string][]admissionv1.AdmissionRequest{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/label", s.review("/label", func(req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) {
		var obj metav1.PartialObjectMetadata
		_ = json.Unmarshal(req.Object.Raw, &obj)
		op := map[string]any{"op": "add", "path": "/metadata/labels", "value": map[string]string{"mutated": "by-webhook"}}
		if obj.Labels != nil {
			op = map[string]any{"op": "add", "path": "/metadata/labels/mutated", "value": "by-webhook"}
		}
		resp.Patch, resp.PatchType = jsonPatch(op), ptr.To(admissionv1.PatchTypeJSONPatch)
	}))
	mux.HandleFunc("/deny", s.review("/deny", func(req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) {
		var obj metav1.PartialObjectMetadata
		_ = json.Unmarshal(req.Object.Raw, &obj)
		if obj.Labels["deny"] == "true" {
			resp.Allowed = false
			resp.Result = &metav1.Status{Message: "objects labelled deny=true are refused"}
		}
		if obj.Labels["warn"] == "true" {
			resp.Warnings = []string{"this object is labelled warn=true"}
		}
	}))
	mux.HandleFunc("/count", s.review("/count", func(req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) {
		// Counts its calls in an annotation, so a reinvocation shows.
		var obj metav1.PartialObjectMetadata
		_ = json.Unmarshal(req.Object.Raw, &obj)
		op := map[string]any{"op": "add", "path": "/metadata/annotations", "value": map[string]string{"count": "0"}}
		if n, ok := obj.Annotations["count"]; ok {
			var i int
			fmt.Sscan(n, &i)
			op = map[string]any{"op": "replace", "path": "/metadata/annotations/count", "value": fmt.Sprint(i + 1)}
		} else if obj.Annotations != nil {
			op = map[string]any{"op": "add", "path": "/metadata/annotations/count", "value": "0"}
		}
		resp.Patch, resp.PatchType = jsonPatch(op), ptr.To(admissionv1.PatchTypeJSONPatch)
	}))
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Second)
		s.review("/slow", func(*admissionv1.AdmissionRequest, *admissionv1.AdmissionResponse) {})(w, r)
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("this is not an AdmissionReview"))
	})
	mux.HandleFunc("/convert", convertWidgets)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	DeferCleanup(srv.Close)
	return s
}

// convertWidgets converts gadgets between v1 (spec.color) and v2
// (spec.colour): a CRD conversion webhook.
func convertWidgets(w http.ResponseWriter, r *http.Request) {
	var review apiextensionsv1.ConversionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	resp := &apiextensionsv1.ConversionResponse{UID: review.Request.UID, Result: metav1.Status{Status: metav1.StatusSuccess}}
	for _, raw := range review.Request.Objects {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw.Raw); err != nil {
			resp.Result = metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
			break
		}
		from, to := "color", "colour"
		if strings.HasSuffix(review.Request.DesiredAPIVersion, "/v1") {
			from, to = "colour", "color"
		}
		if v, ok, _ := unstructured.NestedString(u.Object, "spec", from); ok {
			unstructured.RemoveNestedField(u.Object, "spec", from)
			_ = unstructured.SetNestedField(u.Object, v, "spec", to)
		}
		u.SetAPIVersion(review.Request.DesiredAPIVersion)
		b, _ := u.MarshalJSON()
		resp.ConvertedObjects = append(resp.ConvertedObjects, runtime.RawExtension{Raw: b})
	}
	review.Response, review.Request = resp, nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review)
}

var _ = Describe("admission webhooks and policies", Ordered, func() {
	const ns = "conformance-webhooks"
	var (
		cs  kubernetes.Interface
		srv *admissionServer
	)
	hook := func(name, path string) admissionregistrationv1.WebhookClientConfig {
		u := srv.url + path
		return admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: srv.ca}
	}
	configMapRules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
	}}
	// onlyThis limits a webhook to the objects of one spec, by label.
	onlyThis := func(spec string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"spec": spec}}
	}
	cm := func(name, spec string, extra map[string]string) *corev1.ConfigMap {
		l := map[string]string{"spec": spec}
		for k, v := range extra {
			l[k] = v
		}
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
	}
	validating := func(ctx SpecContext, name string, webhooks ...admissionregistrationv1.ValidatingWebhook) {
		GinkgoHelper()
		_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Webhooks: webhooks}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			Expect(cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
		})
	}
	mutating := func(ctx SpecContext, name string, webhooks ...admissionregistrationv1.MutatingWebhook) {
		GinkgoHelper()
		_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Webhooks: webhooks}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			Expect(cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
		})
	}
	none := ptr.To(admissionregistrationv1.SideEffectClassNone)
	// create creates a ConfigMap once the webhooks registered last are in
	// effect (the API server's informers see configurations shortly after
	// they are written): until then it retries what probe says is early.
	createWhen := func(ctx SpecContext, obj *corev1.ConfigMap, ready func(*corev1.ConfigMap, error) bool) (*corev1.ConfigMap, error) {
		GinkgoHelper()
		var got *corev1.ConfigMap
		var err error
		Eventually(func() bool {
			o := obj.DeepCopy()
			o.Name = obj.Name
			got, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, o, metav1.CreateOptions{})
			if ready(got, err) {
				return true
			}
			if err == nil {
				_ = cs.CoreV1().ConfigMaps(ns).Delete(ctx, o.Name, metav1.DeleteOptions{})
			}
			return false
		}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(BeTrue())
		return got, err
	}

	BeforeAll(func(ctx SpecContext) {
		cs = target.Clientset()
		srv = startAdmissionServer()
		newNamespace(ctx, ns)
	})

	It("mutates with JSON patches and validates, with kube-apiserver's denial", func(ctx SpecContext) {
		mutating(ctx, "conformance-label", admissionregistrationv1.MutatingWebhook{
			Name: "label.conformance.kubesim.io", ClientConfig: hook("label", "/label"), Rules: configMapRules,
			ObjectSelector: onlyThis("mutate"), SideEffects: none, AdmissionReviewVersions: []string{"v1"},
		})
		validating(ctx, "conformance-deny", admissionregistrationv1.ValidatingWebhook{
			Name: "deny.conformance.kubesim.io", ClientConfig: hook("deny", "/deny"), Rules: configMapRules,
			ObjectSelector: onlyThis("mutate"), SideEffects: none, AdmissionReviewVersions: []string{"v1"},
		})
		got, err := createWhen(ctx, cm("mutated", "mutate", nil), func(c *corev1.ConfigMap, err error) bool { return err == nil && c.Labels["mutated"] == "by-webhook" })
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Labels).To(Equal(map[string]string{"spec": "mutate", "mutated": "by-webhook"}))

		_, err = createWhen(ctx, cm("denied", "mutate", map[string]string{"deny": "true"}), func(_ *corev1.ConfigMap, err error) bool { return err != nil })
		// A denial without a code is a 400.
		Expect(apierrors.ReasonForError(err)).To(Equal(metav1.StatusReasonUnknown))
		Expect(apierrors.APIStatus(err.(*apierrors.StatusError)).Status().Code).To(Equal(int32(http.StatusBadRequest)))
		Expect(err.Error()).To(Equal(`admission webhook "deny.conformance.kubesim.io" denied the request: objects labelled deny=true are refused`))
		_, err = cs.CoreV1().ConfigMaps(ns).Get(ctx, "denied", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())

		// The webhooks saw AdmissionReview v1 requests of the object.
		calls := srv.callsOf("/deny")
		Expect(calls).NotTo(BeEmpty())
		last := calls[len(calls)-1]
		Expect(last.Kind).To(Equal(metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}))
		Expect(last.Resource).To(Equal(metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"}))
		Expect(last.Operation).To(Equal(admissionv1.Create))
		Expect(last.Namespace).To(Equal(ns))
		Expect(*last.DryRun).To(BeFalse())
		// Validating webhooks see the mutated object.
		Expect(string(last.Object.Raw)).To(ContainSubstring(`"mutated":"by-webhook"`))
	})

	It("matches namespaces, objects and match conditions", func(ctx SpecContext) {
		validating(ctx, "conformance-match", admissionregistrationv1.ValidatingWebhook{
			Name: "match.conformance.kubesim.io", ClientConfig: hook("match", "/deny"), Rules: configMapRules,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			ObjectSelector:    onlyThis("match"),
			MatchConditions:   []admissionregistrationv1.MatchCondition{{Name: "not-exempt", Expression: `!has(object.metadata.annotations) || !("exempt" in object.metadata.annotations)`}},
			SideEffects:       none, AdmissionReviewVersions: []string{"v1"},
		})
		_, err := createWhen(ctx, cm("match-denied", "match", map[string]string{"deny": "true"}), func(_ *corev1.ConfigMap, err error) bool { return err != nil })
		Expect(err).To(MatchError(ContainSubstring(`admission webhook "match.conformance.kubesim.io" denied the request`)))
		exempt := cm("match-exempt", "match", map[string]string{"deny": "true"})
		exempt.Annotations = map[string]string{"exempt": "yes"}
		_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, exempt, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		other := cm("match-other", "other", map[string]string{"deny": "true"})
		_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, other, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cs.CoreV1().ConfigMaps("default").Create(ctx, cm("match-default", "match", map[string]string{"deny": "true"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cs.CoreV1().ConfigMaps("default").Delete(ctx, "match-default", metav1.DeleteOptions{})).To(Succeed())
	})

	It("follows the failure policy when a webhook times out or answers garbage", func(ctx SpecContext) {
		validating(ctx, "conformance-failures",
			admissionregistrationv1.ValidatingWebhook{
				Name: "slow-fail.conformance.kubesim.io", ClientConfig: hook("slow", "/slow"), Rules: configMapRules,
				ObjectSelector: onlyThis("slow-fail"), FailurePolicy: ptr.To(admissionregistrationv1.Fail), TimeoutSeconds: ptr.To[int32](1),
				SideEffects: none, AdmissionReviewVersions: []string{"v1"},
			},
			admissionregistrationv1.ValidatingWebhook{
				Name: "slow-ignore.conformance.kubesim.io", ClientConfig: hook("slow", "/slow"), Rules: configMapRules,
				ObjectSelector: onlyThis("slow-ignore"), FailurePolicy: ptr.To(admissionregistrationv1.Ignore), TimeoutSeconds: ptr.To[int32](1),
				SideEffects: none, AdmissionReviewVersions: []string{"v1"},
			},
			admissionregistrationv1.ValidatingWebhook{
				Name: "garbage.conformance.kubesim.io", ClientConfig: hook("garbage", "/garbage"), Rules: configMapRules,
				ObjectSelector: onlyThis("garbage"), FailurePolicy: ptr.To(admissionregistrationv1.Fail),
				SideEffects: none, AdmissionReviewVersions: []string{"v1"},
			},
		)
		_, err := createWhen(ctx, cm("slow-fail", "slow-fail", nil), func(_ *corev1.ConfigMap, err error) bool { return err != nil })
		Expect(apierrors.IsInternalError(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(MatchRegexp(`^Internal error occurred: failed calling webhook "slow-fail.conformance.kubesim.io": failed to call webhook: Post "https://127.0.0.1:\d+/slow\?timeout=1s": context deadline exceeded$`))

		_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, cm("slow-ignore", "slow-ignore", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		_, err = createWhen(ctx, cm("garbage", "garbage", nil), func(_ *corev1.ConfigMap, err error) bool { return err != nil })
		Expect(apierrors.IsInternalError(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(HavePrefix(`Internal error occurred: failed calling webhook "garbage.conformance.kubesim.io": failed to call webhook: `))
	})

	It("calls webhooks without side effects on dry runs and refuses those with", func(ctx SpecContext) {
		validating(ctx, "conformance-dryrun",
			admissionregistrationv1.ValidatingWebhook{
				Name: "dry.conformance.kubesim.io", ClientConfig: hook("dry", "/deny"), Rules: configMapRules,
				ObjectSelector: onlyThis("dry"), SideEffects: none, AdmissionReviewVersions: []string{"v1"},
			},
			admissionregistrationv1.ValidatingWebhook{
				Name: "effects.conformance.kubesim.io", ClientConfig: hook("effects", "/deny"), Rules: configMapRules,
				ObjectSelector: onlyThis("effects"), SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun), AdmissionReviewVersions: []string{"v1"},
			},
		)
		_, err := createWhen(ctx, cm("dry-denied", "dry", map[string]string{"deny": "true"}), func(_ *corev1.ConfigMap, err error) bool { return err != nil })
		Expect(err).To(HaveOccurred())
		before := len(srv.callsOf("/deny"))
		_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, cm("dry", "dry", nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		Expect(err).NotTo(HaveOccurred())
		calls := srv.callsOf("/deny")
		Expect(calls).To(HaveLen(before + 1))
		Expect(*calls[len(calls)-1].DryRun).To(BeTrue())
		_, err = cs.CoreV1().ConfigMaps(ns).Get(ctx, "dry", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
		// NoneOnDryRun webhooks are called on dry runs too, told so.
		_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, cm("effects", "effects", map[string]string{"warn": "true"}), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		Expect(err).NotTo(HaveOccurred())
	})

	It("reinvokes mutating webhooks that ask for it when a later one changes the object", func(ctx SpecContext) {
		mutating(ctx, "conformance-reinvoke",
			admissionregistrationv1.MutatingWebhook{
				Name: "count.conformance.kubesim.io", ClientConfig: hook("count", "/count"), Rules: configMapRules,
				ObjectSelector: onlyThis("reinvoke"), ReinvocationPolicy: ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
				SideEffects: none, AdmissionReviewVersions: []string{"v1"},
			},
			admissionregistrationv1.MutatingWebhook{
				Name: "label-after.conformance.kubesim.io", ClientConfig: hook("label", "/label"), Rules: configMapRules,
				ObjectSelector: onlyThis("reinvoke"), SideEffects: none, AdmissionReviewVersions: []string{"v1"},
			},
		)
		got, err := createWhen(ctx, cm("reinvoked", "reinvoke", nil), func(c *corev1.ConfigMap, err error) bool {
			return err == nil && c.Labels["mutated"] == "by-webhook"
		})
		Expect(err).NotTo(HaveOccurred())
		// Called, then called again after the label webhook changed the object.
		Expect(got.Annotations).To(HaveKeyWithValue("count", "1"))
	})

	It("denies with a ValidatingAdmissionPolicy and mutates with a MutatingAdmissionPolicy", func(ctx SpecContext) {
		ar := cs.AdmissionregistrationV1()
		_, err := ar.ValidatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "conformance-no-forbidden-key"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: ptr.To(admissionregistrationv1.Fail),
				MatchConstraints: &admissionregistrationv1.MatchResources{
					ObjectSelector: onlyThis("policy"),
					ResourceRules:  []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: configMapRules[0]}},
				},
				Validations: []admissionregistrationv1.Validation{{
					Expression: `!has(object.data) || !("forbidden" in object.data)`,
					Message:    "the forbidden key is not allowed",
				}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = ar.ValidatingAdmissionPolicies().Delete(ctx, "conformance-no-forbidden-key", metav1.DeleteOptions{})
		})
		_, err = ar.ValidatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "conformance-no-forbidden-key"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        "conformance-no-forbidden-key",
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = ar.ValidatingAdmissionPolicyBindings().Delete(ctx, "conformance-no-forbidden-key", metav1.DeleteOptions{})
		})

		forbidden := cm("policy-denied", "policy", nil)
		forbidden.Data = map[string]string{"forbidden": "x"}
		_, err = createWhen(ctx, forbidden, func(_ *corev1.ConfigMap, err error) bool { return err != nil })
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`configmaps "policy-denied" is forbidden: ValidatingAdmissionPolicy 'conformance-no-forbidden-key' with binding 'conformance-no-forbidden-key' denied request: the forbidden key is not allowed`))

		_, err = ar.MutatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "conformance-label"},
			Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
				FailurePolicy: ptr.To(admissionregistrationv1.Fail),
				MatchConstraints: &admissionregistrationv1.MatchResources{
					ObjectSelector: onlyThis("policy"),
					ResourceRules:  []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: configMapRules[0]}},
				},
				ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
				Mutations: []admissionregistrationv1.Mutation{{
					PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
					ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{
						Expression: `Object{metadata: Object.metadata{labels: {"mutated": "by-policy"}}}`,
					},
				}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = ar.MutatingAdmissionPolicies().Delete(ctx, "conformance-label", metav1.DeleteOptions{})
		})
		_, err = ar.MutatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "conformance-label"},
			Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "conformance-label"},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = ar.MutatingAdmissionPolicyBindings().Delete(ctx, "conformance-label", metav1.DeleteOptions{})
		})
		got, err := createWhen(ctx, cm("policy-mutated", "policy", nil), func(c *corev1.ConfigMap, err error) bool {
			return err == nil && c.Labels["mutated"] == "by-policy"
		})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Labels).To(HaveKeyWithValue("spec", "policy"))
	})

	It("converts custom resources between versions with a conversion webhook", func(ctx SpecContext) {
		const group = "conversion.kubesim.io"
		crdClient := apiextensionsclient.NewForConfigOrDie(target.Config).ApiextensionsV1().CustomResourceDefinitions()
		schemaOf := func(field string) *apiextensionsv1.CustomResourceValidation {
			return &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
				Type: "object",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{field: {Type: "string"}}},
				},
			}}
		}
		convertURL := srv.url + "/convert"
		crd := &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: "gadgets." + group},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: group, Scope: apiextensionsv1.NamespaceScoped,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Singular: "gadget", Kind: "Gadget", ListKind: "GadgetList"},
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
					{Name: "v1", Served: true, Storage: true, Schema: schemaOf("color")},
					{Name: "v2", Served: true, Schema: schemaOf("colour")},
				},
				Conversion: &apiextensionsv1.CustomResourceConversion{
					Strategy: apiextensionsv1.WebhookConverter,
					Webhook: &apiextensionsv1.WebhookConversion{
						ClientConfig:             &apiextensionsv1.WebhookClientConfig{URL: &convertURL, CABundle: srv.ca},
						ConversionReviewVersions: []string{"v1"},
					},
				},
			},
		}
		_, err := crdClient.Create(ctx, crd, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { _ = crdClient.Delete(ctx, crd.Name, metav1.DeleteOptions{}) })
		kubectl(ctx, "wait", "--for=condition=Established", "crd/"+crd.Name, "--timeout=30s")

		v1 := target.Dynamic().Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gadgets"}).Namespace(ns)
		v2 := target.Dynamic().Resource(schema.GroupVersionResource{Group: group, Version: "v2", Resource: "gadgets"}).Namespace(ns)
		Eventually(func() error {
			_, err := v2.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": group + "/v2", "kind": "Gadget",
				"metadata": map[string]any{"name": "g"}, "spec": map[string]any{"colour": "red"},
			}}, metav1.CreateOptions{})
			return err
		}).WithTimeout(10 * time.Second).Should(Succeed())
		got, err := v1.Get(ctx, "g", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.GetAPIVersion()).To(Equal(group + "/v1"))
		Expect(got.Object["spec"]).To(Equal(map[string]any{"color": "red"}))
		list, err := v2.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Object["spec"]).To(Equal(map[string]any{"colour": "red"}))
	})
})
