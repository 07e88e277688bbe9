package crdserver

// Discovery of the CRDs' group versions, as apiextensions-apiserver's
// DiscoveryController publishes it (customresource_discovery_controller.go),
// plus the groups' entries in the legacy /apis list, which kube-apiserver's
// aggregator serves from the APIServices it registers for CRDs.

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiextensionshelpers "k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	listers "k8s.io/apiextensions-apiserver/pkg/client/listers/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	discoveryendpoint "k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// GroupList is the legacy /apis document's group list, which CRD groups
// join and leave (k8s.io/apiserver's root APIs handler).
type GroupList interface {
	AddGroup(apiGroup metav1.APIGroup)
	RemoveGroup(groupName string)
}

// discoveryHandlers serve /apis/<group> and /apis/<group>/<version> for
// the CRD groups.
type discoveryHandlers struct {
	mu       sync.RWMutex
	groups   map[string]*discovery.APIGroupHandler
	versions map[schema.GroupVersion]*discovery.APIVersionHandler
	// apiGroups are the documents the group handlers serve.
	apiGroups map[string]metav1.APIGroup
}

func newDiscoveryHandlers() *discoveryHandlers {
	return &discoveryHandlers{
		groups:    map[string]*discovery.APIGroupHandler{},
		versions:  map[schema.GroupVersion]*discovery.APIVersionHandler{},
		apiGroups: map[string]metav1.APIGroup{},
	}
}

// serve answers a discovery request of a CRD group or group version and
// reports whether it did.
func (d *discoveryHandlers) serve(w http.ResponseWriter, req *http.Request) bool {
	parts := splitPath(req.URL.Path)
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "apis" {
		return false
	}
	d.mu.RLock()
	var h http.Handler
	if len(parts) == 2 {
		if g, ok := d.groups[parts[1]]; ok {
			h = g
		}
	} else if v, ok := d.versions[schema.GroupVersion{Group: parts[1], Version: parts[2]}]; ok {
		h = v
	}
	d.mu.RUnlock()
	if h == nil {
		return false
	}
	h.ServeHTTP(w, req)
	return true
}

// splitPath returns the segments of a URL path.
func splitPath(path string) []string {
	path = strings.Trim(path, "/")
	if path == "" {
		return []string{}
	}
	return strings.Split(path, "/")
}

// discoveryController keeps discovery in step with the CRDs.
type discoveryController struct {
	handlers   *discoveryHandlers
	aggregated discoveryendpoint.ResourceManager
	root       GroupList
	crdLister  listers.CustomResourceDefinitionLister
	crdsSynced cache.InformerSynced
	queue      workqueue.TypedRateLimitingInterface[schema.GroupVersion]

	// rootGroups are the CRD groups in the legacy /apis list, in order.
	rootMu     sync.Mutex
	rootGroups []string
}

func newDiscoveryController(crdInformer cache.SharedIndexInformer, lister listers.CustomResourceDefinitionLister, handlers *discoveryHandlers, aggregated discoveryendpoint.ResourceManager, root GroupList) (*discoveryController, error) {
	c := &discoveryController{
		handlers:   handlers,
		aggregated: aggregated,
		root:       root,
		crdLister:  lister,
		crdsSynced: crdInformer.HasSynced,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[schema.GroupVersion](),
			workqueue.TypedRateLimitingQueueConfig[schema.GroupVersion]{Name: "DiscoveryController"},
		),
	}
	_, err := crdInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueue(obj) },
		UpdateFunc: func(oldObj, newObj any) {
			// Both, to remove the versions the update dropped.
			c.enqueue(newObj)
			c.enqueue(oldObj)
		},
		DeleteFunc: func(obj any) { c.enqueue(obj) },
	})
	return c, err
}

func (c *discoveryController) enqueue(obj any) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return
	}
	for _, v := range crd.Spec.Versions {
		c.queue.Add(schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name})
	}
}

// run publishes discovery until ctx is done.
func (c *discoveryController) run(ctx context.Context) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.crdsSynced) {
		return
	}
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		for c.processNext(ctx) {
		}
	}, 0)
	<-ctx.Done()
}

func (c *discoveryController) processNext(ctx context.Context) bool {
	gv, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(gv)
	if err := c.sync(gv); err != nil {
		klog.FromContext(ctx).Error(err, "Publishing the discovery of custom resources", "groupVersion", gv)
		c.queue.AddRateLimited(gv)
		return true
	}
	c.queue.Forget(gv)
	return true
}

// sync publishes the discovery of one group version, as upstream's
// DiscoveryController.sync does.
func (c *discoveryController) sync(gv schema.GroupVersion) error {
	apiVersionsForDiscovery := []metav1.GroupVersionForDiscovery{}
	apiResourcesForDiscovery := []metav1.APIResource{}
	aggregatedAPIResourcesForDiscovery := []apidiscoveryv2.APIResourceDiscovery{}
	versionsForDiscoveryMap := map[metav1.GroupVersion]bool{}

	crds, err := c.crdLister.List(labels.Everything())
	if err != nil {
		return err
	}
	foundVersion := false
	foundGroup := false
	for _, crd := range crds {
		if !apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
			continue
		}
		if crd.Spec.Group != gv.Group {
			continue
		}
		foundThisVersion := false
		var storageVersionHash string
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			// Any served version puts the group in discovery.
			foundGroup = true
			mgv := metav1.GroupVersion{Group: crd.Spec.Group, Version: v.Name}
			if !versionsForDiscoveryMap[mgv] {
				versionsForDiscoveryMap[mgv] = true
				apiVersionsForDiscovery = append(apiVersionsForDiscovery, metav1.GroupVersionForDiscovery{
					GroupVersion: crd.Spec.Group + "/" + v.Name,
					Version:      v.Name,
				})
			}
			if v.Name == gv.Version {
				foundThisVersion = true
			}
			if v.Storage {
				storageVersionHash = discovery.StorageVersionHash(mgv.Group, mgv.Version, crd.Spec.Names.Kind)
			}
		}
		if !foundThisVersion {
			continue
		}
		foundVersion = true

		verbs := metav1.Verbs([]string{"delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"})
		// A terminating CRD takes no more creates or updates.
		if apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.Terminating) {
			verbs = metav1.Verbs([]string{"delete", "deletecollection", "get", "list", "watch"})
		}
		apiResourcesForDiscovery = append(apiResourcesForDiscovery, metav1.APIResource{
			Name:               crd.Status.AcceptedNames.Plural,
			SingularName:       crd.Status.AcceptedNames.Singular,
			Namespaced:         crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			Kind:               crd.Status.AcceptedNames.Kind,
			Verbs:              verbs,
			ShortNames:         crd.Status.AcceptedNames.ShortNames,
			Categories:         crd.Status.AcceptedNames.Categories,
			StorageVersionHash: storageVersionHash,
		})

		subresources, err := apiextensionshelpers.GetSubresourcesForVersion(crd, gv.Version)
		if err != nil {
			return err
		}
		scope := apidiscoveryv2.ScopeCluster
		if crd.Spec.Scope == apiextensionsv1.NamespaceScoped {
			scope = apidiscoveryv2.ScopeNamespace
		}
		kind := &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: crd.Status.AcceptedNames.Kind}
		apiResourceDiscovery := apidiscoveryv2.APIResourceDiscovery{
			Resource:         crd.Status.AcceptedNames.Plural,
			SingularResource: crd.Status.AcceptedNames.Singular,
			Scope:            scope,
			ResponseKind:     kind,
			Verbs:            verbs,
			ShortNames:       crd.Status.AcceptedNames.ShortNames,
			Categories:       crd.Status.AcceptedNames.Categories,
		}
		if subresources != nil && subresources.Status != nil {
			apiResourceDiscovery.Subresources = append(apiResourceDiscovery.Subresources, apidiscoveryv2.APISubresourceDiscovery{
				Subresource:  "status",
				ResponseKind: kind,
				Verbs:        metav1.Verbs([]string{"get", "patch", "update"}),
			})
		}
		if subresources != nil && subresources.Scale != nil {
			apiResourceDiscovery.Subresources = append(apiResourceDiscovery.Subresources, apidiscoveryv2.APISubresourceDiscovery{
				Subresource:  "scale",
				ResponseKind: &metav1.GroupVersionKind{Group: autoscalingv1.GroupName, Version: "v1", Kind: "Scale"},
				Verbs:        metav1.Verbs([]string{"get", "patch", "update"}),
			})
		}
		aggregatedAPIResourcesForDiscovery = append(aggregatedAPIResourcesForDiscovery, apiResourceDiscovery)

		if subresources != nil && subresources.Status != nil {
			apiResourcesForDiscovery = append(apiResourcesForDiscovery, metav1.APIResource{
				Name:       crd.Status.AcceptedNames.Plural + "/status",
				Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
				Kind:       crd.Status.AcceptedNames.Kind,
				Verbs:      metav1.Verbs([]string{"get", "patch", "update"}),
			})
		}
		if subresources != nil && subresources.Scale != nil {
			apiResourcesForDiscovery = append(apiResourcesForDiscovery, metav1.APIResource{
				Group:      autoscalingv1.GroupName,
				Version:    "v1",
				Kind:       "Scale",
				Name:       crd.Status.AcceptedNames.Plural + "/scale",
				Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
				Verbs:      metav1.Verbs([]string{"get", "patch", "update"}),
			})
		}
	}

	if !foundGroup {
		c.handlers.mu.Lock()
		delete(c.handlers.groups, gv.Group)
		delete(c.handlers.apiGroups, gv.Group)
		delete(c.handlers.versions, gv)
		c.handlers.mu.Unlock()
		c.aggregated.RemoveGroup(gv.Group)
		c.removeRootGroup(gv.Group)
		return nil
	}

	sort.Slice(apiVersionsForDiscovery, func(i, j int) bool {
		return version.CompareKubeAwareVersionStrings(apiVersionsForDiscovery[i].Version, apiVersionsForDiscovery[j].Version) > 0
	})
	apiGroup := metav1.APIGroup{
		Name:             gv.Group,
		Versions:         apiVersionsForDiscovery,
		PreferredVersion: apiVersionsForDiscovery[0],
	}
	c.handlers.mu.Lock()
	c.handlers.groups[gv.Group] = discovery.NewAPIGroupHandler(codecs, apiGroup)
	c.handlers.apiGroups[gv.Group] = apiGroup
	c.handlers.mu.Unlock()
	c.setRootGroup(apiGroup)

	if !foundVersion {
		c.handlers.mu.Lock()
		delete(c.handlers.versions, gv)
		c.handlers.mu.Unlock()
		c.aggregated.RemoveGroupVersion(metav1.GroupVersion{Group: gv.Group, Version: gv.Version})
		return nil
	}
	c.handlers.mu.Lock()
	c.handlers.versions[gv] = discovery.NewAPIVersionHandler(codecs, gv, discovery.APIResourceListerFunc(func() []metav1.APIResource {
		return apiResourcesForDiscovery
	}))
	c.handlers.mu.Unlock()

	sort.Slice(aggregatedAPIResourcesForDiscovery, func(i, j int) bool {
		return aggregatedAPIResourcesForDiscovery[i].Resource < aggregatedAPIResourcesForDiscovery[j].Resource
	})
	c.aggregated.AddGroupVersion(gv.Group, apidiscoveryv2.APIVersionDiscovery{
		Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
		Version:   gv.Version,
		Resources: aggregatedAPIResourcesForDiscovery,
	})
	// CRDs' default priorities, as upstream sets them.
	c.aggregated.SetGroupVersionPriority(metav1.GroupVersion{Group: gv.Group, Version: gv.Version}, 1000, 100)
	return nil
}

// setRootGroup puts a CRD group in the legacy /apis list. CRD groups follow
// the built-in ones sorted by name, as the aggregator orders the groups of
// its APIServices (priority 1000, then name).
func (c *discoveryController) setRootGroup(group metav1.APIGroup) {
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	i := sort.SearchStrings(c.rootGroups, group.Name)
	if i < len(c.rootGroups) && c.rootGroups[i] == group.Name {
		c.root.AddGroup(group) // replaced in place
		return
	}
	if i == len(c.rootGroups) {
		c.rootGroups = append(c.rootGroups, group.Name)
		c.root.AddGroup(group)
		return
	}
	// The list only appends: the groups after this one go to its end again.
	after := append([]string(nil), c.rootGroups[i:]...)
	c.rootGroups = append(append(c.rootGroups[:i], group.Name), after...)
	groups := make([]metav1.APIGroup, 0, len(after))
	for _, name := range after {
		if h, ok := c.handlerGroup(name); ok {
			groups = append(groups, h)
		}
		c.root.RemoveGroup(name)
	}
	c.root.AddGroup(group)
	for _, g := range groups {
		c.root.AddGroup(g)
	}
}

func (c *discoveryController) removeRootGroup(name string) {
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	i := sort.SearchStrings(c.rootGroups, name)
	if i < len(c.rootGroups) && c.rootGroups[i] == name {
		c.rootGroups = append(c.rootGroups[:i], c.rootGroups[i+1:]...)
		c.root.RemoveGroup(name)
	}
}

// handlerGroup returns the APIGroup a CRD group's discovery serves.
func (c *discoveryController) handlerGroup(name string) (metav1.APIGroup, bool) {
	c.handlers.mu.RLock()
	defer c.handlers.mu.RUnlock()
	g, ok := c.handlers.apiGroups[name]
	return g, ok
}
