package registry

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"fmt"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	policyclient "k8s.io/client-go/kubernetes/typed/policy/v1"
	"k8s.io/kubernetes/pkg/registry/certificates/podcertificaterequest"
	"k8s.io/kubernetes/pkg/registry/resource/resourceclaim"
	"k8s.io/kubernetes/pkg/registry/resource/resourceclaimtemplate"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	kubeletclient "k8s.io/kubernetes/pkg/kubelet/client"

	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/registry/rest"
	apistorage "k8s.io/apiserver/pkg/storage"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	api "k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/kubernetes/pkg/cluster/ports"
	kubeprinters "k8s.io/kubernetes/pkg/printers"
	printersinternal "k8s.io/kubernetes/pkg/printers/internalversion"
	printerstorage "k8s.io/kubernetes/pkg/printers/storage"
	"k8s.io/kubernetes/pkg/registry/authentication/selfsubjectreview"
	"k8s.io/kubernetes/pkg/registry/authentication/tokenreview"
	"k8s.io/kubernetes/pkg/registry/authorization/localsubjectaccessreview"
	"k8s.io/kubernetes/pkg/registry/authorization/selfsubjectaccessreview"
	"k8s.io/kubernetes/pkg/registry/authorization/selfsubjectrulesreview"
	"k8s.io/kubernetes/pkg/registry/authorization/subjectaccessreview"
	"k8s.io/kubernetes/pkg/registry/core/componentstatus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	// Every API group kube-apiserver serves, installed into legacyscheme
	// with its conversions and defaults, as pkg/controlplane does.
	_ "github.com/kubesim/kubesim/apiserver/install"
	"github.com/kubesim/kubesim/apiserver/storage"
)

//go:embed discovery/*.json
var discoveryDocs embed.FS

// Config configures a Registry.
type Config struct {
	// Storage is the backend of every resource. Required.
	Storage storage.Interface
	// Clock is injected into every store. Default: the real clock.
	Clock clock.WithTicker
	// Services configures ClusterIP and NodePort allocation.
	Services ServiceAllocatorConfig
	// Authorizer answers the access reviews (authorization.k8s.io).
	// Required with RuleResolver for them to be served.
	Authorizer   authorizer.UnconditionalAuthorizer
	RuleResolver authorizer.RuleResolver
	// TokenAuthenticator answers TokenReviews; nil leaves them unserved.
	TokenAuthenticator authenticator.Request
	// APIAudiences are the audiences TokenReviews check tokens against when
	// they name none (kube-apiserver's --api-audiences).
	APIAudiences authenticator.Audiences
	// ServiceAccountTokens serves TokenRequest; nil leaves it unserved.
	ServiceAccountTokens *ServiceAccountTokens
	// EventTTL is how long an Event lives after its last write, as
	// kube-apiserver's --event-ttl. Default: 1h.
	EventTTL time.Duration
	// KubeletConn reaches a node's kubelet for pods/log, exec, attach and
	// portforward; nil leaves them unserved.
	KubeletConn kubeletclient.ConnectionInfoGetter
	// ProxyTransport reaches pods and services for pods/proxy and
	// services/proxy, and nodes' other ports for nodes/proxy, as
	// kube-apiserver's proxy transport; nil leaves the proxy subresources
	// unserved.
	ProxyTransport http.RoundTripper
	// PodDisruptionBudgets is the client pods/eviction reads and updates
	// PodDisruptionBudgets with (kube-apiserver's loopback client); nil
	// leaves pods/eviction unserved.
	PodDisruptionBudgets policyclient.PodDisruptionBudgetsGetter
	// Namespaces is the client ResourceClaims and ResourceClaimTemplates
	// read a namespace's DRA admin-access label with (kube-apiserver's
	// loopback client).
	Namespaces corev1client.NamespaceInterface
}

// Endpoint is one resource or subresource at one group version.
type Endpoint struct {
	GroupVersion schema.GroupVersion
	Resource     string
	Subresource  string
	Namespaced   bool
	// Kind is the kind of the objects the endpoint takes and returns.
	Kind schema.GroupVersionKind
	// Verbs as served in discovery.
	Verbs []string
	// Storage serves the endpoint; nil when kubesim does not serve it yet.
	Storage rest.Storage
}

// GroupVersion is a served group version and its discovery document.
type GroupVersion struct {
	GroupVersion schema.GroupVersion
	Resources    *metav1.APIResourceList
	Endpoints    []*Endpoint
}

// Group is a served API group, versions in preference order.
type Group struct {
	Name     string
	Versions []*GroupVersion
}

// Registry holds every served resource.
type Registry struct {
	// Core is the legacy group at /api; Groups are the named groups at
	// /apis, in kube-apiserver's order.
	Core   *Group
	Groups []*Group
	// Stores by group and resource, for in-process use.
	Stores map[schema.GroupResource]*Store

	alloc *serviceAllocator
	// storage is every store's backend; allocRev the revision the
	// allocations were restored at.
	storage  storage.Interface
	allocRev int64
	// claimStatus is the ResourceClaim status strategy built with the
	// claims' own (storeFor).
	claimStatus rest.RESTUpdateStrategy
	// storageVersions are the groups' preferred versions, what
	// kube-apiserver stores objects at.
	storageVersions map[string]schema.GroupVersion
	clock           clock.WithTicker
}

// New builds the registry from the pinned discovery documents.
func New(cfg Config) (*Registry, error) {
	if cfg.Storage == nil {
		return nil, fmt.Errorf("unable to create registry: Storage is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	alloc, err := newServiceAllocator(cfg.Services)
	if err != nil {
		return nil, err
	}
	if cfg.EventTTL == 0 {
		cfg.EventTTL = time.Hour
	}
	r := &Registry{Stores: map[schema.GroupResource]*Store{}, alloc: alloc, clock: cfg.Clock, storage: cfg.Storage}
	if r.allocRev, err = alloc.restore(context.Background(), cfg.Storage); err != nil {
		return nil, err
	}

	var apis metav1.APIGroupList
	if err := readDoc("apis.json", &apis); err != nil {
		return nil, err
	}
	r.storageVersions = map[string]schema.GroupVersion{"": {Version: "v1"}}
	for _, g := range apis.Groups {
		r.storageVersions[g.Name] = schema.GroupVersion{Group: g.Name, Version: g.PreferredVersion.Version}
	}
	docs, err := discoveryDocs.ReadDir("discovery")
	if err != nil {
		return nil, err
	}
	byGroup := map[string][]*GroupVersion{}
	for _, d := range docs {
		name := d.Name()
		if name == "api.json" || name == "apis.json" {
			continue
		}
		var list metav1.APIResourceList
		if err := readDoc(name, &list); err != nil {
			return nil, err
		}
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			return nil, err
		}
		served, err := r.buildGroupVersion(cfg, alloc, gv, &list)
		if err != nil {
			return nil, err
		}
		byGroup[gv.Group] = append(byGroup[gv.Group], served)
	}
	for _, versions := range byGroup {
		sort.Slice(versions, func(i, j int) bool {
			return versionPriority(versions[i].GroupVersion.Version) > versionPriority(versions[j].GroupVersion.Version)
		})
	}
	r.Core = &Group{Name: "", Versions: byGroup[""]}
	for _, g := range apis.Groups {
		if versions, ok := byGroup[g.Name]; ok {
			r.Groups = append(r.Groups, &Group{Name: g.Name, Versions: versions})
		}
	}
	return r, nil
}

// versionPriority orders stable versions newest first; kube-apiserver
// prefers autoscaling/v2 over v1.
func versionPriority(v string) int {
	var n int
	fmt.Sscanf(strings.TrimPrefix(v, "v"), "%d", &n)
	return n
}

func readDoc(name string, into any) error {
	b, err := discoveryDocs.ReadFile(path.Join("discovery", name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("unable to read discovery document %s: %w", name, err)
	}
	return nil
}

func (r *Registry) buildGroupVersion(cfg Config, alloc *serviceAllocator, gv schema.GroupVersion, list *metav1.APIResourceList) (*GroupVersion, error) {
	out := &GroupVersion{GroupVersion: gv, Resources: &metav1.APIResourceList{GroupVersion: list.GroupVersion}}
	parents := map[string]*Endpoint{}
	// Main resources first, so subresources find their parent.
	resources := append([]metav1.APIResource(nil), list.APIResources...)
	sort.SliceStable(resources, func(i, j int) bool {
		return !strings.Contains(resources[i].Name, "/") && strings.Contains(resources[j].Name, "/")
	})
	for _, res := range resources {
		name, sub, _ := strings.Cut(res.Name, "/")
		gr := schema.GroupResource{Group: gv.Group, Resource: name}
		if !enabled(gr) {
			continue
		}
		ep := &Endpoint{GroupVersion: gv, Resource: name, Subresource: sub, Namespaced: res.Namespaced, Verbs: res.Verbs}
		kindGroup, kindVersion := gv.Group, gv.Version
		if res.Group != "" || res.Version != "" {
			kindGroup, kindVersion = res.Group, res.Version
		}
		ep.Kind = schema.GroupVersionKind{Group: kindGroup, Version: kindVersion, Kind: res.Kind}
		var err error
		if sub == "" {
			ep.Storage, err = r.mainStorage(cfg, alloc, gr, res)
			parents[name] = ep
		} else if gr == (schema.GroupResource{Resource: "serviceaccounts"}) && sub == "token" {
			ep.Storage, err = r.tokenRequestStorage(cfg)
		} else if parent := parents[name]; parent != nil {
			ep.Storage = r.subresourceStorage(cfg, gr, parent, sub)
		}
		if err != nil {
			return nil, err
		}
		out.Resources.APIResources = append(out.Resources.APIResources, res)
		out.Endpoints = append(out.Endpoints, ep)
	}
	sort.Slice(out.Resources.APIResources, func(i, j int) bool {
		return out.Resources.APIResources[i].Name < out.Resources.APIResources[j].Name
	})
	return out, nil
}

func (r *Registry) mainStorage(cfg Config, alloc *serviceAllocator, gr schema.GroupResource, res metav1.APIResource) (rest.Storage, error) {
	if st := reviewStorage(cfg, gr); st != nil {
		return st, nil
	}
	if gr == (schema.GroupResource{Resource: "componentstatuses"}) {
		return componentStatuses(), nil
	}
	sp, ok := specs[gr]
	if !ok {
		return nil, nil // not served yet; bindings are wired by LegacyBindings
	}
	if sp.sharedWith != nil {
		// Built when the owner is; the owner's group sorts first (core).
		return r.storeFor(cfg, alloc, *sp.sharedWith, specs[*sp.sharedWith], res)
	}
	return r.storeFor(cfg, alloc, gr, sp, res)
}

func (r *Registry) storeFor(cfg Config, alloc *serviceAllocator, gr schema.GroupResource, sp spec, res metav1.APIResource) (rest.Storage, error) {
	if s, ok := r.Stores[gr]; ok {
		return s.restStorage(), nil
	}
	internal := schema.GroupVersionKind{Group: gr.Group, Version: runtime.APIVersionInternal, Kind: res.Kind}
	if !legacyscheme.Scheme.Recognizes(internal) {
		return nil, fmt.Errorf("unable to build store for %s: kind %s is not registered", gr, internal)
	}
	newFunc := func() runtime.Object { o, _ := legacyscheme.Scheme.New(internal); return o }
	listKind := internal
	listKind.Kind += "List"
	newListFunc := func() runtime.Object { o, _ := legacyscheme.Scheme.New(listKind); return o }
	table := sp.table
	if table == nil {
		table = tableConvertor(newListFunc())
	}
	strategy := sp.strategy
	switch gr {
	case resourceClaims:
		// Upstream's strategies that ask the authorizer and read
		// namespaces: built with this server's.
		cs := resourceclaim.NewStrategy(cfg.Namespaces, authorizerOrAllow(cfg.Authorizer))
		strategy, r.claimStatus = cs, resourceclaim.NewStatusStrategy(cs)
	case resourceClaimTemplates:
		strategy = resourceclaimtemplate.NewStrategy(cfg.Namespaces)
	}
	s, err := NewStore(StoreConfig{
		Storage:             cfg.Storage,
		Resource:            gr,
		SingularName:        res.SingularName,
		Namespaced:          res.Namespaced,
		NewFunc:             newFunc,
		NewListFunc:         newListFunc,
		Strategy:            strategy,
		Attrs:               sp.attrs,
		ReturnDeletedObject: sp.returnDeleted,
		TableConvertor:      table,
		Scheme:              legacyscheme.Scheme,
		StorageVersion:      r.storageVersions[gr.Group],
		ShortNames:          res.ShortNames,
		Categories:          res.Categories,
		Clock:               cfg.Clock,
	})
	if err != nil {
		return nil, err
	}
	if gr == (schema.GroupResource{Resource: "namespaces"}) {
		// As upstream's namespace storage: a namespace goes once its
		// spec.finalizers are gone too, not on the namespace controller's
		// first status write.
		s.cfg.ShouldDeleteDuringUpdate = func(obj, existing runtime.Object) bool {
			ns, ok := obj.(*api.Namespace)
			return ok && len(ns.Spec.Finalizers) == 0 && shouldDeleteDuringUpdate(obj, existing)
		}
	}
	if gr == coreEvents {
		s.expiry = &expiry{ttl: cfg.EventTTL, due: map[string]expiring{}}
	}
	if gr == (schema.GroupResource{Resource: "services"}) {
		s.hooks = alloc
	}
	r.Stores[gr] = s
	return s.restStorage(), nil
}

// printers renders kube-apiserver's table columns (kubectl get).
var printers = printerstorage.TableConvertor{TableGenerator: kubeprinters.NewTableGenerator().With(printersinternal.AddHandlers)}

// tableConvertor returns upstream's printer for a kind that has one, and
// nil (the default name and age columns) for one that does not.
func tableConvertor(sampleList runtime.Object) rest.TableConvertor {
	if _, err := printers.ConvertToTable(context.Background(), sampleList, nil); err != nil {
		return nil
	}
	return printers
}

// restStorage is what the store serves at its main endpoint.
func (s *Store) restStorage() rest.Storage {
	switch s.cfg.Resource {
	case schema.GroupResource{Resource: "namespaces"}:
		return &namespaceStore{store: s}
	case crds:
		return &crdStore{Store: s}
	}
	return s
}

func (r *Registry) subresourceStorage(cfg Config, gr schema.GroupResource, parent *Endpoint, sub string) rest.Storage {
	owner := gr
	if sp, ok := specs[gr]; ok && sp.sharedWith != nil {
		owner = *sp.sharedWith
	}
	store := r.Stores[owner]
	if store == nil {
		return nil
	}
	if st := r.proxySubresource(cfg, gr, sub); st != nil {
		return st
	}
	switch {
	case sub == "scale":
		if sc, ok := scalers[gr]; ok {
			return &ScaleSubresource{store: store, scaler: sc}
		}
	case gr == schema.GroupResource{Resource: "pods"} && sub == "eviction":
		if cfg.PodDisruptionBudgets != nil {
			// As upstream: eviction writes the pod's DisruptionTarget
			// condition through the status strategy.
			status := NewStrategySubresource(store, specs[gr].updates["status"])
			return NewEvictionREST(statusUpdates{Store: store, status: status}, cfg.PodDisruptionBudgets)
		}
	case gr == schema.GroupResource{Resource: "pods"} && sub == "binding":
		return &BindingSubresource{pods: store}
	case gr == schema.GroupResource{Resource: "pods"}:
		if st := r.kubeletSubresource(cfg, store, sub); st != nil {
			return st
		}
	}
	switch {
	case gr == podCertificateRequests && sub == "status":
		// Its status strategy asks the authorizer whether the caller may
		// "sign" for the signer, as kube-apiserver's does.
		return NewStrategySubresource(store, podcertificaterequest.NewStatusStrategy(pcrStrategy, authorizerOrAllow(cfg.Authorizer), store.cfg.Clock))
	case gr == resourceClaims && sub == "status" && r.claimStatus != nil:
		return NewStrategySubresource(store, r.claimStatus)
	}
	if strategy, ok := specs[owner].updates[sub]; ok {
		if gr == (schema.GroupResource{Resource: "namespaces"}) && sub == "finalize" {
			// kube-apiserver's namespaces/finalize only updates.
			return &updateOnlySubresource{NewStrategySubresource(store, strategy)}
		}
		return NewStrategySubresource(store, strategy)
	}
	return nil
}

// LegacyBindings returns the storage of the core bindings resource.
func (r *Registry) LegacyBindings() rest.Storage {
	if pods := r.Stores[schema.GroupResource{Resource: "pods"}]; pods != nil {
		return &LegacyBinding{&BindingSubresource{pods: pods}}
	}
	return nil
}

// namespaceStore deletes namespaces as kube-apiserver does: the first
// delete marks the namespace Terminating; it is removed once the namespace
// controller has emptied spec.finalizers.
//
// Like kube-apiserver's namespace REST it has no DeleteCollection (and does
// not declare that DELETE answers with the object, though it does): the
// store is a field, not embedded, and namespaceStore forwards the verbs
// kube-apiserver serves for namespaces.
type namespaceStore struct {
	store *Store
}

var (
	_ rest.StandardStorage      = (*Store)(nil)
	_ rest.CollectionDeleter    = (*Store)(nil)
	_ rest.Getter               = (*namespaceStore)(nil)
	_ rest.Lister               = (*namespaceStore)(nil)
	_ rest.Watcher              = (*namespaceStore)(nil)
	_ rest.Creater              = (*namespaceStore)(nil)
	_ rest.Updater              = (*namespaceStore)(nil)
	_ rest.GracefulDeleter      = (*namespaceStore)(nil)
	_ rest.ShortNamesProvider   = (*namespaceStore)(nil)
	_ rest.SingularNameProvider = (*namespaceStore)(nil)
	_ rest.TableConvertor       = (*namespaceStore)(nil)
)

func (r *namespaceStore) New() runtime.Object     { return r.store.New() }
func (r *namespaceStore) Destroy()                { r.store.Destroy() }
func (r *namespaceStore) NewList() runtime.Object { return r.store.NewList() }
func (r *namespaceStore) NamespaceScoped() bool   { return false }
func (r *namespaceStore) GetSingularName() string { return r.store.GetSingularName() }
func (r *namespaceStore) ShortNames() []string    { return r.store.ShortNames() }
func (r *namespaceStore) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.store.GetResetFields()
}
func (r *namespaceStore) DeleteReturnsDeletedObject() bool {
	return r.store.DeleteReturnsDeletedObject()
}

func (r *namespaceStore) ConvertToTable(ctx context.Context, obj runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	return r.store.ConvertToTable(ctx, obj, tableOptions)
}

func (r *namespaceStore) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, options)
}

func (r *namespaceStore) List(ctx context.Context, options *metainternalversion.ListOptions) (runtime.Object, error) {
	return r.store.List(ctx, options)
}

func (r *namespaceStore) Watch(ctx context.Context, options *metainternalversion.ListOptions) (watch.Interface, error) {
	return r.store.Watch(ctx, options)
}

func (r *namespaceStore) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	return r.store.Create(ctx, obj, createValidation, options)
}

func (r *namespaceStore) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.store.Update(ctx, name, objInfo, createValidation, updateValidation, forceAllowCreate, options)
}

func (r *namespaceStore) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	obj, err := r.store.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, false, err
	}
	ns := obj.(*api.Namespace)
	if options == nil {
		options = metav1.NewDeleteOptions(0)
	}
	if options.Preconditions != nil {
		pre := apistorage.Preconditions{UID: options.Preconditions.UID, ResourceVersion: options.Preconditions.ResourceVersion}
		if err := pre.Check(name, obj); err != nil {
			return nil, false, interpretDelete(err, r.store.qualifiedResource(ctx), name)
		}
	}
	if ns.DeletionTimestamp.IsZero() {
		if deleteValidation != nil {
			if err := deleteValidation(ctx, obj); err != nil {
				return nil, false, err
			}
		}
		var pre *apistorage.Preconditions
		if options.Preconditions != nil {
			pre = &apistorage.Preconditions{UID: options.Preconditions.UID, ResourceVersion: options.Preconditions.ResourceVersion}
		}
		out, err := r.store.guaranteedUpdate(ctx, name, pre, isDryRun(options.DryRun), func(existing runtime.Object) (runtime.Object, error) {
			ns := existing.(*api.Namespace)
			if ns.DeletionTimestamp.IsZero() {
				now := metav1.NewTime(r.store.cfg.Clock.Now())
				ns.DeletionTimestamp = &now
			}
			ns.Status.Phase = api.NamespaceTerminating
			if update, finalizers := r.store.gcFinalizers(ctx, ns, options); update {
				ns.Finalizers = finalizers
			}
			return ns, nil
		})
		return out, false, err
	}
	if len(ns.Spec.Finalizers) != 0 {
		return ns, false, nil
	}
	return r.store.Delete(ctx, name, deleteValidation, options)
}

// reviewStorage returns upstream's REST for the review resources: objects
// that are never stored, only answered.
func reviewStorage(cfg Config, gr schema.GroupResource) rest.Storage {
	switch gr.Group {
	case "authorization.k8s.io":
		if cfg.Authorizer == nil || cfg.RuleResolver == nil {
			return nil
		}
		switch gr.Resource {
		case "subjectaccessreviews":
			return subjectaccessreview.NewREST(cfg.Authorizer, legacyscheme.Scheme)
		case "selfsubjectaccessreviews":
			return selfsubjectaccessreview.NewREST(cfg.Authorizer, legacyscheme.Scheme)
		case "localsubjectaccessreviews":
			return localsubjectaccessreview.NewREST(cfg.Authorizer, legacyscheme.Scheme)
		case "selfsubjectrulesreviews":
			return selfsubjectrulesreview.NewREST(cfg.RuleResolver)
		}
	case "authentication.k8s.io":
		switch gr.Resource {
		case "selfsubjectreviews":
			return selfsubjectreview.NewREST()
		case "tokenreviews":
			if cfg.TokenAuthenticator != nil {
				return tokenreview.NewREST(cfg.TokenAuthenticator, cfg.APIAudiences)
			}
		}
	}
	return nil
}

// componentStatuses serves componentstatuses as kube-apiserver does: it
// probes the scheduler and the controller manager on their default secure
// ports. (kube-apiserver adds one entry per etcd server; the memory backend
// has none.)
func componentStatuses() rest.Storage {
	servers := map[string]componentstatus.Server{
		"controller-manager": &componentstatus.HttpServer{EnableHTTPS: true, TLSConfig: &tls.Config{InsecureSkipVerify: true}, Addr: "127.0.0.1", Port: ports.KubeControllerManagerPort, Path: "/healthz"},
		"scheduler":          &componentstatus.HttpServer{EnableHTTPS: true, TLSConfig: &tls.Config{InsecureSkipVerify: true}, Addr: "127.0.0.1", Port: kubeSchedulerPort, Path: "/healthz"},
	}
	return componentstatus.NewStorage(func() map[string]componentstatus.Server { return servers })
}

// kubeSchedulerPort is kube-scheduler's default secure port
// (k8s.io/kubernetes/pkg/scheduler/apis/config DefaultKubeSchedulerPort).
const kubeSchedulerPort = 10259

// authorizerOrAllow is a, or for a registry without one (tests) an
// authorizer that allows everything.
func authorizerOrAllow(a authorizer.UnconditionalAuthorizer) authorizer.UnconditionalAuthorizer {
	if a == nil {
		return authorizerfactory.NewAlwaysAllowAuthorizer()
	}
	return a
}

// statusUpdates is a store whose updates go through its status
// subresource, as the status store upstream's eviction is given.
type statusUpdates struct {
	*Store
	status *StrategySubresource
}

func (s statusUpdates) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return s.status.Update(ctx, name, objInfo, createValidation, updateValidation, forceAllowCreate, options)
}
