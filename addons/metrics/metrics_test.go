package metrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"
)

func testConfig() Config {
	return Config{
		Informers: informers.NewSharedInformerFactory(fake.NewClientset(), 0),
		Kubelet:   rest.Config{Host: "https://127.0.0.1:1"},
	}
}

// get serves path from s's handler as a cluster admin and returns the body.
func get(t *testing.T, s *Server, path string) []byte {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req = req.WithContext(request.WithUser(req.Context(), &user.DefaultInfo{Name: "admin", Groups: []string{user.SystemPrivilegedGroup}}))
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	body, _ := io.ReadAll(w.Result().Body)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, w.Code, body)
	}
	return body
}

var openAPIPaths = []string{"/openapi/v3", "/openapi/v3/apis/metrics.k8s.io/v1beta1", "/openapi/v3/apis", "/openapi/v3/version"}

// TestOpenAPIFromSharedDefinitions: a metrics-server built on the
// definitions its routes reach serves the OpenAPI v3 documents one built
// on all of k8s.io/kubernetes's serves, byte for byte.
func TestOpenAPIFromSharedDefinitions(t *testing.T) {
	full, err := newServer(testConfig(), generatedopenapi.GetOpenAPIDefinitions)
	if err != nil {
		t.Fatal(err)
	}
	// The second server of a process builds on definitions the first's
	// builder has been through.
	for i := range 2 {
		shared, err := New(testConfig())
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range openAPIPaths {
			want, got := get(t, full, path), get(t, shared, path)
			t.Logf("%s %d %d", path, len(want), len(got))
			if !bytes.Equal(want, got) {
				t.Errorf("server %d: GET %s: %d bytes, want %d bytes:\n%s\nwant:\n%s", i, path, len(got), len(want), got, want)
			}
		}
	}
}

// TestServersBuiltConcurrently: servers of clusters started at once (an
// operator suite's parallel specs) build and serve their OpenAPI from the
// shared definitions at the same time. Run with -race.
func TestServersBuiltConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := New(testConfig())
			if err != nil {
				errs <- err
				return
			}
			for _, path := range openAPIPaths {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req = req.WithContext(request.WithUser(req.Context(), &user.DefaultInfo{Name: "admin", Groups: []string{user.SystemPrivilegedGroup}}))
				w := httptest.NewRecorder()
				s.Handler().ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					errs <- fmt.Errorf("GET %s: %d", path, w.Code)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
