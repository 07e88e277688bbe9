package apiserver

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/deprecation"
	"k8s.io/apiserver/pkg/endpoints/handlers"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/kubesim/kubesim/apiserver/registry"
	"github.com/kubesim/kubesim/internal/stack"
)

// endpointKey identifies a resource or subresource at a group version.
type endpointKey struct {
	group, version, resource, subresource string
}

// verbHandlers are the handlers of one endpoint by request verb.
type verbHandlers struct {
	namespaced bool
	// fieldManager is the endpoint's field manager, as its handlers use it.
	fieldManager *managedfields.FieldManager
	byVerb       map[string]http.HandlerFunc
	// watchList is the watch handler of a collection (/watch/ without a
	// name), instrumented as its own route.
	watchList http.HandlerFunc
}

// routeVerbs are the verbs of kube-apiserver's routes, which its request
// metrics report, by request verb.
var routeVerbs = map[string]string{
	"get": "GET", "list": "LIST", "watch": "WATCH", "create": "POST", "update": "PUT",
	"patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETECOLLECTION",
}

// apiHandler serves every resource request under /api and /apis.
type apiHandler struct {
	endpoints map[endpointKey]*verbHandlers
	// served group versions: a miss inside one is a Status 404, a miss
	// outside any is Go's plain 404, as kube-apiserver answers.
	groupVersions map[schema.GroupVersion]bool
	// crd serves what no built-in group version does: the CRDs' groups.
	crd http.Handler
	// remote is the aggregator's proxy of a group version an APIService
	// backed by a Service serves, nil for any other.
	remote func(*http.Request) http.Handler
}

// fieldManager is the field manager of group/version/resource's
// subresource ("": the resource) as its handlers use it, nil if it is not
// served.
func (h *apiHandler) fieldManager(gvr schema.GroupVersionResource, subresource string) *managedfields.FieldManager {
	if vh := h.endpoints[endpointKey{gvr.Group, gvr.Version, gvr.Resource, subresource}]; vh != nil {
		return vh.fieldManager
	}
	return nil
}

// newAPIHandler builds the handlers of every served endpoint.
func newAPIHandler(reg *registry.Registry, typeConverter managedfields.TypeConverter, admit admission.Interface, authz authorizer.Authorizer, cfg Config, noAdmissionHooks func() bool) (*apiHandler, error) {
	h := &apiHandler{endpoints: map[endpointKey]*verbHandlers{}, groupVersions: map[schema.GroupVersion]bool{}}
	equivalent := runtime.NewEquivalentResourceRegistry()
	groups := append([]*registry.Group{reg.Core}, reg.Groups...)
	for _, g := range groups {
		for _, gv := range g.Versions {
			for _, ep := range gv.Endpoints {
				st := ep.Storage
				if ep.GroupVersion.Group == "" && ep.Resource == "bindings" {
					st = reg.LegacyBindings()
				}
				if st == nil {
					continue
				}
				vh, err := endpointHandlers(ep, st, typeConverter, equivalent, admit, authz, cfg, noAdmissionHooks)
				if err != nil {
					return nil, err
				}
				h.endpoints[endpointKey{ep.GroupVersion.Group, ep.GroupVersion.Version, ep.Resource, ep.Subresource}] = vh
				h.groupVersions[ep.GroupVersion] = true
			}
		}
	}
	return h, nil
}

func endpointHandlers(ep *registry.Endpoint, st rest.Storage, typeConverter managedfields.TypeConverter, equivalent runtime.EquivalentResourceRegistry, admit admission.Interface, authz authorizer.Authorizer, cfg Config, noAdmissionHooks func() bool) (*verbHandlers, error) {
	scheme := legacyscheme.Scheme
	kind := ep.Kind
	if p, ok := st.(rest.GroupVersionKindProvider); ok {
		kind = p.GroupVersionKind(ep.GroupVersion)
	}
	var table rest.TableConvertor
	if t, ok := st.(rest.TableConvertor); ok {
		table = t
	}
	scope := &handlers.RequestScope{
		Namer:           handlers.ContextBasedNaming{Namer: meta.NewAccessor(), ClusterScoped: !ep.Namespaced},
		Serializer:      legacyscheme.Codecs,
		ParameterCodec:  legacyscheme.ParameterCodec,
		Creater:         growingCreater{scheme},
		Convertor:       scheme,
		Defaulter:       scheme,
		Typer:           scheme,
		UnsafeConvertor: runtime.UnsafeObjectConvertor(scheme),
		// Creates through update and apply are authorized as creates.
		Authorizer:               authz,
		EquivalentResourceMapper: equivalent,
		TableConvertor:           table,
		Resource:                 ep.GroupVersion.WithResource(ep.Resource),
		Subresource:              ep.Subresource,
		Kind:                     kind,
		HubGroupVersion:          schema.GroupVersion{Group: kind.Group, Version: runtime.APIVersionInternal},
		MetaGroupVersion:         metav1.SchemeGroupVersion,
		MaxRequestBodyBytes:      cfg.MaxRequestBodyBytes,
	}
	equivalent.RegisterKindFor(scope.Resource, ep.Subresource, kind)

	var resetFields map[fieldpath.APIVersion]fieldpath.Filter
	if r, ok := st.(rest.ResetFieldsStrategy); ok {
		resetFields = fieldpath.NewExcludeFilterSetMap(r.GetResetFields())
	}
	fm, err := managedfields.NewDefaultFieldManager(typeConverter, scope.UnsafeConvertor, scheme, scheme, kind, scope.HubGroupVersion, ep.Subresource, resetFields)
	if err != nil {
		return nil, fmt.Errorf("unable to create field manager for %s: %w", scope.Resource, err)
	}
	scope.FieldManager = fm
	if ep.GroupVersion.Group == "" && (ep.Resource == "bindings" || ep.Resource == "pods" && ep.Subresource == "binding") {
		scope.Creater = bindingCreater{ObjectCreater: growingCreater{scheme}, noHooks: noAdmissionHooks}
	}

	minTimeout := cfg.MinRequestTimeout
	vh := &verbHandlers{namespaced: ep.Namespaced, byVerb: map[string]http.HandlerFunc{}, fieldManager: fm}
	// Deprecated APIs warn on every request, as kube-apiserver's installer
	// arranges.
	var (
		warnings       []string
		deprecated     bool
		removedRelease string
	)
	if versioned, err := scheme.New(ep.Kind); err == nil {
		versioned.GetObjectKind().SetGroupVersionKind(ep.Kind)
		v := Version()
		major, _ := strconv.Atoi(v.Major)
		minor, _ := strconv.Atoi(v.Minor)
		if deprecation.IsDeprecated(versioned, major, minor) {
			deprecated, removedRelease = true, deprecation.RemovedRelease(versioned)
			warnings = append(warnings, deprecation.WarningMessage(versioned))
		}
	}
	// Upstream's handler constructors wrap their admission argument inside
	// the handler they return, so, as in kube-apiserver's routes, a handler
	// is made per request: a cached one would wrap it again on every call.
	add := func(verb string, mk func() http.HandlerFunc) {
		action := routeVerbs[verb]
		vh.byVerb[verb] = instrument(action, scope.Resource, ep.Subresource, deprecated, removedRelease, func(w http.ResponseWriter, req *http.Request) {
			for _, msg := range warnings {
				warning.AddWarning(req.Context(), "", msg)
			}
			mk()(w, req)
		})
		if verb == "watch" {
			// A watch of one object and of a collection are two routes.
			vh.watchList = instrument("WATCHLIST", scope.Resource, ep.Subresource, deprecated, removedRelease, func(w http.ResponseWriter, req *http.Request) {
				for _, msg := range warnings {
					warning.AddWarning(req.Context(), "", msg)
				}
				mk()(w, req)
			})
		}
	}
	if g, ok := st.(rest.Getter); ok {
		add("get", func() http.HandlerFunc { return handlers.GetResource(g, scope) })
	} else if g, ok := st.(rest.GetterWithOptions); ok {
		add("get", func() http.HandlerFunc { return handlers.GetResourceWithOptions(g, scope, ep.Subresource != "") })
	}
	if c, ok := st.(rest.Connecter); ok {
		// exec, attach and portforward: GET (websockets) and POST (SPDY)
		// upgrade to a stream proxied to the kubelet; pods, services and
		// nodes/proxy take every method.
		restPath := "/" + ep.Subresource
		for _, method := range c.ConnectMethods() {
			// The verbs RequestInfo gives these methods (OPTIONS has none).
			verb := map[string]string{"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "HEAD": "get", "OPTIONS": ""}[method]
			add(verb, func() http.HandlerFunc {
				return handlers.ConnectResource(c, scope, admit, restPath, ep.Subresource != "")
			})
		}
	}
	if l, ok := st.(rest.Lister); ok {
		w, _ := st.(rest.Watcher)
		add("list", func() http.HandlerFunc {
			list := compressLists(handlers.ListResource(l, w, scope, false, minTimeout))
			return func(w http.ResponseWriter, req *http.Request) {
				// A list sent as it is (not as a Table or as partial
				// object metadata) may be encoded from its items' kept
				// encodings (registry.WithEncodedLists).
				if !strings.Contains(req.Header.Get("Accept"), "as=") {
					req = req.WithContext(registry.WithEncodedLists(req.Context()))
				}
				list(w, req)
			}
		})
		if w != nil {
			add("watch", func() http.HandlerFunc { return handlers.ListResource(l, w, scope, true, minTimeout) })
		}
	} else if w, ok := st.(rest.Watcher); ok {
		add("watch", func() http.HandlerFunc { return handlers.ListResource(nil, w, scope, true, minTimeout) })
	}
	if c, ok := st.(rest.NamedCreater); ok && ep.Subresource != "" {
		add("create", func() http.HandlerFunc { return handlers.CreateNamedResource(c, scope, admit) })
	} else if c, ok := st.(rest.Creater); ok {
		add("create", func() http.HandlerFunc { return handlers.CreateResource(c, scope, admit) })
	}
	if u, ok := st.(rest.Updater); ok {
		add("update", func() http.HandlerFunc { return handlers.UpdateResource(u, scope, admit) })
	}
	if p, ok := st.(rest.Patcher); ok {
		patchTypes := []string{
			string(types.JSONPatchType), string(types.MergePatchType), string(types.StrategicMergePatchType), string(types.ApplyYAMLPatchType), string(types.ApplyCBORPatchType),
		}
		add("patch", func() http.HandlerFunc { return handlers.PatchResource(p, scope, admit, patchTypes) })
	}
	if d, ok := st.(rest.GracefulDeleter); ok {
		add("delete", func() http.HandlerFunc { return handlers.DeleteResource(d, true, scope, admit) })
	}
	if d, ok := st.(rest.CollectionDeleter); ok {
		add("deletecollection", func() http.HandlerFunc { return handlers.DeleteCollection(d, true, scope, admit) })
	}
	return vh, nil
}

func (h *apiHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	info, ok := request.RequestInfoFrom(req.Context())
	if h.remote != nil {
		if rh := h.remote(req); rh != nil {
			rh.ServeHTTP(w, req)
			return
		}
	}
	if !ok || !info.IsResourceRequest || !h.groupVersions[schema.GroupVersion{Group: info.APIGroup, Version: info.APIVersion}] {
		if ok && h.crd != nil && info.APIPrefix == "apis" {
			h.crd.ServeHTTP(w, req)
			return
		}
		http.NotFound(w, req)
		return
	}
	vh := h.endpoints[endpointKey{info.APIGroup, info.APIVersion, info.Resource, info.Subresource}]
	if vh == nil {
		notFound(w, req)
		return
	}
	verb := info.Verb
	isNamespacesResource := info.APIGroup == "" && info.Resource == "namespaces"
	switch {
	case vh.namespaced && info.Namespace == "":
		// Across namespaces only list and watch exist.
		if (verb != "list" && verb != "watch") || info.Name != "" {
			notFound(w, req)
			return
		}
	case !vh.namespaced && info.Namespace != "" && !isNamespacesResource:
		notFound(w, req)
		return
	}
	// Item verbs need a name in the path, and create takes none (but on a
	// subresource); anything else is a route kube-apiserver does not have.
	// (A list's name comes from its metadata.name field selector.)
	switch verb {
	case "get", "update", "patch", "delete":
		if info.Name == "" {
			methodNotAllowed(w, req)
			return
		}
	case "create":
		if info.Name != "" && info.Subresource == "" {
			methodNotAllowed(w, req)
			return
		}
	}
	// ?watch=true on a list is served by the list handler, which watches
	// when asked; the /watch/ path prefix forces a watch.
	if verb == "watch" && !strings.Contains(req.URL.Path, "/watch/") {
		verb = "list"
	}
	fn := vh.byVerb[verb]
	if verb == "watch" && info.Name == "" && vh.watchList != nil {
		fn = vh.watchList
	}
	if fn == nil {
		// kube-apiserver has no route for a verb its storage lacks:
		// go-restful answers 405.
		methodNotAllowed(w, req)
		return
	}
	fn(w, req)
}

func methodNotAllowed(w http.ResponseWriter, req *http.Request) {
	responsewriters.ErrorNegotiated(apierrors.NewGenericServerResponse(http.StatusMethodNotAllowed, "", schema.GroupResource{}, "", "", 0, false),
		legacyscheme.Codecs, schema.GroupVersion{}, w, req)
}

func notFound(w http.ResponseWriter, req *http.Request) {
	responsewriters.ErrorNegotiated(apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "", "", 0, false),
		legacyscheme.Codecs, schema.GroupVersion{}, w, req)
}

// growingCreater grows the stack of the goroutine a create runs in before
// the field manager's walk of the object (internal/stack): the create
// handler's first call in that goroutine is to New, for the live object the
// field manager compares the new one with.
type growingCreater struct{ runtime.ObjectCreater }

func (c growingCreater) New(kind schema.GroupVersionKind) (runtime.Object, error) {
	stack.Grow()
	return c.ObjectCreater.New(kind)
}

// bindingCreater leaves a Binding's managed fields untracked while no
// admission webhook or policy exists: the create handler's field manager
// gives the Binding the scheduler posts managed fields, which nothing but
// such a hook ever sees (a Binding is not stored; its response is a
// Status), at 3% of the API server's CPU in a scheduler experiment. The
// field manager leaves an object alone when the live object it is given
// has no metadata; the handler uses Creater for nothing else.
type bindingCreater struct {
	runtime.ObjectCreater
	noHooks func() bool
}

func (c bindingCreater) New(kind schema.GroupVersionKind) (runtime.Object, error) {
	if c.noHooks != nil && c.noHooks() {
		return &metav1.Status{}, nil
	}
	return c.ObjectCreater.New(kind)
}
