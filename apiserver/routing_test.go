package apiserver

import (
	"net/http"
	"testing"

	"k8s.io/client-go/rest"
)

// TestIsResourcePath: the paths apiFirst hands straight to the API handler
// are clean paths below a group version, which no other route matches.
func TestIsResourcePath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/api/v1/namespaces", true},
		{"/api/v1/namespaces/default/pods/p/status", true},
		{"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n", true},
		{"/apis/apps/v1/deployments/", true},
		// Discovery documents, at the path and at the path and a slash.
		{"/api", false},
		{"/api/", false},
		{"/api/v1", false},
		{"/api/v1/", false},
		{"/apis", false},
		{"/apis/apps", false},
		{"/apis/apps/", false},
		{"/apis/apps/v1", false},
		{"/apis/apps/v1/", false},
		// Paths the router cleans and redirects.
		{"/api/v1//namespaces", false},
		{"/apis/apps/v1/./deployments", false},
		{"/api/v1/namespaces/../pods", false},
		{"//api/v1/namespaces", false},
		{"/apis//v1/x", false},
		// Not the API.
		{"/healthz", false},
		{"/openapi/v3/apis/apps/v1", false},
		{"/apisx/apps/v1/deployments", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if got := isResourcePath(tc.path); got != tc.want {
				t.Errorf("isResourcePath(%q) = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
}

// TestRouting: through the server's handler, the resource paths, the
// discovery documents and the paths the router redirects answer as before.
func TestRouting(t *testing.T) {
	s, _ := startServer(t)
	cfg := s.RESTConfig()
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		path         string
		wantStatus   int
		wantLocation string
	}{
		{"/api/v1/namespaces/default", http.StatusOK, ""},
		{"/apis/coordination.k8s.io/v1/namespaces/default/leases", http.StatusOK, ""},
		{"/apis/coordination.k8s.io/v1/namespaces/default/leases/none", http.StatusNotFound, ""},
		{"/api/v1", http.StatusOK, ""},
		{"/apis/apps/v1/", http.StatusOK, ""},
		{"/apis/apps", http.StatusOK, ""},
		{"/api/v1//namespaces/default", http.StatusMovedPermanently, "/api/v1/namespaces/default"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := client.Get(cfg.Host + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.wantStatus)
			}
			if loc := resp.Header.Get("Location"); loc != tc.wantLocation {
				t.Errorf("GET %s: Location %q, want %q", tc.path, loc, tc.wantLocation)
			}
		})
	}
}
