package openapi

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	apiextensionshelpers "k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
	apiextensionsfeatures "k8s.io/apiextensions-apiserver/pkg/features"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// CRDLister lists the cluster's CustomResourceDefinitions (an informer's
// lister: cheap, read-only).
type CRDLister func() ([]*apiextensionsv1.CustomResourceDefinition, error)

// SetCRDs makes the documents include the schemas of the established CRDs
// that list returns, as kube-apiserver's apiextensions OpenAPI controllers
// merge them into /openapi/v2 and publish /openapi/v3/apis/<group>/<version>.
// The documents follow the CRDs on every request: a CRD is in them as soon
// as it is established.
func (d *Documents) SetCRDs(list CRDLister) {
	d.crdMu.Lock()
	defer d.crdMu.Unlock()
	d.crds = list
}

// establishedCRDs lists the established CRDs and a fingerprint of them.
func (d *Documents) establishedCRDs() ([]*apiextensionsv1.CustomResourceDefinition, string, error) {
	d.crdMu.Lock()
	list := d.crds
	d.crdMu.Unlock()
	if list == nil {
		return nil, "", nil
	}
	all, err := list()
	if err != nil {
		return nil, "", err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	var key strings.Builder
	for _, crd := range all {
		if !apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
			continue
		}
		out = append(out, crd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for _, crd := range out {
		fmt.Fprintf(&key, "%s/%s/%s;", crd.Name, crd.UID, crd.ResourceVersion)
	}
	return out, key.String(), nil
}

func includeSelectableFields() bool {
	return utilfeature.DefaultFeatureGate.Enabled(apiextensionsfeatures.CustomResourceFieldSelectors)
}

// crdV2 is the /openapi/v2 document: the built-in one merged with the
// established CRDs', rebuilt when they change. It implements
// cached.Value for kube-openapi's lazy handler.
type crdV2 struct {
	d      *Documents
	static func() (*spec.Swagger, string, error)

	mu     sync.Mutex
	key    string
	merged *spec.Swagger
	etag   string
	gen    int
}

func (v *crdV2) Get() (*spec.Swagger, string, error) {
	static, staticEtag, err := v.static()
	if err != nil {
		return nil, "", err
	}
	crds, key, err := v.d.establishedCRDs()
	if err != nil {
		return nil, "", err
	}
	if len(crds) == 0 {
		return static, staticEtag, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.merged != nil && v.key == key {
		return v.merged, v.etag, nil
	}
	var local []*spec.Swagger
	for _, crd := range crds {
		merged := &spec.Swagger{}
		for _, version := range crd.Spec.Versions {
			if !version.Served {
				continue
			}
			s, err := builder.BuildOpenAPIV2(crd, version.Name, builder.Options{V2: true, IncludeSelectableFields: includeSelectableFields()})
			if err != nil {
				return nil, "", err
			}
			// Pruned so as to merge cleanly with the static document, whose
			// defaults are pruned.
			s.Definitions = handler.PruneDefaults(s.Definitions)
			if merged, err = builder.MergeSpecs(merged, s); err != nil {
				return nil, "", err
			}
		}
		local = append(local, merged)
	}
	merged, err := builder.MergeSpecs(static, local...)
	if err != nil {
		return nil, "", fmt.Errorf("failed to merge specs: %v", err)
	}
	v.gen++
	v.key, v.merged, v.etag = key, merged, fmt.Sprintf("%s-crds-%d", staticEtag, v.gen)
	return merged, v.etag, nil
}

// crdV3 serves the v3 documents of the CRD group versions, kept in step
// with the established CRDs, beside the built-in ones.
type crdV3 struct {
	// service serves the CRD group versions' documents.
	service *handler3.OpenAPIService

	mu sync.Mutex
	// keys fingerprints the published CRDs of each group version.
	keys map[schema.GroupVersion]string
	// paths are the published group versions' paths (apis/<g>/<v>).
	paths map[string]bool
	// discovery caches the merged discovery document by the etags of the
	// two it is made of.
	discoveryKey  string
	discovery     []byte
	discoveryETag string
	discoveryTime time.Time
}

// has reports whether a path (apis/<group>/<version>) is a CRD group
// version's.
func (c *crdV3) has(p string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[p]
}

// sync publishes the v3 documents of the CRD group versions that changed
// and removes those of the ones that went.
func (c *crdV3) sync(d *Documents) error {
	crds, _, err := d.establishedCRDs()
	if err != nil {
		return err
	}
	byGV := map[schema.GroupVersion][]*apiextensionsv1.CustomResourceDefinition{}
	keys := map[schema.GroupVersion]string{}
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			gv := schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name}
			byGV[gv] = append(byGV[gv], crd)
			keys[gv] += fmt.Sprintf("%s/%s/%s;", crd.Name, crd.UID, crd.ResourceVersion)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys, c.paths = map[schema.GroupVersion]string{}, map[string]bool{}
	}
	for gv := range c.keys {
		if _, ok := keys[gv]; !ok {
			c.service.DeleteGroupVersion(v3Path(gv))
			delete(c.keys, gv)
			delete(c.paths, v3Path(gv))
		}
	}
	for gv, key := range keys {
		if c.keys[gv] == key {
			continue
		}
		var specs []*spec3.OpenAPI
		for _, crd := range byGV[gv] {
			s, err := builder.BuildOpenAPIV3(crd, gv.Version, builder.Options{V2: false, IncludeSelectableFields: includeSelectableFields()})
			if err != nil {
				return err
			}
			specs = append(specs, s)
		}
		merged, err := builder.MergeSpecsV3(specs...)
		if err != nil {
			return fmt.Errorf("failed to merge specs: %v", err)
		}
		c.service.UpdateGroupVersion(v3Path(gv), merged)
		c.keys[gv] = key
		c.paths[v3Path(gv)] = true
	}
	return nil
}

// v3Path is where a group version's v3 document is served, under /openapi/v3/.
func v3Path(gv schema.GroupVersion) string { return "apis/" + gv.Group + "/" + gv.Version }

// serveDiscovery serves /openapi/v3: the discovery documents of the
// built-in and of the CRD group versions, merged into one, as
// kube-apiserver's serves both.
func (c *crdV3) serveDiscovery(w http.ResponseWriter, req *http.Request, builtin *handler3.OpenAPIService, remote map[string]http.Handler) {
	builtinDoc, builtinETag, err := discoveryOf(builtin)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	crdDoc, crdETag, err := discoveryOf(c.service)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	remotePaths := make([]string, 0, len(remote))
	for p := range remote {
		remotePaths = append(remotePaths, p)
	}
	sort.Strings(remotePaths)
	c.mu.Lock()
	key := builtinETag + "/" + crdETag + "/" + strings.Join(remotePaths, ",")
	if c.discoveryKey != key {
		var a, b handler3.OpenAPIV3Discovery
		if err := errors.Join(json.Unmarshal(builtinDoc, &a), json.Unmarshal(crdDoc, &b)); err != nil {
			c.mu.Unlock()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for p, gv := range b.Paths {
			a.Paths[p] = gv
		}
		for _, p := range remotePaths {
			a.Paths[p] = handler3.OpenAPIV3DiscoveryGroupVersion{ServerRelativeURL: "/openapi/v3/" + p}
		}
		merged, err := json.Marshal(a)
		if err != nil {
			c.mu.Unlock()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		c.discoveryKey, c.discovery, c.discoveryETag, c.discoveryTime = key, merged, fmt.Sprintf("%X", sha512.Sum512(merged)), time.Now()
	}
	doc, etag, modified := c.discovery, c.discoveryETag, c.discoveryTime
	c.mu.Unlock()
	w.Header().Set("Etag", strconv.Quote(etag))
	w.Header().Set("Content-Type", "application/json")
	http.ServeContent(w, req, "/openapi/v3", modified, bytes.NewReader(doc))
}

// discoveryOf returns a service's discovery document and its etag.
func discoveryOf(s *handler3.OpenAPIService) ([]byte, string, error) {
	rec := httptest.NewRecorder()
	s.HandleDiscovery(rec, httptest.NewRequest(http.MethodGet, "/openapi/v3", nil))
	if rec.Code != http.StatusOK {
		return nil, "", fmt.Errorf("unable to build the OpenAPI v3 discovery document: %d", rec.Code)
	}
	etag, _ := strconv.Unquote(rec.Header().Get("Etag"))
	return rec.Body.Bytes(), etag, nil
}

// DiscoveryPaths returns, without building any document, the paths of the
// group versions /openapi/v3 serves (api/v1, apis/<group>/<version>), each
// with a key that changes when its document may have: what a client of the
// discovery document reads to know which documents to fetch.
func (d *Documents) DiscoveryPaths() (map[string]string, error) {
	out := make(map[string]string, len(d.builtin.paths))
	for _, p := range d.builtin.paths {
		out[p] = d.builtin.version
	}
	files, err := unserved.ReadDir("spec/v3")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		out[strings.ReplaceAll(strings.TrimSuffix(f.Name(), "_openapi.json"), "__", "/")] = d.builtin.version
	}
	crds, _, err := d.establishedCRDs()
	if err != nil {
		return nil, err
	}
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			if v.Served {
				out[v3Path(schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name})] += fmt.Sprintf("%s/%s;", crd.UID, crd.ResourceVersion)
			}
		}
	}
	return out, nil
}
