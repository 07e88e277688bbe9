package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/endpoints"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// localAPIs are group versions served by in-process API servers (an
// aggregated API server such as metrics-server, built on
// k8s.io/apiserver): requests under /apis/GROUP/VERSION pass the server's
// authentication and authorization, then go to the group version's
// handler, as the aggregator hands a request to the server an APIService
// names.
type localAPIs struct {
	mu       sync.RWMutex // guards handlers
	handlers map[schema.GroupVersion]http.Handler
}

func (l *localAPIs) handler(info *request.RequestInfo) http.Handler {
	if info.APIPrefix != "apis" {
		return nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if info.APIVersion == "" {
		// The group's own discovery document, /apis/GROUP.
		for gv, h := range l.handlers {
			if gv.Group == info.APIGroup {
				return h
			}
		}
	}
	return l.handlers[schema.GroupVersion{Group: info.APIGroup, Version: info.APIVersion}]
}

// AddLocalAPI serves the group version gv with h, an in-process API
// server's handler, behind the server's authentication and authorization,
// and lists it in discovery, legacy and aggregated, with the resources h
// lists at /apis/GROUP/VERSION and the priorities its APIService would
// have. The handler sees the authenticated user in the request's context.
func (s *Server) AddLocalAPI(ctx context.Context, gv schema.GroupVersion, h http.Handler, groupPriority, versionPriority int) error {
	if gv.Group == "" || gv.Version == "" {
		return fmt.Errorf("AddLocalAPI: group version %q lacks a group or a version", gv)
	}
	for _, g := range s.registry.Groups {
		if g.Name == gv.Group {
			return fmt.Errorf("AddLocalAPI: group %q is served by the API server itself", gv.Group)
		}
	}
	// The server's own resource list is its discovery document.
	rec := httptest.NewRecorder()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/apis/"+gv.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("AddLocalAPI: %s answers its discovery with %d: %s", gv, rec.Code, rec.Body.String())
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
		return fmt.Errorf("AddLocalAPI: %s's discovery: %w", gv, err)
	}
	resources, err := endpoints.ConvertGroupVersionIntoToDiscovery(list.APIResources)
	if err != nil {
		return fmt.Errorf("AddLocalAPI: aggregated discovery of %s: %w", gv, err)
	}
	s.local.mu.Lock()
	if s.local.handlers == nil {
		s.local.handlers = map[schema.GroupVersion]http.Handler{}
	}
	s.local.handlers[gv] = h
	s.local.mu.Unlock()
	s.aggregated.AddGroupVersion(gv.Group, apidiscoveryv2.APIVersionDiscovery{
		Version: gv.Version, Resources: resources, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
	})
	s.aggregated.SetGroupVersionPriority(metav1.GroupVersion{Group: gv.Group, Version: gv.Version}, groupPriority, versionPriority)
	// Its APIService, as an in-process server's: local, Available.
	s.aggregator.autoregister.AddAPIServiceToSync(localAPIService(gv, groupPriority, versionPriority))
	version := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
	s.root.AddGroup(metav1.APIGroup{Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{version}, PreferredVersion: version})
	return nil
}
