package conformance_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	appsv1apply "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1apply "k8s.io/client-go/applyconfigurations/core/v1"
	metav1apply "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// response is one raw HTTP answer of the target.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// get sends a GET with the given headers as cluster-admin. The body is
// returned as sent (a gzip body stays compressed).
func get(ctx SpecContext, path string, header map[string]string) response {
	GinkgoHelper()
	client, err := rest.HTTPClientFor(target.Config)
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(target.Config.Host, "/")+path, nil)
	Expect(err).NotTo(HaveOccurred())
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// indentJSON re-indents a JSON document for a golden file.
func indentJSON(b []byte) string {
	GinkgoHelper()
	var out bytes.Buffer
	Expect(json.Indent(&out, b, "", "  ")).To(Succeed())
	return out.String() + "\n"
}

// metricValue sums the samples of a metric in a Prometheus text exposition
// whose labels include every label of want.
func metricValue(exposition, name string, want map[string]string) (float64, bool) {
	labelRE := regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)
	var sum float64
	found := false
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		labels := map[string]string{}
		if i := strings.Index(line, "{"); i >= 0 {
			for _, m := range labelRE.FindAllStringSubmatch(line[i:strings.LastIndex(line, "}")], -1) {
				labels[m[1]] = m[2]
			}
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		fields := strings.Fields(line[strings.LastIndex(line, "}")+1:])
		if strings.HasPrefix(line, name+" ") {
			fields = strings.Fields(strings.TrimPrefix(line, name))
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

const aggregatedJSON = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

var _ = Describe("API fidelity", func() {
	It("serves aggregated discovery of /api and /apis, with ETags", func(ctx SpecContext) {
		for _, c := range []struct{ path, golden string }{
			{"/api", "aggregated-discovery-api.json"},
			{"/apis", "aggregated-discovery-apis.json"},
		} {
			// A custom resource group that an earlier spec deleted leaves
			// discovery once its CRD is gone, which takes a moment after the
			// delete returns (the CRD's finalizer): wait for the document to
			// come back to the built-in groups.
			var r response
			Eventually(func(g Gomega) {
				r = get(ctx, c.path, map[string]string{"Accept": aggregatedJSON + ",application/json"})
				g.Expect(r.code).To(Equal(http.StatusOK), c.path)
				g.Expect(r.header.Get("Content-Type")).To(Equal(aggregatedJSON), c.path)
				var list apidiscoveryv2.APIGroupDiscoveryList
				g.Expect(json.Unmarshal(r.body, &list)).To(Succeed())
				g.Expect(list.Items).NotTo(BeEmpty())
				if !*update {
					want, err := os.ReadFile(testdata("golden", c.golden))
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(indentJSON(r.body)).To(Equal(string(want)), "output differs from %s", c.golden)
				}
			}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
			expectGolden(c.golden, indentJSON(r.body))

			etag := r.header.Get("ETag")
			Expect(etag).To(MatchRegexp(`^"[0-9A-F]+"$`), c.path)
			again := get(ctx, c.path, map[string]string{"Accept": aggregatedJSON, "If-None-Match": etag})
			Expect(again.code).To(Equal(http.StatusNotModified), c.path)
			Expect(again.body).To(BeEmpty())

			// The same document in protobuf, and the legacy one to clients
			// that do not ask for it.
			pb := get(ctx, c.path, map[string]string{"Accept": "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
			Expect(pb.code).To(Equal(http.StatusOK))
			Expect(pb.header.Get("Content-Type")).To(HavePrefix("application/vnd.kubernetes.protobuf"))
			Expect(pb.header.Get("ETag")).To(Equal(etag))
			legacy := get(ctx, c.path, map[string]string{"Accept": "application/json"})
			Expect(string(legacy.body)).To(MatchRegexp(`"kind": ?"(APIVersions|APIGroupList)"`))
		}
		// client-go's discovery reads the aggregated documents.
		groups, resources, err := target.Clientset().Discovery().ServerGroupsAndResources()
		Expect(err).NotTo(HaveOccurred())
		Expect(groups).NotTo(BeEmpty())
		Expect(resources).To(ContainElement(HaveField("GroupVersion", "apps/v1")))
	})

	It("serves discovery with and without a trailing slash", func(ctx SpecContext) {
		for path, kind := range map[string]string{
			"/api": "APIVersions", "/apis": "APIGroupList", "/apis/apps": "APIGroup",
			"/apis/apps/v1": "APIResourceList", "/api/v1": "APIResourceList",
		} {
			for _, p := range []string{path, path + "/"} {
				r := get(ctx, p, map[string]string{"Accept": "application/json"})
				Expect(r.code).To(Equal(http.StatusOK), p)
				Expect(string(r.body)).To(MatchRegexp(`"kind": ?"`+kind+`"`), p)
			}
		}
	})

	It("counts requests and stored objects in /metrics", func(ctx SpecContext) {
		newNamespace(ctx, "conformance-metrics")
		cms := target.Clientset().CoreV1().ConfigMaps("conformance-metrics")
		_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "counted"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		gets := map[string]string{"verb": "GET", "group": "", "version": "v1", "resource": "configmaps", "scope": "resource", "code": "200", "component": "apiserver"}
		scrape := func() string {
			r := get(ctx, "/metrics", nil)
			Expect(r.code).To(Equal(http.StatusOK))
			Expect(r.header.Get("Content-Type")).To(HavePrefix("text/plain"))
			return string(r.body)
		}
		before, _ := metricValue(scrape(), "apiserver_request_total", gets)
		for range 3 {
			_, err := cms.Get(ctx, "counted", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		_, err = cms.Get(ctx, "missing", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())

		text := scrape()
		after, ok := metricValue(text, "apiserver_request_total", gets)
		Expect(ok).To(BeTrue(), "apiserver_request_total for GET configmaps")
		Expect(after - before).To(BeNumerically(">=", 3))
		notFound := map[string]string{"verb": "GET", "resource": "configmaps", "code": "404"}
		failed, _ := metricValue(text, "apiserver_request_total", notFound)
		Expect(failed).To(BeNumerically(">=", 1))
		count, ok := metricValue(text, "apiserver_request_duration_seconds_count", map[string]string{"verb": "GET", "resource": "configmaps", "scope": "resource"})
		Expect(ok).To(BeTrue(), "apiserver_request_duration_seconds for GET configmaps")
		Expect(count).To(BeNumerically(">=", 4))
		Expect(text).To(ContainSubstring(`apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1",le="0.005"}`))
		creates, ok := metricValue(text, "apiserver_request_total", map[string]string{"verb": "POST", "resource": "configmaps", "scope": "resource", "code": "201"})
		Expect(ok).To(BeTrue(), "apiserver_request_total for POST configmaps")
		Expect(creates).To(BeNumerically(">=", 1))
		// Admission, per step and per plugin, as operators watch it.
		admitted, ok := metricValue(text, "apiserver_admission_step_admission_duration_seconds_count", map[string]string{"operation": "CREATE", "type": "validate", "rejected": "false"})
		Expect(ok).To(BeTrue(), "apiserver_admission_step_admission_duration_seconds for validating CREATEs")
		Expect(admitted).To(BeNumerically(">=", 1))
		_, ok = metricValue(text, "apiserver_admission_controller_admission_duration_seconds_count", map[string]string{"name": "NamespaceLifecycle", "operation": "CREATE", "type": "admit"})
		Expect(ok).To(BeTrue(), "apiserver_admission_controller_admission_duration_seconds for NamespaceLifecycle")
		// kube-apiserver counts stored objects on a poll (a minute, the first
		// one off by one poll); kubesim
		// when scraped.
		Eventually(func() float64 {
			v, _ := metricValue(scrape(), "apiserver_resource_objects", map[string]string{"group": "", "resource": "namespaces"})
			return v
		}).WithTimeout(3 * time.Minute).WithPolling(2 * time.Second).Should(BeNumerically(">=", 5))
	})

	It("serves the profiler under /debug/pprof", func(ctx SpecContext) {
		for path, want := range map[string]string{
			"/debug/pprof":                    "goroutine", // redirected to the index
			"/debug/pprof/":                   "goroutine",
			"/debug/pprof/symbol":             "num_symbols",
			"/debug/pprof/goroutine?debug=1":  "goroutine profile",
			"/debug/pprof/profile?seconds=1":  "",
			"/debug/pprof/trace?seconds=0.01": "",
		} {
			r := get(ctx, path, nil)
			Expect(r.code).To(Equal(http.StatusOK), path)
			Expect(r.body).NotTo(BeEmpty(), path)
			Expect(string(r.body)).To(ContainSubstring(want), path)
		}
		// Not the command line, though: the index answers it as an unknown
		// profile.
		Expect(get(ctx, "/debug/pprof/cmdline", nil).code).To(Equal(http.StatusNotFound))
	})

	It("gzips large responses when asked", func(ctx SpecContext) {
		const ns = "conformance-gzip"
		newNamespace(ctx, ns)
		cms := target.Clientset().CoreV1().ConfigMaps(ns)
		for i := range 150 {
			_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%03d", i)},
				Data: map[string]string{"payload": strings.Repeat("x", 1024)}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		path := "/api/v1/namespaces/" + ns + "/configmaps"
		r := get(ctx, path, map[string]string{"Accept": "application/json", "Accept-Encoding": "gzip"})
		Expect(r.code).To(Equal(http.StatusOK))
		Expect(r.header.Get("Content-Encoding")).To(Equal("gzip"))
		Expect(r.header.Values("Vary")).To(ContainElement("Accept-Encoding"))
		zr, err := gzip.NewReader(bytes.NewReader(r.body))
		Expect(err).NotTo(HaveOccurred())
		plain, err := io.ReadAll(zr)
		Expect(err).NotTo(HaveOccurred())
		var list corev1.ConfigMapList
		Expect(json.Unmarshal(plain, &list)).To(Succeed())
		Expect(list.Items).To(HaveLen(150))
		Expect(len(r.body)).To(BeNumerically("<", len(plain)/4))

		// Small answers and clients that do not ask stay uncompressed.
		small := get(ctx, path+"/cm-000", map[string]string{"Accept": "application/json", "Accept-Encoding": "gzip"})
		Expect(small.header.Get("Content-Encoding")).To(BeEmpty())
		plainList := get(ctx, path, map[string]string{"Accept": "application/json", "Accept-Encoding": "identity"})
		Expect(plainList.header.Get("Content-Encoding")).To(BeEmpty())
		Expect(json.Unmarshal(plainList.body, &list)).To(Succeed())
	})

	It("serves OpenAPI v2 (JSON and protobuf) and v3 per group version with upstream's descriptions", func(ctx SpecContext) {
		cs := target.Clientset()
		// client-go (and kubectl) read v2 in protobuf.
		doc, err := cs.Discovery().OpenAPISchema()
		Expect(err).NotTo(HaveOccurred())
		var deployment *openapi_v2.Schema
		for _, d := range doc.GetDefinitions().GetAdditionalProperties() {
			if d.GetName() == "io.k8s.api.apps.v1.Deployment" {
				deployment = d.GetValue()
			}
		}
		Expect(deployment).NotTo(BeNil(), "io.k8s.api.apps.v1.Deployment in /openapi/v2")
		Expect(deployment.GetDescription()).To(Equal("Deployment enables declarative updates for Pods and ReplicaSets."))
		v2 := get(ctx, "/openapi/v2", map[string]string{"Accept": "application/json"})
		Expect(v2.code).To(Equal(http.StatusOK))
		Expect(string(v2.body)).To(ContainSubstring(`"io.k8s.api.apps.v1.DeploymentStrategy"`))

		paths, err := cs.Discovery().OpenAPIV3().Paths()
		Expect(err).NotTo(HaveOccurred())
		Expect(paths).To(HaveKey("apis/apps/v1"))
		Expect(paths).To(HaveKey("api/v1"))
		b, err := paths["apis/apps/v1"].Schema(runtime.ContentTypeJSON)
		Expect(err).NotTo(HaveOccurred())
		var v3 struct {
			Components struct {
				Schemas map[string]struct {
					Description string         `json:"description"`
					Properties  map[string]any `json:"properties"`
				} `json:"schemas"`
			} `json:"components"`
		}
		Expect(json.Unmarshal(b, &v3)).To(Succeed())
		Expect(v3.Components.Schemas).To(HaveKey("io.k8s.api.apps.v1.DeploymentStrategy"))
		Expect(v3.Components.Schemas["io.k8s.api.apps.v1.DeploymentStrategy"].Description).To(Equal("DeploymentStrategy describes how to replace existing pods with new ones."))
		Expect(v3.Components.Schemas["io.k8s.api.apps.v1.DeploymentStrategy"].Properties).To(HaveKey("rollingUpdate"))
	})

	It("serves tables with the object, its metadata or neither", func(ctx SpecContext) {
		const ns = "conformance-table"
		newNamespace(ctx, ns)
		_, err := target.Clientset().CoreV1().Pods(ns).Create(ctx, pod("tabled"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		path := "/api/v1/namespaces/" + ns + "/pods"
		table := func(include string) metav1.Table {
			GinkgoHelper()
			q := ""
			if include != "" {
				q = "?includeObject=" + include
			}
			r := get(ctx, path+q, map[string]string{"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
			Expect(r.code).To(Equal(http.StatusOK), string(r.body))
			var t metav1.Table
			Expect(json.Unmarshal(r.body, &t)).To(Succeed())
			Expect(t.Kind).To(Equal("Table"))
			Expect(t.Rows).To(HaveLen(1))
			return t
		}
		t := table("")
		var names []string
		for _, c := range t.ColumnDefinitions {
			names = append(names, c.Name)
		}
		Expect(names).To(Equal([]string{"Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"}))
		Expect(t.Rows[0].Cells[:3]).To(Equal([]any{"tabled", "0/1", "Pending"}))
		Expect(string(t.Rows[0].Object.Raw)).To(ContainSubstring(`"kind":"PartialObjectMetadata"`))
		Expect(string(table("Object").Rows[0].Object.Raw)).To(ContainSubstring(`"kind":"Pod"`))
		Expect(table("None").Rows[0].Object.Raw).To(BeEmpty())
	})

	It("validates fields Strict, Warn or Ignore, with upstream's errors and warnings", func(ctx SpecContext) {
		const ns = "conformance-fieldvalidation"
		newNamespace(ctx, ns)
		body := func(name string) []byte {
			return []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + name + `"},"data":{"a":"1"},"data":{"b":"2"},"bogus":1}`)
		}
		rc := target.Clientset().CoreV1().RESTClient()
		post := func(validation, name string) (*corev1.ConfigMap, []string, error) {
			var mu sync.Mutex
			var warnings []string
			cfg := rest.CopyConfig(target.Config)
			cfg.WarningHandler = warningFunc(func(code int, agent, text string) {
				mu.Lock()
				defer mu.Unlock()
				warnings = append(warnings, text)
			})
			cs := kubernetes.NewForConfigOrDie(cfg)
			out := &corev1.ConfigMap{}
			err := cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("configmaps").
				Param("fieldValidation", validation).Body(body(name)).SetHeader("Content-Type", "application/json").Do(ctx).Into(out)
			return out, warnings, err
		}
		_, _, err := post("Strict", "strict")
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "data", unknown field "bogus"`))
		_, err = target.Clientset().CoreV1().ConfigMaps(ns).Get(ctx, "strict", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())

		cm, warnings, err := post("Warn", "warn")
		Expect(err).NotTo(HaveOccurred())
		Expect(warnings).To(ConsistOf(`unknown field "bogus"`, `duplicate field "data"`))
		// A duplicate map merges into the first, as kube-apiserver decodes.
		Expect(cm.Data).To(Equal(map[string]string{"a": "1", "b": "2"}))

		_, warnings, err = post("Ignore", "ignore")
		Expect(err).NotTo(HaveOccurred())
		Expect(warnings).To(BeEmpty())

		r := rc.Post().Namespace(ns).Resource("configmaps").Param("fieldValidation", "Sometimes").Body(body("bad")).SetHeader("Content-Type", "application/json").Do(ctx)
		Expect(apierrors.IsInvalid(r.Error())).To(BeTrue(), "%v", r.Error())
		Expect(r.Error().Error()).To(Equal(`CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Sometimes": supported values: "", "Ignore", "Strict", "Warn"`))

		// Server-side apply validates against the schema.
		apply := []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: \"1\"\nbogus: 1\n")
		err = rc.Patch(types.ApplyYAMLPatchType).Namespace(ns).Resource("configmaps").Name("applied").
			Param("fieldManager", "conformance").Param("fieldValidation", "Strict").Body(apply).Do(ctx).Error()
		// kube-apiserver answers this one with a 500.
		Expect(apierrors.IsInternalError(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`failed to create typed patch object (/applied; /v1, Kind=ConfigMap): .bogus: field not declared in schema`))
	})

	It("serves metadata-only objects to the metadata client and metadata informers", func(ctx SpecContext) {
		const ns = "conformance-metadata"
		newNamespace(ctx, ns)
		mc := metadata.NewForConfigOrDie(target.Config)
		gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
		factory := metadatainformer.NewFilteredSharedInformerFactory(mc, 0, ns, nil)
		informer := factory.ForResource(gvr).Informer()
		var mu sync.Mutex
		var events []string
		_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				mu.Lock()
				defer mu.Unlock()
				m := obj.(*metav1.PartialObjectMetadata)
				events = append(events, "add "+m.Name+" "+m.Labels["stage"])
			},
			UpdateFunc: func(_, obj any) {
				mu.Lock()
				defer mu.Unlock()
				m := obj.(*metav1.PartialObjectMetadata)
				events = append(events, "update "+m.Name+" "+m.Labels["stage"])
			},
			DeleteFunc: func(obj any) {
				mu.Lock()
				defer mu.Unlock()
				if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				events = append(events, "delete "+obj.(*metav1.PartialObjectMetadata).Name)
			},
		})
		Expect(err).NotTo(HaveOccurred())
		stop := make(chan struct{})
		defer close(stop)
		factory.Start(stop)
		factory.WaitForCacheSync(stop)

		cms := target.Clientset().CoreV1().ConfigMaps(ns)
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "meta", Labels: map[string]string{"stage": "one"}},
			Data: map[string]string{"secret-ish": "not in metadata"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := mc.Resource(gvr).Namespace(ns).Get(ctx, "meta", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Labels).To(Equal(map[string]string{"stage": "one"}))
		Expect(got.UID).NotTo(BeEmpty())
		list, err := mc.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.ResourceVersion).NotTo(BeEmpty())

		_, err = mc.Resource(gvr).Namespace(ns).Patch(ctx, "meta", types.MergePatchType, []byte(`{"metadata":{"labels":{"stage":"two"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(mc.Resource(gvr).Namespace(ns).Delete(ctx, "meta", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), events...)
		}).WithTimeout(10 * time.Second).Should(Equal([]string{"add meta one", "update meta two", "delete meta"}))
		// On the wire: metadata only, for get, list and watch.
		Expect(fmt.Sprint(got)).NotTo(ContainSubstring("not in metadata"))
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "wire"}, Data: map[string]string{"k": "not in metadata"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		path := "/api/v1/namespaces/" + ns + "/configmaps"
		for _, c := range []struct{ path, as, kind string }{
			{path + "/wire", "PartialObjectMetadata", `"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1"`},
			{path, "PartialObjectMetadataList", `"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1"`},
			{path + "?watch=true&timeoutSeconds=1", "PartialObjectMetadata", `{"type":"ADDED","object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1"`},
		} {
			r := get(ctx, c.path, map[string]string{"Accept": "application/json;as=" + c.as + ";g=meta.k8s.io;v=v1"})
			Expect(r.code).To(Equal(http.StatusOK), c.path)
			Expect(string(r.body)).To(ContainSubstring(c.kind), c.path)
			Expect(string(r.body)).To(ContainSubstring(`"name":"wire"`), c.path)
			Expect(string(r.body)).NotTo(ContainSubstring("not in metadata"), c.path)
		}
	})

	It("records managedFields of apply configurations as kube-apiserver does", func(ctx SpecContext) {
		const ns = "conformance-managedfields"
		newNamespace(ctx, ns)
		deployments := target.Clientset().AppsV1().Deployments(ns)
		labels := map[string]string{"app": "mf"}
		container := func(image string) *corev1apply.ContainerApplyConfiguration {
			return corev1apply.Container().WithName("app").WithImage(image)
		}
		apply := func(manager string, force bool, replicas int32, image string) *appsv1.Deployment {
			GinkgoHelper()
			d := appsv1apply.Deployment("mf", ns).WithLabels(labels).WithSpec(appsv1apply.DeploymentSpec().
				WithReplicas(replicas).
				WithSelector(metav1apply.LabelSelector().WithMatchLabels(labels)).
				WithTemplate(corev1apply.PodTemplateSpec().WithLabels(labels).WithSpec(corev1apply.PodSpec().WithContainers(container(image)))))
			out, err := deployments.Apply(ctx, d, metav1.ApplyOptions{FieldManager: manager, Force: force})
			Expect(err).NotTo(HaveOccurred())
			return out
		}
		apply("alice", false, 1, "registry.k8s.io/pause:3.10")

		// A conflicting apply names the manager and the field.
		_, err := deployments.Apply(ctx, appsv1apply.Deployment("mf", ns).WithSpec(appsv1apply.DeploymentSpec().WithReplicas(3)),
			metav1.ApplyOptions{FieldManager: "bob"})
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`Apply failed with 1 conflict: conflict with "alice": .spec.replicas`))

		// An update, a strategic merge patch and a status apply by others.
		d, err := deployments.Get(ctx, "mf", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		d.Annotations = map[string]string{"owner": "carol"}
		_, err = deployments.Update(ctx, d, metav1.UpdateOptions{FieldManager: "carol"})
		Expect(err).NotTo(HaveOccurred())
		_, err = deployments.Patch(ctx, "mf", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"MODE","value":"dave"}]}]}}}}`), metav1.PatchOptions{FieldManager: "dave"})
		Expect(err).NotTo(HaveOccurred())
		// A status apply owns no spec field, a spec apply no status field:
		// kube-apiserver resets them (the strategies' reset fields).
		_, err = deployments.ApplyStatus(ctx, appsv1apply.Deployment("mf", ns).
			WithSpec(appsv1apply.DeploymentSpec().WithReplicas(7)).
			WithStatus(appsv1apply.DeploymentStatus().WithReplicas(1).WithObservedGeneration(1)),
			metav1.ApplyOptions{FieldManager: "erin", Force: true})
		Expect(err).NotTo(HaveOccurred())
		frank, err := deployments.Apply(ctx, appsv1apply.Deployment("mf", ns).WithLabels(map[string]string{"team": "frank"}).
			WithStatus(appsv1apply.DeploymentStatus().WithReplicas(5)), metav1.ApplyOptions{FieldManager: "frank"})
		Expect(err).NotTo(HaveOccurred())
		Expect(*frank.Spec.Replicas).To(Equal(int32(1)))
		Expect(frank.Status.Replicas).To(Equal(int32(1)))
		// Forcing takes the field over.
		final := apply("bob-forced", true, 2, "registry.k8s.io/pause:3.10")
		Expect(*final.Spec.Replicas).To(Equal(int32(2)))
		Expect(final.Spec.Template.Spec.Containers[0].Env).To(HaveLen(1))

		// Times differ between runs; everything else is kube-apiserver's.
		for i := range final.ManagedFields {
			final.ManagedFields[i].Time = nil
		}
		b, err := json.MarshalIndent(final.ManagedFields, "", "  ")
		Expect(err).NotTo(HaveOccurred())
		expectGolden("managedfields-deployment.json", string(b)+"\n")
		// Deployments count annotation changes as well as spec changes:
		// the update, the patch and the forced apply.
		Expect(final.Generation).To(Equal(int64(4)))
		Expect(ptr.Deref(final.Spec.Replicas, 0)).To(Equal(int32(2)))
	})
})

// warningFunc is a rest.WarningHandler made of a function.
type warningFunc func(code int, agent, text string)

func (f warningFunc) HandleWarningHeader(code int, agent, text string) { f(code, agent, text) }
