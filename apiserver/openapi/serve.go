package openapi

import (
	"crypto/sha512"
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"

	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// documents are kube-apiserver's own OpenAPI documents for the versions it
// serves by default (hack/update-openapi.sh copies them from the pin).
//
//go:embed spec/swagger.json spec/v3/*.json
var documents embed.FS

// Mux is where the OpenAPI handlers are installed.
type Mux interface {
	Handle(path string, handler http.Handler)
	HandlePrefix(path string, handler http.Handler)
}

func etag(b []byte) string { return fmt.Sprintf("%X", sha512.Sum512(b)) }

// lazy parses an embedded document on first use: start-up stays fast.
func lazy[T any](name string) cached.Value[T] {
	return cached.Once(cached.Func(func() (T, string, error) {
		var out T
		b, err := documents.ReadFile(name)
		if err != nil {
			return out, "", err
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return out, "", fmt.Errorf("unable to parse %s: %w", name, err)
		}
		return out, etag(b), nil
	}))
}

// Install serves /openapi/v2 and /openapi/v3 (with its per group-version
// documents), in JSON and protobuf, as kube-apiserver does.
func Install(mux Mux) error {
	v2 := handler.NewOpenAPIServiceLazy(lazy[*spec.Swagger]("spec/swagger.json"))
	v2.RegisterOpenAPIVersionedService("/openapi/v2", mux)

	v3 := handler3.NewOpenAPIService()
	files, err := documents.ReadDir("spec/v3")
	if err != nil {
		return err
	}
	for _, f := range files {
		// api__v1_openapi.json serves as /openapi/v3/api/v1.
		gv := strings.ReplaceAll(strings.TrimSuffix(f.Name(), "_openapi.json"), "__", "/")
		v3.UpdateGroupVersionLazy(gv, lazy[*spec3.OpenAPI](path.Join("spec/v3", f.Name())))
	}
	return v3.RegisterOpenAPIV3VersionedService("/openapi/v3", mux)
}
