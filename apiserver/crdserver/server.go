package crdserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiextensionshelpers "k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/conversion"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apiextensionsinformers "k8s.io/apiextensions-apiserver/pkg/client/informers/externalversions"
	listers "k8s.io/apiextensions-apiserver/pkg/client/listers/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/controller/apiapproval"
	"k8s.io/apiextensions-apiserver/pkg/controller/establish"
	"k8s.io/apiextensions-apiserver/pkg/controller/finalizer"
	"k8s.io/apiextensions-apiserver/pkg/controller/nonstructuralschema"
	"k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
	"k8s.io/apiextensions-apiserver/pkg/controller/status"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource/tableconvertor"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	discoveryendpoint "k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
	"k8s.io/apiserver/pkg/endpoints/handlers"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/metrics"
	apirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/registry/rest"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/utils/clock"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/kubesim/kubesim/apiserver/registry"
	"github.com/kubesim/kubesim/apiserver/storage"
)

// Config configures a Server.
type Config struct {
	// Storage is the backend custom resources are stored in. Required.
	Storage storage.Interface
	// Client is the loopback client the CRD controllers write status with.
	// Required.
	Client apiextensionsclient.Interface
	// Informers is the factory the CRD informer comes from; the caller
	// starts it. Required.
	Informers apiextensionsinformers.SharedInformerFactory
	// Admission is the admission chain custom resources go through, the
	// same as built-in resources'. Default: none.
	Admission admission.Interface
	// Authorizer authorizes creates through update and apply. Required.
	Authorizer authorizer.Authorizer
	// ServiceResolver and AuthResolverWrapper reach conversion webhooks,
	// as they reach admission webhooks. Required.
	ServiceResolver     webhook.ServiceResolver
	AuthResolverWrapper webhook.AuthenticationInfoResolverWrapper
	// StaticModels returns the OpenAPI models of the built-in types custom
	// resources embed (ObjectMeta, ...), for their managed fields. Required.
	StaticModels func() (map[string]*spec.Schema, error)
	// Aggregated and Root publish the CRD group versions in discovery: the
	// aggregated document and the legacy /apis group list. Required.
	Aggregated discoveryendpoint.ResourceManager
	Root       GroupList
	// NotFound answers requests for no served resource. Default: Go's 404.
	NotFound http.Handler
	// Clock stamps deletions. Default: the real clock.
	Clock clock.WithTicker
	// MinRequestTimeout bounds watches that give no timeoutSeconds.
	// Default: 30m.
	MinRequestTimeout time.Duration
	// MaxRequestBodyBytes caps request bodies. Default: 3 MiB.
	MaxRequestBodyBytes int64
}

// Server serves the custom resources of the cluster's
// CustomResourceDefinitions, and runs the controllers kube-apiserver's
// apiextensions server runs: names and conditions, establishing, the
// removal of a deleted CRD's objects, discovery.
type Server struct {
	cfg              Config
	crdLister        listers.CustomResourceDefinitionLister
	crdInformer      cache.SharedIndexInformer
	converterFactory *conversion.CRConverterFactory
	establishing     *establish.EstablishingController
	discovery        *discoveryHandlers
	discoveryCtl     *discoveryController

	// mu serializes changes to infos; readers load it without locking.
	mu    sync.Mutex
	infos atomic.Pointer[map[types.UID]*crdInfo]
}

// crdInfo is what serving one CRD takes, rebuilt when its spec or accepted
// names change.
type crdInfo struct {
	spec          *apiextensionsv1.CustomResourceDefinitionSpec
	acceptedNames *apiextensionsv1.CustomResourceDefinitionNames
	// versions are the served (and the storage) versions, by name.
	versions       map[string]*versionInfo
	storageVersion string
}

// versionInfo serves one version of a CRD.
type versionInfo struct {
	store       *registry.Store
	status      rest.Storage // nil without a status subresource
	scale       *scaleREST   // nil without a scale subresource
	scope       *handlers.RequestScope
	statusScope *handlers.RequestScope
	scaleScope  *handlers.RequestScope
	// statusResetFields are the fields a status write leaves alone.
	statusResetFields map[fieldpath.APIVersion]*fieldpath.Set
	deprecated        bool
	warnings          []string
}

// New validates cfg, fills in its defaults and returns a Server.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Storage == nil, cfg.Client == nil, cfg.Informers == nil, cfg.Authorizer == nil, cfg.StaticModels == nil,
		cfg.Aggregated == nil, cfg.Root == nil:
		return nil, errors.New("unable to create the CRD server: Storage, Client, Informers, Authorizer, StaticModels, Aggregated and Root are required")
	}
	if cfg.NotFound == nil {
		cfg.NotFound = http.NotFoundHandler()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.MinRequestTimeout == 0 {
		cfg.MinRequestTimeout = 30 * time.Minute
	}
	if cfg.MaxRequestBodyBytes == 0 {
		cfg.MaxRequestBodyBytes = 3 * 1024 * 1024
	}
	crds := cfg.Informers.Apiextensions().V1().CustomResourceDefinitions()
	s := &Server{
		cfg:          cfg,
		crdLister:    crds.Lister(),
		crdInformer:  crds.Informer(),
		establishing: establish.NewEstablishingController(crds, cfg.Client.ApiextensionsV1()),
		discovery:    newDiscoveryHandlers(),
	}
	s.infos.Store(&map[types.UID]*crdInfo{})
	var err error
	if s.converterFactory, err = conversion.NewCRConverterFactory(cfg.ServiceResolver, cfg.AuthResolverWrapper); err != nil {
		return nil, err
	}
	if s.discoveryCtl, err = newDiscoveryController(s.crdInformer, s.crdLister, s.discovery, cfg.Aggregated.WithSource(discoveryendpoint.CRDSource), cfg.Root); err != nil {
		return nil, err
	}
	if _, err := s.crdInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.crdAdded,
		UpdateFunc: s.crdUpdated,
		DeleteFunc: func(any) { s.removeDeadServing() },
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// Run runs the CRD controllers until ctx is done; the informer factory is
// started by the caller.
func (s *Server) Run(ctx context.Context) {
	crds := s.cfg.Informers.Apiextensions().V1().CustomResourceDefinitions()
	client := s.cfg.Client.ApiextensionsV1()
	logger := klog.FromContext(ctx).WithName("apiextensions")
	ctx = klog.NewContext(ctx, logger.V(2))
	naming := status.NewNamingConditionController(klog.FromContext(ctx), crds, client)
	nonStructural := nonstructuralschema.NewConditionController(crds, client)
	approval := apiapproval.NewKubernetesAPIApprovalPolicyConformantConditionController(crds, client)
	finalizing := finalizer.NewCRDFinalizer(crds, client, s)
	var wg sync.WaitGroup
	for _, run := range []func(){
		func() { naming.RunWithContext(ctx) },
		func() { s.establishing.RunWithContext(ctx) },
		func() { nonStructural.RunWithContext(5, ctx) },
		func() { approval.RunWithContext(5, ctx) },
		func() { finalizing.RunWithContext(5, ctx) },
		func() { s.discoveryCtl.run(ctx) },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	wg.Wait()
}

// HasSynced reports whether the CRD informer has synced: requests for
// custom resources are answered from then on.
func (s *Server) HasSynced() bool { return s.crdInformer.HasSynced() }

// possiblyAcrossAllNamespacesVerbs may go without a namespace on a
// namespaced resource.
var possiblyAcrossAllNamespacesVerbs = map[string]bool{"list": true, "watch": true}

// ServeHTTP serves a request under /apis for a CRD's group: its discovery
// and its custom resources. Anything else goes to Config.NotFound.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	requestInfo, ok := apirequest.RequestInfoFrom(ctx)
	if !ok {
		responsewriters.ErrorNegotiated(apierrors.NewInternalError(fmt.Errorf("no RequestInfo found in the context")),
			codecs, schema.GroupVersion{}, w, req)
		return
	}
	if !requestInfo.IsResourceRequest {
		if !s.discovery.serve(w, req) {
			s.cfg.NotFound.ServeHTTP(w, req)
		}
		return
	}
	crdName := requestInfo.Resource + "." + requestInfo.APIGroup
	crd, err := s.crdLister.Get(crdName)
	if apierrors.IsNotFound(err) {
		s.cfg.NotFound.ServeHTTP(w, req)
		return
	}
	gv := schema.GroupVersion{Group: requestInfo.APIGroup, Version: requestInfo.APIVersion}
	if err != nil {
		utilruntime.HandleError(err)
		responsewriters.ErrorNegotiated(apierrors.NewInternalError(fmt.Errorf("error resolving resource")), codecs, gv, w, req)
		return
	}
	// A request of the wrong scope is for no resource (but list and watch
	// across namespaces).
	namespacedCRD, namespacedReq := crd.Spec.Scope == apiextensionsv1.NamespaceScoped, len(requestInfo.Namespace) > 0
	if (!namespacedCRD && namespacedReq) || (namespacedCRD && !namespacedReq && !possiblyAcrossAllNamespacesVerbs[requestInfo.Verb]) {
		s.cfg.NotFound.ServeHTTP(w, req)
		return
	}
	if !apiextensionshelpers.HasServedCRDVersion(crd, requestInfo.APIVersion) {
		s.cfg.NotFound.ServeHTTP(w, req)
		return
	}
	// Served once its names are accepted; established shortly after.
	if !apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.NamesAccepted) &&
		!apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
		s.cfg.NotFound.ServeHTTP(w, req)
		return
	}
	terminating := !crd.DeletionTimestamp.IsZero() || apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.Terminating)

	info, err := s.servingInfo(crd.UID, crd.Name)
	if apierrors.IsNotFound(err) {
		s.cfg.NotFound.ServeHTTP(w, req)
		return
	}
	if err != nil {
		utilruntime.HandleError(err)
		responsewriters.ErrorNegotiated(apierrors.NewInternalError(fmt.Errorf("error resolving resource")), codecs, gv, w, req)
		return
	}
	v := info.versions[requestInfo.APIVersion]
	if v == nil || !hasServedCRDVersion(info.spec, requestInfo.APIVersion) {
		s.cfg.NotFound.ServeHTTP(w, req)
		return
	}
	for _, msg := range v.warnings {
		warning.AddWarning(ctx, "", msg)
	}
	supportedTypes := []string{string(types.JSONPatchType), string(types.MergePatchType), string(types.ApplyYAMLPatchType)}
	if utilfeature.DefaultFeatureGate.Enabled(features.CBORServingAndStorage) {
		supportedTypes = append(supportedTypes, string(types.ApplyCBORPatchType))
	}
	subresources, err := apiextensionshelpers.GetSubresourcesForVersion(crd, requestInfo.APIVersion)
	if err != nil {
		utilruntime.HandleError(err)
		responsewriters.ErrorNegotiated(apierrors.NewInternalError(fmt.Errorf("could not properly serve the subresource")), codecs, gv, w, req)
		return
	}
	var handler http.HandlerFunc
	switch sub := requestInfo.Subresource; {
	case sub == "status" && subresources != nil && subresources.Status != nil:
		handler = s.serveSubresource(w, req, requestInfo, v.statusScope, v.status.(rest.Patcher), supportedTypes)
	case sub == "scale" && subresources != nil && subresources.Scale != nil:
		handler = s.serveSubresource(w, req, requestInfo, v.scaleScope, v.scale, supportedTypes)
	case sub == "":
		handler = s.serveResource(w, req, requestInfo, v, terminating, supportedTypes)
	default:
		responsewriters.ErrorNegotiated(apierrors.NewNotFound(schema.GroupResource{Group: requestInfo.APIGroup, Resource: requestInfo.Resource}, requestInfo.Name),
			codecs, gv, w, req)
	}
	if handler != nil {
		verb := strings.ToUpper(requestInfo.Verb)
		metrics.InstrumentHandlerFunc(verb, requestInfo.APIGroup, requestInfo.APIVersion, requestInfo.Resource, requestInfo.Subresource,
			metrics.CleanScope(requestInfo), metrics.APIServerComponent, v.deprecated, "", handler)(w, req)
	}
}

func (s *Server) serveResource(w http.ResponseWriter, req *http.Request, requestInfo *apirequest.RequestInfo, v *versionInfo, terminating bool, supportedTypes []string) http.HandlerFunc {
	scope, store := v.scope, v.store
	admit := s.cfg.Admission
	if admit == nil {
		admit = admission.NewChainHandler()
	}
	switch requestInfo.Verb {
	case "get":
		return handlers.GetResource(store, scope)
	case "list":
		return handlers.ListResource(store, store, scope, false, s.cfg.MinRequestTimeout)
	case "watch":
		return handlers.ListResource(store, store, scope, true, s.cfg.MinRequestTimeout)
	case "create":
		// kube-apiserver holds a create for two seconds after the CRD is
		// established, for API servers that have not seen it yet; one
		// kubesim process serves from the state it established.
		if terminating {
			admit = &forbidCreateAdmission{delegate: admit}
		}
		return handlers.CreateResource(store, scope, admit)
	case "update":
		return handlers.UpdateResource(store, scope, admit)
	case "patch":
		if terminating {
			admit = &forbidCreateAdmission{delegate: admit}
		}
		return handlers.PatchResource(store, scope, admit, supportedTypes)
	case "delete":
		return handlers.DeleteResource(store, true, scope, admit)
	case "deletecollection":
		return handlers.DeleteCollection(store, true, scope, admit)
	}
	responsewriters.ErrorNegotiated(apierrors.NewMethodNotSupported(schema.GroupResource{Group: requestInfo.APIGroup, Resource: requestInfo.Resource}, requestInfo.Verb),
		codecs, schema.GroupVersion{Group: requestInfo.APIGroup, Version: requestInfo.APIVersion}, w, req)
	return nil
}

func (s *Server) serveSubresource(w http.ResponseWriter, req *http.Request, requestInfo *apirequest.RequestInfo, scope *handlers.RequestScope, storage rest.Patcher, supportedTypes []string) http.HandlerFunc {
	admit := s.cfg.Admission
	if admit == nil {
		admit = admission.NewChainHandler()
	}
	switch requestInfo.Verb {
	case "get":
		return handlers.GetResource(storage, scope)
	case "update":
		return handlers.UpdateResource(storage, scope, admit)
	case "patch":
		return handlers.PatchResource(storage, scope, admit, supportedTypes)
	}
	responsewriters.ErrorNegotiated(apierrors.NewMethodNotSupported(schema.GroupResource{Group: requestInfo.APIGroup, Resource: requestInfo.Resource}, requestInfo.Verb),
		codecs, schema.GroupVersion{Group: requestInfo.APIGroup, Version: requestInfo.APIVersion}, w, req)
	return nil
}

// crdAdded drops serving info made stale by a CRD created again under the
// same UID (create and update events merged).
func (s *Server) crdAdded(obj any) {
	crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, found := (*s.infos.Load())[crd.UID]
	if !found {
		return
	}
	if apiequality.Semantic.DeepEqual(&crd.Spec, old.spec) && apiequality.Semantic.DeepEqual(&crd.Status.AcceptedNames, old.acceptedNames) {
		return
	}
	s.removeLocked(crd.UID)
}

// crdUpdated queues a CRD whose names were accepted to be established,
// and drops its serving info when its spec or accepted names changed.
func (s *Server) crdUpdated(oldObj, newObj any) {
	oldCRD, ok1 := oldObj.(*apiextensionsv1.CustomResourceDefinition)
	newCRD, ok2 := newObj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok1 || !ok2 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !apiextensionshelpers.IsCRDConditionTrue(newCRD, apiextensionsv1.Established) &&
		apiextensionshelpers.IsCRDConditionTrue(newCRD, apiextensionsv1.NamesAccepted) {
		// One API server: no wait for others to see the names.
		s.establishing.QueueCRD(newCRD.Name, 0)
	}
	if oldCRD.UID != newCRD.UID {
		s.removeLocked(oldCRD.UID)
	}
	old, found := (*s.infos.Load())[newCRD.UID]
	if !found {
		return
	}
	if apiequality.Semantic.DeepEqual(&newCRD.Spec, old.spec) && apiequality.Semantic.DeepEqual(&newCRD.Status.AcceptedNames, old.acceptedNames) {
		return
	}
	s.removeLocked(newCRD.UID)
}

// removeLocked drops the serving info of a CRD; s.mu is held.
func (s *Server) removeLocked(uid types.UID) {
	infos := *s.infos.Load()
	if _, ok := infos[uid]; !ok {
		return
	}
	next := make(map[types.UID]*crdInfo, len(infos))
	for k, v := range infos {
		if k != uid {
			next[k] = v
		}
	}
	s.infos.Store(&next)
}

// removeDeadServing drops the serving info of deleted CRDs.
func (s *Server) removeDeadServing() {
	crds, err := s.crdLister.List(labels.Everything())
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	infos := *s.infos.Load()
	next := make(map[types.UID]*crdInfo, len(infos))
	for _, crd := range crds {
		if info, ok := infos[crd.UID]; ok {
			next[crd.UID] = info
		}
	}
	s.infos.Store(&next)
}

// GetCustomResourceListerCollectionDeleter returns the storage of a CRD's
// objects at its storage version, for the finalizer that deletes them.
func (s *Server) GetCustomResourceListerCollectionDeleter(crd *apiextensionsv1.CustomResourceDefinition) (finalizer.ListerCollectionDeleter, error) {
	info, err := s.servingInfo(crd.UID, crd.Name)
	if err != nil {
		return nil, err
	}
	return info.versions[info.storageVersion].store, nil
}

// servingInfo returns the serving info of a CRD, building it if needed.
func (s *Server) servingInfo(uid types.UID, name string) (*crdInfo, error) {
	if info, ok := (*s.infos.Load())[uid]; ok {
		return info, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The latest CRD, read under the lock: an update that removes the info
	// after this is built makes the next request build it again.
	crd, err := s.crdLister.Get(name)
	if err != nil {
		return nil, err
	}
	infos := *s.infos.Load()
	if info, ok := infos[crd.UID]; ok {
		return info, nil
	}
	info, err := s.buildServingInfo(crd)
	if err != nil {
		return nil, err
	}
	next := make(map[types.UID]*crdInfo, len(infos)+1)
	for k, v := range infos {
		next[k] = v
	}
	next[crd.UID] = info
	s.infos.Store(&next)
	return info, nil
}

// buildServingInfo builds what serving a CRD takes, as apiextensions-apiserver's
// getOrCreateServingInfoFor does, over kubesim's storage and Store.
func (s *Server) buildServingInfo(crd *apiextensionsv1.CustomResourceDefinition) (*crdInfo, error) {
	storageVersion, err := apiextensionshelpers.GetCRDStorageVersion(crd)
	if err != nil {
		return nil, err
	}
	equivalent := runtime.NewEquivalentResourceRegistry()

	structuralSchemas := map[string]*structuralschema.Structural{}
	for _, v := range crd.Spec.Versions {
		val, err := apiextensionshelpers.GetSchemaForVersion(crd, v.Name)
		if err != nil {
			utilruntime.HandleError(err)
			return nil, fmt.Errorf("the server could not properly serve the CR schema")
		}
		if val == nil {
			continue
		}
		internalValidation := &apiextensionsinternal.CustomResourceValidation{}
		if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(val, internalValidation, nil); err != nil {
			return nil, fmt.Errorf("failed converting CRD validation to internal version: %v", err)
		}
		st, err := structuralschema.NewStructural(internalValidation.OpenAPIV3Schema)
		if !crd.Spec.PreserveUnknownFields && err != nil {
			utilruntime.HandleError(fmt.Errorf("failed to convert schema to structural: %v", err))
			return nil, fmt.Errorf("the server could not properly serve the CR schema")
		}
		if !crd.Spec.PreserveUnknownFields {
			st = st.DeepCopy()
			if err := structuraldefaulting.PruneDefaults(st); err != nil {
				utilruntime.HandleError(fmt.Errorf("failed to prune defaults: %v", err))
				return nil, fmt.Errorf("the server could not properly serve the CR schema")
			}
		}
		structuralSchemas[v.Name] = st
	}

	var typeConverter managedfields.TypeConverter = managedfields.NewDeducedTypeConverter()
	if models, err := s.openAPIModelsForApply(crd); err != nil {
		utilruntime.HandleError(fmt.Errorf("error building openapi models for %s: %v", crd.Name, err))
	} else if len(models) > 0 {
		if typeConverter, err = managedfields.NewTypeConverter(models, crd.Spec.PreserveUnknownFields); err != nil {
			return nil, err
		}
	}

	safeConverter, unsafeConverter, err := s.converterFactory.NewConverter(crd)
	if err != nil {
		return nil, err
	}

	replicasPathInCustomResource := managedfields.ResourcePathMappings{}
	for _, v := range crd.Spec.Versions {
		subresources, err := apiextensionshelpers.GetSubresourcesForVersion(crd, v.Name)
		if err != nil {
			utilruntime.HandleError(err)
			return nil, fmt.Errorf("the server could not properly serve the CR subresources")
		}
		gv := schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name}.String()
		if subresources == nil || subresources.Scale == nil {
			replicasPathInCustomResource[gv] = nil
			continue
		}
		path := fieldpath.Path{}
		for _, element := range splitReplicasPath(subresources.Scale.SpecReplicasPath) {
			el := element
			path = append(path, fieldpath.PathElement{FieldName: &el})
		}
		replicasPathInCustomResource[gv] = path
	}

	names := crd.Status.AcceptedNames
	switch {
	case names.Plural == "", names.Singular == "", names.Kind == "", names.ListKind == "":
		utilruntime.HandleError(fmt.Errorf("CustomResourceDefinition %s has incomplete status.acceptedNames", crd.Name))
		return nil, fmt.Errorf("the server could not properly serve the resource")
	}

	for _, v := range crd.Spec.Versions {
		resource := schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: names.Plural}
		kind := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: names.Kind}
		equivalent.RegisterKindFor(resource, "", kind)
		subresources, err := apiextensionshelpers.GetSubresourcesForVersion(crd, v.Name)
		if err != nil {
			return nil, fmt.Errorf("the server could not properly serve the CR subresources")
		}
		if subresources != nil && subresources.Status != nil {
			equivalent.RegisterKindFor(resource, "status", kind)
		}
		if subresources != nil && subresources.Scale != nil {
			equivalent.RegisterKindFor(resource, "scale", autoscalingv1.SchemeGroupVersion.WithKind("Scale"))
		}
	}

	storageGV := schema.GroupVersion{Group: crd.Spec.Group, Version: storageVersion}
	gk := schema.GroupKind{Group: crd.Spec.Group, Kind: names.Kind}
	info := &crdInfo{
		spec:           &crd.Spec,
		acceptedNames:  &crd.Status.AcceptedNames,
		versions:       map[string]*versionInfo{},
		storageVersion: storageVersion,
	}
	for _, v := range crd.Spec.Versions {
		if !v.Storage && !v.Served {
			continue
		}
		vi, err := s.buildVersion(crd, v, structuralSchemas, typeConverter, safeConverter, unsafeConverter, replicasPathInCustomResource, equivalent, storageGV, gk)
		if err != nil {
			return nil, err
		}
		info.versions[v.Name] = vi
	}
	// The status scopes take the reset fields of every version's status.
	statusResetFields := map[fieldpath.APIVersion]*fieldpath.Set{}
	for _, vi := range info.versions {
		for apiVersion, set := range vi.statusResetFields {
			statusResetFields[apiVersion] = set
		}
	}
	for name, vi := range info.versions {
		statusScope := *vi.scope
		statusScope.Subresource = "status"
		statusScope.Namer = handlers.ContextBasedNaming{Namer: meta.NewAccessor(), ClusterScoped: crd.Spec.Scope == apiextensionsv1.ClusterScoped}
		if subresources, _ := apiextensionshelpers.GetSubresourcesForVersion(crd, name); subresources != nil && subresources.Status != nil {
			if statusScope, err = scopeWithFieldManager(typeConverter, statusScope, statusResetFields, "status"); err != nil {
				return nil, err
			}
		}
		vi.statusScope = &statusScope
	}
	return info, nil
}

func (s *Server) buildVersion(crd *apiextensionsv1.CustomResourceDefinition, v apiextensionsv1.CustomResourceDefinitionVersion,
	structuralSchemas map[string]*structuralschema.Structural, typeConverter managedfields.TypeConverter,
	safeConverter, unsafeConverter runtime.ObjectConvertor, replicasPaths managedfields.ResourcePathMappings,
	equivalent runtime.EquivalentResourceRegistry, storageGV schema.GroupVersion, gk schema.GroupKind) (*versionInfo, error) {
	names := crd.Status.AcceptedNames
	clusterScoped := crd.Spec.Scope == apiextensionsv1.ClusterScoped
	gv := schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name}
	resource := gv.WithResource(names.Plural)
	kind := gv.WithKind(names.Kind)

	// Besides custom resources, the unversioned options objects decode.
	parameterScheme := runtime.NewScheme()
	parameterScheme.AddUnversionedTypes(gv, &metav1.ListOptions{}, &metav1.GetOptions{}, &metav1.DeleteOptions{})
	parameterCodec := runtime.NewParameterCodec(parameterScheme)
	typer := newUnstructuredObjectTyper(parameterScheme)
	creator := unstructuredCreator{}

	validationSchema, err := apiextensionshelpers.GetSchemaForVersion(crd, v.Name)
	if err != nil {
		utilruntime.HandleError(err)
		return nil, fmt.Errorf("the server could not properly serve the CR schema")
	}
	var internalSchemaProps *apiextensionsinternal.JSONSchemaProps
	var internalValidationSchema *apiextensionsinternal.CustomResourceValidation
	if validationSchema != nil {
		internalValidationSchema = &apiextensionsinternal.CustomResourceValidation{}
		if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(validationSchema, internalValidationSchema, nil); err != nil {
			return nil, fmt.Errorf("failed to convert CRD validation to internal version: %v", err)
		}
		internalSchemaProps = internalValidationSchema.OpenAPIV3Schema
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(internalSchemaProps)
	if err != nil {
		return nil, err
	}

	subresources, err := apiextensionshelpers.GetSubresourcesForVersion(crd, v.Name)
	if err != nil {
		return nil, fmt.Errorf("the server could not properly serve the CR subresources")
	}
	var statusSpec *apiextensionsinternal.CustomResourceSubresourceStatus
	var statusValidator apiservervalidation.SchemaValidator
	if subresources != nil && subresources.Status != nil {
		statusSpec = &apiextensionsinternal.CustomResourceSubresourceStatus{}
		if err := apiextensionsv1.Convert_v1_CustomResourceSubresourceStatus_To_apiextensions_CustomResourceSubresourceStatus(subresources.Status, statusSpec, nil); err != nil {
			return nil, fmt.Errorf("failed converting CRD status subresource to internal version: %v", err)
		}
		// The status subresource validates against the status schema only.
		if internalValidationSchema != nil && internalValidationSchema.OpenAPIV3Schema != nil && internalValidationSchema.OpenAPIV3Schema.Properties != nil {
			if statusSchema, ok := internalValidationSchema.OpenAPIV3Schema.Properties["status"]; ok {
				if statusValidator, _, err = apiservervalidation.NewSchemaValidator(&statusSchema); err != nil {
					return nil, err
				}
			}
		}
	}
	var scaleSpec *apiextensionsinternal.CustomResourceSubresourceScale
	if subresources != nil && subresources.Scale != nil {
		scaleSpec = &apiextensionsinternal.CustomResourceSubresourceScale{}
		if err := apiextensionsv1.Convert_v1_CustomResourceSubresourceScale_To_apiextensions_CustomResourceSubresourceScale(subresources.Scale, scaleSpec, nil); err != nil {
			return nil, fmt.Errorf("failed converting CRD status subresource to internal version: %v", err)
		}
	}

	columns, err := columnsForVersion(crd, v.Name)
	if err != nil {
		return nil, fmt.Errorf("the server could not properly serve the CR columns")
	}
	table, err := tableconvertor.New(columns)
	if err != nil {
		klog.V(2).InfoS("Invalid printer columns, falling back to the default ones", "kind", kind, "err", err)
		table = nil
	}

	strategy := customresource.NewStrategy(typer, !clusterScoped, kind, validator, statusValidator, structuralSchemas[v.Name], statusSpec, scaleSpec, v.SelectableFields)
	listKind := gv.WithKind(names.ListKind)
	preserve := crd.Spec.PreserveUnknownFields
	backend := &versionedStorage{
		Interface:      s.cfg.Storage,
		version:        gv,
		storageVersion: storageGV,
		toStorage: func(u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
			out, err := safeConverter.ConvertToVersion(u, storageGV)
			if err != nil {
				return nil, err
			}
			stored := out.(*unstructured.Unstructured)
			coercer := unstructuredSchemaCoercer{structuralSchemas: structuralSchemas, structuralSchemaGK: gk, preserveUnknownFields: preserve}
			if _, err := coercer.apply(stored); err != nil {
				return nil, err
			}
			return stored, nil
		},
		fromStorage: func(u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
			read := u.DeepCopy()
			// As decoding from etcd: old objects' invalid metadata dropped,
			// then the stored version's defaults.
			decoder := unstructuredSchemaCoercer{dropInvalidMetadata: true, repairGeneration: true, structuralSchemas: structuralSchemas, structuralSchemaGK: gk, preserveUnknownFields: preserve}
			if _, err := decoder.apply(read); err != nil {
				return nil, err
			}
			if read.GroupVersionKind().GroupKind() == gk {
				structuraldefaulting.Default(read.Object, structuralSchemas[read.GroupVersionKind().Version])
			}
			out, err := unsafeConverter.ConvertToVersion(read, gv)
			if err != nil {
				return nil, err
			}
			served := out.(*unstructured.Unstructured)
			coercer := unstructuredSchemaCoercer{structuralSchemas: structuralSchemas, structuralSchemaGK: gk, preserveUnknownFields: preserve}
			if _, err := coercer.apply(served); err != nil {
				return nil, err
			}
			return served, nil
		},
	}
	store, err := registry.NewStore(registry.StoreConfig{
		Storage:      backend,
		Resource:     resource.GroupResource(),
		SingularName: names.Singular,
		Namespaced:   !clusterScoped,
		NewFunc: func() runtime.Object {
			ret := &unstructured.Unstructured{}
			ret.SetGroupVersionKind(kind)
			return ret
		},
		NewListFunc: func() runtime.Object {
			ret := &unstructured.UnstructuredList{}
			ret.SetGroupVersionKind(listKind)
			return ret
		},
		Strategy:       strategy,
		Attrs:          strategy.GetAttrs,
		TableConvertor: table,
		Categories:     names.Categories,
		Clock:          s.cfg.Clock,
	})
	if err != nil {
		return nil, err
	}
	vi := &versionInfo{store: store}
	if statusSpec != nil {
		statusStrategy := customresource.NewStatusStrategy(strategy)
		vi.status = registry.NewStrategySubresource(store, statusStrategy)
		vi.statusResetFields = statusStrategy.GetResetFields()
	}
	if scaleSpec != nil {
		var labelSelectorPath string
		if scaleSpec.LabelSelectorPath != nil {
			labelSelectorPath = *scaleSpec.LabelSelectorPath
		}
		vi.scale = &scaleREST{
			store:               store,
			specReplicasPath:    scaleSpec.SpecReplicasPath,
			statusReplicasPath:  scaleSpec.StatusReplicasPath,
			labelSelectorPath:   labelSelectorPath,
			parentGV:            gv,
			replicasPathMapping: replicasPaths,
		}
	}

	negotiated := newNegotiatedSerializer(typer, creator, safeConverter, structuralSchemas, gk, preserve)
	var standardSerializers []runtime.SerializerInfo
	for _, si := range negotiated.SupportedMediaTypes() {
		if si.MediaType != runtime.ContentTypeProtobuf {
			standardSerializers = append(standardSerializers, si)
		}
	}
	scope := handlers.RequestScope{
		Namer:               handlers.ContextBasedNaming{Namer: meta.NewAccessor(), ClusterScoped: clusterScoped},
		Serializer:          negotiated,
		ParameterCodec:      parameterCodec,
		StandardSerializers: standardSerializers,
		Creater:             creator,
		Convertor:           safeConverter,
		Defaulter:           unstructuredDefaulter{parameterScheme, structuralSchemas, gk},
		Typer:               typer,
		UnsafeConvertor:     unsafeConverter,

		EquivalentResourceMapper: equivalent,
		Resource:                 resource,
		Kind:                     kind,
		// A version's handler holds objects at that version in memory.
		HubGroupVersion:     gv,
		MetaGroupVersion:    metav1.SchemeGroupVersion,
		TableConvertor:      store,
		Authorizer:          s.cfg.Authorizer,
		MaxRequestBodyBytes: s.cfg.MaxRequestBodyBytes,
	}
	if scope, err = scopeWithFieldManager(typeConverter, scope, store.GetResetFields(), ""); err != nil {
		return nil, err
	}
	vi.scope = &scope

	scaleColumns, err := scaleColumnsForVersion(crd, v.Name)
	if err != nil {
		return nil, fmt.Errorf("the server could not properly serve the CR scale subresource columns %w", err)
	}
	scaleTable, _ := tableconvertor.New(scaleColumns)
	scaleScope := scope
	scaleScope.Subresource = "scale"
	opts := []serializer.CodecFactoryOptionsMutator{
		serializer.WithStreamingCollectionEncodingToJSON(),
		serializer.WithStreamingCollectionEncodingToProtobuf(),
	}
	if utilfeature.DefaultFeatureGate.Enabled(features.CBORServingAndStorage) {
		opts = append(opts, serializer.WithSerializer(cbor.NewSerializerInfo))
	}
	scaleScope.Serializer = serializer.NewCodecFactory(scale.NewScaleConverter().Scheme(), opts...)
	scaleScope.Kind = autoscalingv1.SchemeGroupVersion.WithKind("Scale")
	scaleScope.Namer = handlers.ContextBasedNaming{Namer: meta.NewAccessor(), ClusterScoped: clusterScoped}
	scaleScope.TableConvertor = scaleTable
	if scaleSpec != nil {
		if scaleScope, err = scopeWithFieldManager(typeConverter, scaleScope, nil, "scale"); err != nil {
			return nil, err
		}
	}
	vi.scaleScope = &scaleScope

	if v.Deprecated {
		vi.deprecated = true
		if v.DeprecationWarning != nil {
			vi.warnings = append(vi.warnings, *v.DeprecationWarning)
		} else {
			vi.warnings = append(vi.warnings, defaultDeprecationWarning(v.Name, crd.Spec))
		}
	}
	return vi, nil
}

func scopeWithFieldManager(typeConverter managedfields.TypeConverter, reqScope handlers.RequestScope, resetFields map[fieldpath.APIVersion]*fieldpath.Set, subresource string) (handlers.RequestScope, error) {
	fieldManager, err := managedfields.NewDefaultCRDFieldManager(
		typeConverter,
		reqScope.Convertor,
		reqScope.Defaulter,
		reqScope.Creater,
		reqScope.Kind,
		reqScope.HubGroupVersion,
		subresource,
		fieldpath.NewExcludeFilterSetMap(resetFields),
	)
	if err != nil {
		return handlers.RequestScope{}, err
	}
	reqScope.FieldManager = fieldManager
	return reqScope, nil
}

func defaultDeprecationWarning(deprecatedVersion string, crd apiextensionsv1.CustomResourceDefinitionSpec) string {
	msg := fmt.Sprintf("%s/%s %s is deprecated", crd.Group, deprecatedVersion, crd.Names.Kind)
	var servedNonDeprecatedVersions []string
	for _, v := range crd.Versions {
		if v.Served && !v.Deprecated && version.CompareKubeAwareVersionStrings(deprecatedVersion, v.Name) < 0 {
			servedNonDeprecatedVersions = append(servedNonDeprecatedVersions, v.Name)
		}
	}
	if len(servedNonDeprecatedVersions) == 0 {
		return msg
	}
	sort.Slice(servedNonDeprecatedVersions, func(i, j int) bool {
		return version.CompareKubeAwareVersionStrings(servedNonDeprecatedVersions[i], servedNonDeprecatedVersions[j]) > 0
	})
	msg += fmt.Sprintf("; use %s/%s %s", crd.Group, servedNonDeprecatedVersions[0], crd.Names.Kind)
	return msg
}

// hasServedCRDVersion reports whether version is in the spec and served.
func hasServedCRDVersion(spec *apiextensionsv1.CustomResourceDefinitionSpec, version string) bool {
	for _, v := range spec.Versions {
		if v.Name == version {
			return v.Served
		}
	}
	return false
}

// openAPIModelsForApply builds the OpenAPI models of a CRD's versions over
// the static models of the built-in types, for its managed fields.
func (s *Server) openAPIModelsForApply(crd *apiextensionsv1.CustomResourceDefinition) (map[string]*spec.Schema, error) {
	static, err := s.cfg.StaticModels()
	if err != nil || static == nil {
		return nil, err
	}
	specs := []*spec3.OpenAPI{{
		Version:    "3.0.0",
		Info:       &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes CRD Swagger", Version: "v0.1.0"}},
		Components: &spec3.Components{Schemas: static},
	}}
	for _, v := range crd.Spec.Versions {
		// Defaults are not pruned here, but before being served.
		sp, err := builder.BuildOpenAPIV3(crd, v.Name, builder.Options{})
		if err != nil {
			return nil, err
		}
		specs = append(specs, sp)
	}
	merged, err := builder.MergeSpecsV3(specs...)
	if err != nil {
		return nil, err
	}
	return merged.Components.Schemas, nil
}

var swaggerMetadataDescriptions = metav1.ObjectMeta{}.SwaggerDoc()

// columnsForVersion returns the printer columns of a version, Age when it
// declares none.
func columnsForVersion(crd *apiextensionsv1.CustomResourceDefinition, version string) ([]apiextensionsv1.CustomResourceColumnDefinition, error) {
	for _, v := range crd.Spec.Versions {
		if version == v.Name {
			if len(v.AdditionalPrinterColumns) > 0 {
				return v.AdditionalPrinterColumns, nil
			}
			return []apiextensionsv1.CustomResourceColumnDefinition{
				{Name: "Age", Type: "date", Description: swaggerMetadataDescriptions["creationTimestamp"], JSONPath: ".metadata.creationTimestamp"},
			}, nil
		}
	}
	return nil, fmt.Errorf("version %s not found in apiextensionsv1.CustomResourceDefinition: %v", version, crd.Name)
}

// scaleColumnsForVersion returns the desired and actual replicas columns.
func scaleColumnsForVersion(crd *apiextensionsv1.CustomResourceDefinition, version string) ([]apiextensionsv1.CustomResourceColumnDefinition, error) {
	for _, v := range crd.Spec.Versions {
		if version != v.Name {
			continue
		}
		var cols []apiextensionsv1.CustomResourceColumnDefinition
		if v.Subresources != nil && v.Subresources.Scale != nil {
			if v.Subresources.Scale.SpecReplicasPath != "" {
				cols = append(cols, apiextensionsv1.CustomResourceColumnDefinition{Name: "Desired", Type: "integer", Description: "Number of desired replicas", JSONPath: ".spec.replicas"})
			}
			if v.Subresources.Scale.StatusReplicasPath != "" {
				cols = append(cols, apiextensionsv1.CustomResourceColumnDefinition{Name: "Available", Type: "integer", Description: "Number of actual replicas", JSONPath: ".status.replicas"})
			}
		}
		cols = append(cols, apiextensionsv1.CustomResourceColumnDefinition{Name: "Age", Type: "date", Description: swaggerMetadataDescriptions["creationTimestamp"], JSONPath: ".metadata.creationTimestamp"})
		return cols, nil
	}
	return nil, fmt.Errorf("version %s not found in apiextensionsv1.CustomResourceDefinition: %v", version, crd.Name)
}

// forbidCreateAdmission refuses creates while the CRD terminates.
type forbidCreateAdmission struct {
	delegate admission.Interface
}

func (f *forbidCreateAdmission) Handles(operation admission.Operation) bool {
	return operation == admission.Create || f.delegate.Handles(operation)
}

func (f *forbidCreateAdmission) Admit(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	if a.GetOperation() == admission.Create {
		return apierrors.NewForbidden(a.GetResource().GroupResource(), a.GetName(), errors.New("create not allowed while custom resource definition is terminating"))
	}
	if delegate, ok := f.delegate.(admission.MutationInterface); ok {
		return delegate.Admit(ctx, a, o)
	}
	return nil
}

func (f *forbidCreateAdmission) Validate(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	if a.GetOperation() == admission.Create {
		return apierrors.NewForbidden(a.GetResource().GroupResource(), a.GetName(), errors.New("create not allowed while custom resource definition is terminating"))
	}
	if delegate, ok := f.delegate.(admission.ValidationInterface); ok {
		return delegate.Validate(ctx, a, o)
	}
	return nil
}

// PurgeCustomResources deletes every custom resource straight from
// storage (see registry.Store.Purge); the CRDs stay.
func (s *Server) PurgeCustomResources(ctx context.Context) (int, error) {
	crds, err := s.crdLister.List(labels.Everything())
	if err != nil {
		return 0, err
	}
	total := 0
	for _, crd := range crds {
		if !apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.NamesAccepted) && !apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
			continue // never served: nothing stored
		}
		info, err := s.servingInfo(crd.UID, crd.Name)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return total, err
		}
		n, err := info.versions[info.storageVersion].store.Purge(ctx, func(string, string) bool { return false })
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
