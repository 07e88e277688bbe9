package apiserver

import (
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/endpoints"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	discoveryendpoint "k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
	"k8s.io/kubernetes/pkg/api/legacyscheme"

	"github.com/kubesim/kubesim/apiserver/registry"
)

// installDiscovery serves discovery as kube-apiserver does: the legacy
// documents (APIVersions, APIGroupList, APIGroup, APIResourceList) and, when
// a client asks for apidiscovery.k8s.io/v2 APIGroupDiscoveryList, the
// aggregated documents of /api and /apis with their ETags, both by
// k8s.io/apiserver's own handlers.
func (s *Server) installDiscovery(r *mux.Router) error {
	addresses := discovery.DefaultAddresses{DefaultAddress: s.listener.Addr().String()}

	legacy := discoveryendpoint.NewResourceManager("api")
	for _, gv := range s.registry.Core.Versions {
		v, err := versionDiscovery(gv)
		if err != nil {
			return err
		}
		legacy.AddGroupVersion("", v)
		handle(r, "/api/"+gv.GroupVersion.Version, discovery.NewAPIVersionHandler(legacyscheme.Codecs, gv.GroupVersion, staticLister{gv.Resources}))
	}
	handle(r, "/api", discoveryendpoint.WrapAggregatedDiscoveryToHandler(
		discovery.NewLegacyRootAPIHandler(addresses, legacyscheme.Codecs, "/api"), legacy, nil))

	aggregated := discoveryendpoint.NewResourceManager("apis")
	root := discovery.NewRootAPIsHandler(addresses, legacyscheme.Codecs)
	s.aggregated, s.root = aggregated, root
	for i, g := range s.registry.Groups {
		group := metav1.APIGroup{Name: g.Name}
		for j, gv := range g.Versions {
			group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.GroupVersion.String(), Version: gv.GroupVersion.Version})
			handle(r, "/apis/"+gv.GroupVersion.String(), discovery.NewAPIVersionHandler(legacyscheme.Codecs, gv.GroupVersion, staticLister{gv.Resources}))
			v, err := versionDiscovery(gv)
			if err != nil {
				return err
			}
			aggregated.AddGroupVersion(g.Name, v)
			// The aggregator orders groups and versions by their APIService
			// priorities; the registry holds them in that order already.
			aggregated.SetGroupVersionPriority(metav1.GroupVersion{Group: g.Name, Version: gv.GroupVersion.Version},
				len(s.registry.Groups)-i, len(g.Versions)-j)
		}
		group.PreferredVersion = group.Versions[0]
		root.AddGroup(group)
		handle(r, "/apis/"+g.Name, discovery.NewAPIGroupHandler(legacyscheme.Codecs, group))
	}
	handle(r, "/apis", discoveryendpoint.WrapAggregatedDiscoveryToHandler(root, aggregated, nil))
	return nil
}

// handle serves a discovery document at path and at path + "/", as
// kube-apiserver's routes do.
func handle(r *mux.Router, path string, h http.Handler) {
	r.Handle(path, h)
	r.Handle(path+"/", h)
}

// versionDiscovery is a group version's aggregated discovery entry, made from
// its resource list as kube-apiserver's installer makes it.
func versionDiscovery(gv *registry.GroupVersion) (apidiscoveryv2.APIVersionDiscovery, error) {
	resources, err := endpoints.ConvertGroupVersionIntoToDiscovery(gv.Resources.APIResources)
	if err != nil {
		return apidiscoveryv2.APIVersionDiscovery{}, fmt.Errorf("aggregated discovery of %s: %w", gv.GroupVersion, err)
	}
	return apidiscoveryv2.APIVersionDiscovery{
		Version:   gv.GroupVersion.Version,
		Resources: resources,
		Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
	}, nil
}

// staticLister serves a fixed resource list.
type staticLister struct{ list *metav1.APIResourceList }

func (l staticLister) ListAPIResources() []metav1.APIResource { return l.list.APIResources }
