package conformance_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// raw sends one HTTP request to the target as cluster-admin and decodes a
// Status answer; a body that is no Status comes back as text.
func raw(ctx SpecContext, method, path, contentType string, body []byte) (int, *metav1.Status, string) {
	GinkgoHelper()
	client, err := rest.HTTPClientFor(target.Config)
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(target.Config.Host, "/")+path, bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	status := &metav1.Status{}
	if json.Unmarshal(b, status) != nil || status.Kind != "Status" {
		status = nil
	}
	return resp.StatusCode, status, string(b)
}

var _ = Describe("bad input", func() {
	const ns = "conformance-bad-input"
	const base = "/api/v1/namespaces/" + ns + "/configmaps"

	BeforeEach(func(ctx SpecContext) {
		cs := target.Clientset()
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil {
			Expect(err.Error()).To(ContainSubstring("already exists"))
		}
		_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "intact"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		if err != nil {
			Expect(err.Error()).To(ContainSubstring("already exists"))
		}
	})

	big := func(n int) []byte {
		return []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":"` + strings.Repeat("x", n) + `"}}`)
	}

	type badCase struct {
		method, path, contentType string
		body                      []byte
		code                      int
		reason                    metav1.StatusReason
		message                   string // exact when set
		contains                  string
		causeField                string
		// plain is the text body of an answer that is no Status.
		plain string
	}
	DescribeTable("gets kube-apiserver's Status and leaves stored data intact",
		func(ctx SpecContext, c badCase) {
			cs := target.Clientset()
			before, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "intact", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())

			code, status, text := raw(ctx, c.method, c.path, c.contentType, c.body)
			Expect(code).To(Equal(c.code))
			if c.plain != "" {
				Expect(status).To(BeNil())
				Expect(text).To(Equal(c.plain))
				return
			}
			Expect(status).NotTo(BeNil(), "a Status body")
			Expect(status.Code).To(Equal(int32(c.code)))
			Expect(status.Reason).To(Equal(c.reason)) // empty for an internal error, as upstream answers
			if c.message != "" {
				Expect(status.Message).To(Equal(c.message))
			}
			Expect(status.Message).To(ContainSubstring(c.contains))
			if c.causeField != "" {
				Expect(status.Details).NotTo(BeNil())
				Expect(status.Details.Causes).To(ContainElement(HaveField("Field", c.causeField)))
			}

			after, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "intact", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))
			Expect(after.Data).To(Equal(before.Data))
		},
		Entry("malformed JSON", badCase{method: "POST", path: base, contentType: "application/json",
			body: []byte(`{"apiVersion":"v1","kind":"ConfigMap",`), code: 400, reason: metav1.StatusReasonBadRequest,
			contains: "couldn't get version/kind; json parse error: unexpected end of JSON input"}),
		Entry("malformed YAML", badCase{method: "POST", path: base, contentType: "application/yaml",
			body: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n"), code: 400, reason: metav1.StatusReasonBadRequest,
			contains: "yaml: line 4"}),
		Entry("a kind that does not match the URL", badCase{method: "POST", path: base, contentType: "application/json",
			body: []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`), code: 400, reason: metav1.StatusReasonBadRequest,
			contains: `Secret in version "v1" cannot be handled as a ConfigMap`}),
		Entry("an apiVersion that does not match the URL", badCase{method: "POST", path: base, contentType: "application/json",
			body: []byte(`{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}`), code: 400, reason: metav1.StatusReasonBadRequest,
			contains: `no kind "ConfigMap" is registered for version "apps/v1"`}),
		Entry("a name in the body that differs from the URL", badCase{method: "PUT", path: base + "/intact", contentType: "application/json",
			body: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}`), code: 400, reason: metav1.StatusReasonBadRequest,
			message: "the name of the object (other) does not match the name on the URL (intact)"}),
		Entry("a namespace in the body that differs from the URL", badCase{method: "POST", path: base, contentType: "application/json",
			body: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"kube-system"}}`), code: 400, reason: metav1.StatusReasonBadRequest,
			message: "the namespace of the provided object does not match the namespace sent on the request"}),
		Entry("an invalid name", badCase{method: "POST", path: base, contentType: "application/json",
			body: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Not_Valid"}}`), code: 422, reason: metav1.StatusReasonInvalid,
			contains: `ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain`, causeField: "metadata.name"}),
		Entry("a field of the wrong type", badCase{method: "POST", path: base, contentType: "application/json",
			body: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":5}`), code: 400, reason: metav1.StatusReasonBadRequest,
			contains: "json: cannot unmarshal number into Go struct field ConfigMap.data of type map[string]string"}),
		Entry("an unknown field with fieldValidation=Strict", badCase{method: "POST", path: base + "?fieldValidation=Strict", contentType: "application/json",
			body: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"bogus":1}`), code: 400, reason: metav1.StatusReasonBadRequest,
			contains: `strict decoding error: unknown field "bogus"`}),
		Entry("a body over 3 MiB", badCase{method: "POST", path: base, contentType: "application/json",
			body: big(3*1024*1024 + 10), code: 413, reason: metav1.StatusReasonRequestEntityTooLarge,
			message: "Request entity too large: limit is 3145728"}),
		Entry("a ConfigMap over 1 MiB", badCase{method: "POST", path: base, contentType: "application/json",
			body: big(1024*1024 + 10), code: 422, reason: metav1.StatusReasonInvalid,
			contains: "Too long: may not be more than 1048576 bytes"}),
		Entry("an unknown resource", badCase{method: "GET", path: "/api/v1/namespaces/" + ns + "/widgets", code: 404, reason: metav1.StatusReasonNotFound,
			message: "the server could not find the requested resource"}),
		Entry("an unknown group", badCase{method: "GET", path: "/apis/widgets.example.com/v1/widgets", code: 404, plain: "404 page not found\n"}),
		Entry("an unknown resource of a served group", badCase{method: "GET", path: "/apis/apps/v1/widgets", code: 404, reason: metav1.StatusReasonNotFound,
			message: "the server could not find the requested resource"}),
		Entry("a verb the resource does not have", badCase{method: "PUT", path: base, contentType: "application/json", body: []byte(`{}`),
			code: 405, reason: metav1.StatusReasonMethodNotAllowed, message: "the server does not allow this method on the requested resource"}),
		Entry("a delete of every namespace at once", badCase{method: "DELETE", path: "/api/v1/namespaces",
			code: 405, reason: metav1.StatusReasonMethodNotAllowed, message: "the server does not allow this method on the requested resource"}),
		Entry("a get of namespaces/finalize, which is only updated", badCase{method: "GET", path: "/api/v1/namespaces/" + ns + "/finalize",
			code: 405, reason: metav1.StatusReasonMethodNotAllowed, message: "the server does not allow this method on the requested resource"}),
		Entry("a watch of a review resource", badCase{method: "GET", path: "/apis/authorization.k8s.io/v1/subjectaccessreviews?watch=1",
			code: 405, reason: metav1.StatusReasonMethodNotAllowed, message: "the server does not allow this method on the requested resource"}),
		Entry("a stale resourceVersion", badCase{method: "PUT", path: base + "/intact", contentType: "application/json",
			body: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"intact","resourceVersion":"1"},"data":{"k":"changed"}}`),
			code: 409, reason: metav1.StatusReasonConflict,
			message: `Operation cannot be fulfilled on configmaps "intact": the object has been modified; please apply your changes to the latest version and try again`}),
		Entry("a missing namespace", badCase{method: "POST", path: "/api/v1/namespaces/no-such-ns/configmaps", contentType: "application/json",
			body: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`), code: 404, reason: metav1.StatusReasonNotFound,
			message: `namespaces "no-such-ns" not found`}),
		Entry("a missing object", badCase{method: "GET", path: base + "/missing", code: 404, reason: metav1.StatusReasonNotFound,
			message: `configmaps "missing" not found`}),
		Entry("a list at a future resourceVersion", badCase{method: "GET", path: base + "?resourceVersion=999999999&resourceVersionMatch=NotOlderThan",
			code: 504, reason: metav1.StatusReasonTimeout, contains: "Too large resource version: 999999999"}),
		Entry("resourceVersionMatch without a resourceVersion", badCase{method: "GET", path: base + "?resourceVersionMatch=Exact",
			code: 422, reason: metav1.StatusReasonInvalid, contains: "resourceVersionMatch"}),
		Entry("a create of a name that exists", badCase{method: "POST", path: base, contentType: "application/json",
			body: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"intact"}}`), code: 409, reason: metav1.StatusReasonAlreadyExists,
			message: `configmaps "intact" already exists`}),
		Entry("deletion of an immortal namespace", badCase{method: "DELETE", path: "/api/v1/namespaces/default",
			code: 403, reason: metav1.StatusReasonForbidden, message: `namespaces "default" is forbidden: this namespace may not be deleted`}),
		Entry("a JSON patch at a path that does not exist", badCase{method: "PATCH", path: base + "/intact", contentType: "application/json-patch+json",
			body: []byte(`[{"op":"replace","path":"/data/nope/x","value":"1"}]`), code: 422, reason: metav1.StatusReasonInvalid,
			message: "the server rejected our request due to an error in our request"}),
		Entry("a JSON patch that is no list of operations", badCase{method: "PATCH", path: base + "/intact", contentType: "application/json-patch+json",
			body: []byte(`{"op":"replace"}`), code: 400, reason: metav1.StatusReasonBadRequest,
			message: "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"}),
		Entry("a merge patch giving a field the wrong type", badCase{method: "PATCH", path: base + "/intact", contentType: "application/merge-patch+json",
			body: []byte(`{"data":5}`), code: 422, reason: metav1.StatusReasonInvalid,
			contains: `json: cannot unmarshal number into Go struct field ConfigMap.data of type map[string]string`, causeField: "patch"}),
		Entry("a strategic merge patch giving a field the wrong type", badCase{method: "PATCH", path: base + "/intact", contentType: "application/strategic-merge-patch+json",
			body: []byte(`{"data":"x"}`), code: 422, reason: metav1.StatusReasonInvalid,
			message: ` "" is invalid: patch: Invalid value: "map[data:x]": cannot restore map from string`, causeField: "patch"}),
		Entry("a strategic merge patch with an unknown $patch directive", badCase{method: "PATCH", path: base + "/intact", contentType: "application/strategic-merge-patch+json",
			body: []byte(`{"data":{"$patch":"sideways"}}`), code: 500,
			message: "unknown patch type: sideways in map: map[$patch:sideways]"}),
		Entry("an apply configuration without apiVersion and kind", badCase{method: "PATCH", path: base + "/intact?fieldManager=conformance", contentType: "application/apply-patch+yaml",
			body: []byte("metadata:\n  name: intact\ndata:\n  k: other\n"), code: 400, reason: metav1.StatusReasonBadRequest,
			message: "invalid object type: /, Kind="}),
		Entry("an apply without a field manager", badCase{method: "PATCH", path: base + "/intact", contentType: "application/apply-patch+yaml",
			body: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: intact\ndata:\n  k: other\n"), code: 422, reason: metav1.StatusReasonInvalid,
			message: `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`, causeField: "fieldManager"}),
		Entry("a conflicting apply without force", badCase{method: "PATCH", path: base + "/intact?fieldManager=conformance-other", contentType: "application/apply-patch+yaml",
			body: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: intact\ndata:\n  k: other\n"), code: 409, reason: metav1.StatusReasonConflict,
			message: `Apply failed with 1 conflict: conflict with "conformance.test" using v1: .data.k`, causeField: ".data.k"}),
		Entry("protobuf garbage", badCase{method: "POST", path: base, contentType: "application/vnd.kubernetes.protobuf",
			body: []byte("k8s\x00garbage"), code: 400, reason: metav1.StatusReasonBadRequest,
			message: "the object provided is unrecognized (must be of type ConfigMap): proto: illegal wireType 7 (6b38730067617262616765)"}),
		Entry("protobuf without the envelope's magic", badCase{method: "POST", path: base, contentType: "application/vnd.kubernetes.protobuf",
			body: []byte("garbage"), code: 400, reason: metav1.StatusReasonBadRequest,
			message: "the object provided is unrecognized (must be of type ConfigMap): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] (67617262616765)"}),
		Entry("a delete precondition on a stale resourceVersion", badCase{method: "DELETE", path: base + "/intact", contentType: "application/json",
			body: []byte(`{"preconditions":{"resourceVersion":"1"}}`), code: 409, reason: metav1.StatusReasonConflict,
			contains: `Operation cannot be fulfilled on ConfigMap "intact": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record`}),
		// Found by FuzzListParameters: kubesim answered 500.
		Entry("a list at a resourceVersion that is not one", badCase{method: "GET", path: base + "?resourceVersion=A&limit=0&labelSelector=0",
			code: 400, reason: metav1.StatusReasonBadRequest,
			message: `invalid resource version: resourceVersion: Invalid value: "A": strconv.ParseUint: parsing "A": invalid syntax`}),
		Entry("a paginated list at an exact resourceVersion that is not one", badCase{method: "GET", path: base + "?resourceVersion=-1&limit=2&resourceVersionMatch=Exact",
			code: 400, reason: metav1.StatusReasonBadRequest,
			message: `invalid resource version: resourceVersion: Invalid value: "-1": strconv.ParseUint: parsing "-1": invalid syntax`}),
		Entry("a continue token that is not one, with a resourceVersion", badCase{method: "GET", path: base + "?resourceVersion=A&continue=abc",
			code: 400, reason: metav1.StatusReasonBadRequest,
			message: `invalid continue token: continue key is not valid: invalid character 'i' looking for beginning of value`}),
	)
})
