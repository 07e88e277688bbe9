package openapi

import (
	"crypto/sha512"
	"embed"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"

	restful "github.com/emicklei/go-restful/v3"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/mux"
	"k8s.io/apiserver/pkg/server/routes"
	utilopenapi "k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/cached"
	openapicommon "k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/common/restfuladapter"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"
)

// unserved are kube-apiserver's OpenAPI documents of the group versions
// its apiextensions and aggregator servers serve (CustomResourceDefinitions,
// served by kubesim, and APIServices, not served yet): hack/update-openapi.sh
// copies them from the pin.
//
//go:embed spec/swagger.json spec/v3/*.json
var unserved embed.FS

// EmbeddedGroup is the group whose documents are kube-apiserver's,
// embedded, rather than built from kubesim's routes.
const EmbeddedGroup = "apiextensions.k8s.io"

// Mux is where the OpenAPI handlers are installed.
type Mux interface {
	Handle(path string, handler http.Handler)
	HandlePrefix(path string, handler http.Handler)
}

// Config is kube-apiserver's OpenAPI v2 configuration: its generated
// definitions (k8s.io/kubernetes/pkg/generated/openapi, without those of
// disabled features), its definition namer and its title and version.
func Config(version string) *openapicommon.Config {
	defs := utilopenapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions)
	cfg := genericapiserver.DefaultOpenAPIConfig(defs, openapinamer.NewDefinitionNamer(legacyscheme.Scheme))
	cfg.Info.Title = "Kubernetes"
	cfg.Info.Version = version
	// The bearer token scheme and what completion adds (see V3Config).
	cfg.SecurityDefinitions = &spec.SecurityDefinitions{"BearerToken": {SecuritySchemeProps: spec.SecuritySchemeProps{
		Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
	}}}
	for _, k := range slices.Sorted(maps.Keys(*cfg.SecurityDefinitions)) {
		cfg.DefaultSecurity = append(cfg.DefaultSecurity, map[string][]string{k: {}})
	}
	cfg.CommonResponses = map[int]spec.Response{http.StatusUnauthorized: {ResponseProps: spec.ResponseProps{Description: "Unauthorized"}}}
	return cfg
}

// Documents serves /openapi/v2 and /openapi/v3 (with its per group-version
// documents), in JSON and protobuf, built as kube-apiserver builds them: by
// kube-openapi from the go-restful routes of every endpoint and the
// generated definitions, with the CRDs' schemas. Building the built-in
// documents takes a while (half a second here for both), so they are built
// on their first request (clients that never ask, client-go and the
// controllers, never pay for it) and once per process for every server of
// the same routes: a test binary's clusters share them.
type Documents struct {
	builtin *builtinDocuments
	v2      *mux.PathRecorderMux

	// crds lists the CRDs whose schemas the documents include; crdsV3
	// serves their group versions' v3 documents.
	crdMu  sync.Mutex
	crds   CRDLister
	crdsV3 crdV3

	// remote gives the group versions of aggregated API servers, each
	// path (apis/<group>/<version>) with the handler that proxies to the
	// server, as kube-aggregator's OpenAPI v3 proxier does.
	remote func() map[string]http.Handler
}

// SetRemote sets the group versions of aggregated API servers, whose v3
// documents are theirs, fetched through the handler.
func (d *Documents) SetRemote(remote func() map[string]http.Handler) { d.remote = remote }

// builtinDocuments are the documents of the built-in routes, which every
// server of one set of routes shares.
type builtinDocuments struct {
	version string
	// paths are the built-in group versions' paths (api/v1, apis/<g>/<v>).
	paths  []string
	routes cached.Value[*restful.Container]
	v2     cached.Value[*spec.Swagger]

	v3once sync.Once
	v3     *handler3.OpenAPIService
	v3err  error
}

// builtins holds the built-in documents by key.
var builtins sync.Map // string -> *builtinDocuments

// New returns the documents of the routes that routes returns (called
// once, when first needed); version is their info.version; paths are the
// group versions' paths (api/v1, apis/<group>/<version>). Servers that
// give the same key share the documents: key must name the routes.
func New(routes func() (*restful.Container, error), version, key string, paths []string) *Documents {
	b := &builtinDocuments{version: version, paths: paths}
	b.routes = cached.Once(cached.Func(func() (*restful.Container, string, error) {
		c, err := routes()
		return c, "", err
	}))
	b.v2 = cached.Once(cached.Func(b.buildV2))
	if shared, loaded := builtins.LoadOrStore(version+"\n"+key, b); loaded {
		b = shared.(*builtinDocuments)
	}
	d := &Documents{builtin: b, v2: mux.NewPathRecorderMux("openapi-v2")}
	// v2: one document of every route (routes.OpenAPI.InstallV2), with the
	// paths of the unserved groups merged in as kube-aggregator merges
	// them, and the CRDs' as its OpenAPI controller merges them.
	handler.NewOpenAPIServiceLazy(&crdV2{d: d, static: b.v2.Get}).RegisterOpenAPIVersionedService("/openapi/v2", d.v2)
	d.crdsV3.service = handler3.NewOpenAPIService()
	return d
}

// Install registers the handlers of /openapi/v2 and /openapi/v3 on m.
func (d *Documents) Install(m Mux) {
	m.Handle("/openapi/v2", d.v2)
	m.HandlePrefix("/openapi/v3", http.HandlerFunc(d.serveV3))
}

// Prepare builds the documents now, if not built yet.
func (d *Documents) Prepare() error {
	if _, _, err := d.builtin.v2.Get(); err != nil {
		return err
	}
	_, err := d.builtin.prepareV3()
	return err
}

func (b *builtinDocuments) buildV2() (*spec.Swagger, string, error) {
	container, _, err := b.routes.Get()
	if err != nil {
		return nil, "", err
	}
	v2, err := builder.BuildOpenAPISpecFromRoutes(restfuladapter.AdaptWebServices(container.RegisteredWebServices()), Config(b.version))
	if err != nil {
		return nil, "", fmt.Errorf("unable to build the OpenAPI v2 document: %w", err)
	}
	if err := mergeUnserved(v2); err != nil {
		return nil, "", err
	}
	v2.Definitions = handler.PruneDefaults(v2.Definitions)
	return v2, "v2", nil
}

// prepareV3 builds the v3 documents of the built-in group versions (and
// of the embedded ones), once.
func (b *builtinDocuments) prepareV3() (*handler3.OpenAPIService, error) {
	b.v3once.Do(func() {
		container, _, err := b.routes.Get()
		if err != nil {
			b.v3err = err
			return
		}
		// A document per group version and per discovery root.
		cfg := V3Config(legacyscheme.Scheme)
		cfg.Info.Version = b.version
		v3 := routes.OpenAPI{V3Config: cfg}.InstallV3(container, mux.NewPathRecorderMux("openapi-v3"))
		files, err := unserved.ReadDir("spec/v3")
		if err != nil {
			b.v3err = err
			return
		}
		for _, f := range files {
			// apis__apiextensions.k8s.io__v1_openapi.json serves as
			// /openapi/v3/apis/apiextensions.k8s.io/v1.
			gv := strings.ReplaceAll(strings.TrimSuffix(f.Name(), "_openapi.json"), "__", "/")
			v3.UpdateGroupVersionLazy(gv, embedded[*spec3.OpenAPI](path.Join("spec/v3", f.Name())))
		}
		b.v3 = v3
	})
	return b.v3, b.v3err
}

// serveV3 serves /openapi/v3: the discovery document of the built-in and
// the CRD group versions, and each one's document.
func (d *Documents) serveV3(w http.ResponseWriter, req *http.Request) {
	logger := klog.FromContext(req.Context())
	builtin, err := d.builtin.prepareV3()
	if err != nil {
		logger.Error(err, "Building the OpenAPI v3 documents")
		http.Error(w, "the OpenAPI documents could not be built", http.StatusInternalServerError)
		return
	}
	if err := d.crdsV3.sync(d); err != nil {
		logger.Error(err, "Building the OpenAPI v3 documents of custom resources")
	}
	p := strings.TrimSuffix(req.URL.Path, "/")
	var remote map[string]http.Handler
	if d.remote != nil {
		remote = d.remote()
	}
	if p == "/openapi/v3" {
		d.crdsV3.serveDiscovery(w, req, builtin, remote)
		return
	}
	if h, ok := remote[strings.TrimPrefix(p, "/openapi/v3/")]; ok {
		// The aggregated server's own document, through the proxy.
		h.ServeHTTP(w, req)
		return
	}
	if d.crdsV3.has(strings.TrimPrefix(p, "/openapi/v3/")) {
		d.crdsV3.service.HandleGroupVersion(w, req)
		return
	}
	builtin.HandleGroupVersion(w, req)
}

// mergeUnserved adds the paths and definitions of the unserved groups.
func mergeUnserved(v2 *spec.Swagger) error {
	b, err := unserved.ReadFile("spec/swagger.json")
	if err != nil {
		return err
	}
	var extra spec.Swagger
	if err := json.Unmarshal(b, &extra); err != nil {
		return fmt.Errorf("unable to parse the unserved groups' OpenAPI: %w", err)
	}
	for p, item := range extra.Paths.Paths {
		if _, ok := v2.Paths.Paths[p]; !ok {
			v2.Paths.Paths[p] = item
		}
	}
	for name, def := range extra.Definitions {
		if _, ok := v2.Definitions[name]; !ok {
			v2.Definitions[name] = def
		}
	}
	return nil
}

func etag(b []byte) string { return fmt.Sprintf("%X", sha512.Sum512(b)) }

// embedded parses an embedded document on first use.
func embedded[T any](name string) cached.Value[T] {
	return cached.Once(cached.Func(func() (T, string, error) {
		var out T
		b, err := unserved.ReadFile(name)
		if err != nil {
			return out, "", err
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return out, "", fmt.Errorf("unable to parse %s: %w", name, err)
		}
		return out, etag(b), nil
	}))
}
