package apiserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"
)

// TestOpenAPIBuilds builds the OpenAPI documents from the routes of every
// served endpoint and checks what kubectl explain reads from them.
func TestOpenAPIBuilds(t *testing.T) {
	s, err := New(Config{AnyPort: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.listener.Close()
	if err := s.openapi.Prepare(); err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	s.openapi.Install(muxAdapter{r})
	for _, tc := range []struct {
		path, schema, property string
		enum                   []any
	}{
		{"/openapi/v3/apis/apps/v1", "io.k8s.api.apps.v1.DeploymentStrategy", "type", []any{"Recreate", "RollingUpdate"}},
		{"/openapi/v3/api/v1", "io.k8s.api.core.v1.Container", "imagePullPolicy", []any{"Always", "IfNotPresent", "Never"}},
		{"/openapi/v2", "io.k8s.api.apps.v1.DeploymentStrategy", "type", []any{"Recreate", "RollingUpdate"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.path, rec.Code, rec.Body)
			}
			type schemas map[string]struct {
				Properties map[string]struct {
					Enum []any `json:"enum"`
				} `json:"properties"`
			}
			var doc struct {
				Components struct {
					Schemas schemas `json:"schemas"`
				} `json:"components"`
				Definitions schemas `json:"definitions"` // v2
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			all := doc.Components.Schemas
			if all == nil {
				all = doc.Definitions
			}
			got := all[tc.schema].Properties[tc.property].Enum
			if len(got) != len(tc.enum) {
				t.Fatalf("%s.%s enum = %v, want %v", tc.schema, tc.property, got, tc.enum)
			}
		})
	}
}
