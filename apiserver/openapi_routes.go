package apiserver

import (
	"fmt"
	"strings"

	restful "github.com/emicklei/go-restful/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apiserver/pkg/endpoints"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/server/routes"
	"k8s.io/kubernetes/pkg/api/legacyscheme"

	"github.com/kubesim/kubesim/apiserver/openapi"
	"github.com/kubesim/kubesim/apiserver/registry"
)

// restfulRoutes describes every served endpoint as kube-apiserver's
// installer registers it: go-restful web services with their paths,
// parameters, consumed and produced media types and object schemas, made by
// k8s.io/apiserver's own APIInstaller over the registry's storage. kubesim
// serves requests through its own router; these routes only feed the
// OpenAPI builders, so that /openapi/v2 and /openapi/v3 are what
// kube-apiserver builds from k8s.io/kubernetes/pkg/generated/openapi.
func (s *Server) restfulRoutes(typeConverter managedfields.TypeConverter) (*restful.Container, error) {
	container := restful.NewContainer()
	equivalent := runtime.NewEquivalentResourceRegistry()
	scheme := legacyscheme.Scheme
	core := schema.GroupVersion{Version: "v1"}
	groups := append([]*registry.Group{s.registry.Core}, s.registry.Groups...)
	for _, g := range groups {
		if g.Name == openapi.EmbeddedGroup {
			continue // its documents are kube-apiserver's own, embedded
		}
		for _, gv := range g.Versions {
			storage := map[string]rest.Storage{}
			for _, ep := range gv.Endpoints {
				st := ep.Storage
				if ep.GroupVersion.Group == "" && ep.Resource == "bindings" {
					st = s.registry.LegacyBindings()
				}
				if st == nil {
					continue
				}
				path := ep.Resource
				if ep.Subresource != "" {
					path += "/" + ep.Subresource
				}
				storage[path] = st
			}
			if len(storage) == 0 {
				continue
			}
			root := "/apis"
			if gv.GroupVersion.Group == "" {
				root = "/api"
			}
			apiGV := &endpoints.APIGroupVersion{
				Storage:                    storage,
				Root:                       root,
				GroupVersion:               gv.GroupVersion,
				MetaGroupVersion:           &metav1.SchemeGroupVersion,
				Serializer:                 legacyscheme.Codecs,
				ParameterCodec:             legacyscheme.ParameterCodec,
				Typer:                      scheme,
				Creater:                    scheme,
				Convertor:                  scheme,
				ConvertabilityChecker:      scheme,
				Defaulter:                  scheme,
				Namer:                      meta.NewAccessor(),
				UnsafeConvertor:            runtime.UnsafeObjectConvertor(scheme),
				TypeConverter:              typeConverter,
				EquivalentResourceRegistry: equivalent,
				Authorizer:                 s.authorizer,
				MinRequestTimeout:          s.cfg.MinRequestTimeout,
				MaxRequestBodyBytes:        s.cfg.MaxRequestBodyBytes,
			}
			if gv.GroupVersion.Group == "" {
				apiGV.OptionsExternalVersion = &core
			}
			if _, _, err := apiGV.InstallREST(container); err != nil {
				return nil, fmt.Errorf("unable to describe the routes of %s: %w", gv.GroupVersion, err)
			}
		}
	}

	// The discovery and version routes, as kube-apiserver registers them.
	addresses := discovery.DefaultAddresses{DefaultAddress: s.listener.Addr().String()}
	container.Add(discovery.NewLegacyRootAPIHandler(addresses, legacyscheme.Codecs, "/api").WebService())
	container.Add(discovery.NewRootAPIsHandler(addresses, legacyscheme.Codecs).WebService())
	for _, g := range s.registry.Groups {
		group := metav1.APIGroup{Name: g.Name}
		for _, gv := range g.Versions {
			group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.GroupVersion.String(), Version: gv.GroupVersion.Version})
		}
		group.PreferredVersion = group.Versions[0]
		container.Add(discovery.NewAPIGroupHandler(legacyscheme.Codecs, group).WebService())
	}
	info := Version()
	routes.Version{Version: &info}.Install(container)
	if err := s.serviceAccounts.installOpenIDMetadata(container, s.listener.Addr().String()); err != nil {
		return nil, err
	}
	return container, nil
}

// openAPIVersion is the info.version of kube-apiserver's OpenAPI documents:
// its binary version, major.minor.
func openAPIVersion() string {
	v := Version()
	return strings.TrimSuffix(v.Major, "+") + "." + strings.TrimSuffix(v.Minor, "+")
}
