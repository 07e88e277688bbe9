package openapi

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	utilopenapi "k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/klog/v2"
	openapibuilder3 "k8s.io/kube-openapi/pkg/builder3"
	openapicommon "k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/spec3"
	openapiutil "k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
)

// V3Config returns kube-apiserver's OpenAPI v3 configuration over scheme.
func V3Config(scheme *runtime.Scheme) *openapicommon.OpenAPIV3Config {
	defs := utilopenapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions)
	cfg := genericapiserver.DefaultOpenAPIV3Config(defs, openapinamer.NewDefinitionNamer(scheme))
	cfg.Info.Title = "Kubernetes"
	// The bearer token scheme kube-apiserver's token authenticators
	// declare, and what k8s.io/apiserver's config completion adds for it:
	// every operation needs it and may answer 401.
	cfg.SecuritySchemes = spec3.SecuritySchemes{"BearerToken": {SecuritySchemeProps: spec3.SecuritySchemeProps{
		Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
	}}}
	for _, k := range slices.Sorted(maps.Keys(cfg.SecuritySchemes)) {
		cfg.DefaultSecurity = append(cfg.DefaultSecurity, map[string][]string{k: {}})
	}
	cfg.CommonResponses = map[int]*spec3.Response{http.StatusUnauthorized: {ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}}}
	return cfg
}

// Models builds the OpenAPI schemas of the given kinds and of everything
// they reference.
func Models(scheme *runtime.Scheme, kinds []schema.GroupVersionKind) (map[string]*spec.Schema, error) {
	names := make([]string, 0, len(kinds))
	seen := map[string]bool{}
	for _, gvk := range kinds {
		obj, err := scheme.New(gvk)
		if err != nil {
			return nil, fmt.Errorf("unable to build OpenAPI models: %w", err)
		}
		name := openapiutil.GetCanonicalTypeName(obj)
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	models, err := openapibuilder3.BuildOpenAPIDefinitionsForResources(V3Config(scheme), names...)
	if err != nil {
		return nil, fmt.Errorf("unable to build OpenAPI models: %w", err)
	}
	return models, nil
}

// typeConverters caches type converters by scheme and kinds: they are
// immutable, and a test binary starts many clusters of the same kinds.
var typeConverters sync.Map // typeConverterKey -> managedfields.TypeConverter

type typeConverterKey struct {
	scheme *runtime.Scheme
	kinds  string
}

// TypeConverter returns the managed-fields type converter for kinds.
func TypeConverter(scheme *runtime.Scheme, kinds []schema.GroupVersionKind) (managedfields.TypeConverter, error) {
	key := typeConverterKey{scheme: scheme, kinds: fmt.Sprint(kinds)}
	if tc, ok := typeConverters.Load(key); ok {
		return tc.(managedfields.TypeConverter), nil
	}
	tc, err := generatedTypeConverter(scheme, kinds)
	if err != nil {
		return nil, err
	}
	if tc == nil {
		models, err := Models(scheme, kinds)
		if err != nil {
			return nil, err
		}
		if tc, err = newTypeConverter(models); err != nil {
			return nil, err
		}
	}
	typeConverters.Store(key, tc)
	return tc, nil
}

// crdStaticModels are the OpenAPI models of the CustomResourceDefinition
// type and of everything it references (ObjectMeta, ...): what
// kube-apiserver's apiextensions server merges custom resources' schemas
// into for their managed fields.
var crdStaticModels = sync.OnceValues(func() (map[string]*spec.Schema, error) {
	return Models(legacyscheme.Scheme, []schema.GroupVersionKind{{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}})
})

// CRDStaticModels returns the models custom resources' schemas are merged
// into. They are built once per process and must not be modified.
func CRDStaticModels() (map[string]*spec.Schema, error) { return crdStaticModels() }

// TypeConverterInBackground returns TypeConverter(scheme, kinds) at once:
// when the process has not built it yet, it is built in the background and
// its methods wait for it (a few milliseconds over the generated schema; 45
// ms of CPU from the OpenAPI definitions, for kinds it does not cover). Building it cannot fail for kinds the scheme
// serves; if it does, the error is logged and each conversion returns it.
func TypeConverterInBackground(scheme *runtime.Scheme, kinds []schema.GroupVersionKind) managedfields.TypeConverter {
	key := typeConverterKey{scheme: scheme, kinds: fmt.Sprint(kinds)}
	if tc, ok := typeConverters.Load(key); ok {
		return tc.(managedfields.TypeConverter)
	}
	l := &laterTypeConverter{built: make(chan struct{})}
	go func() {
		defer close(l.built)
		if l.tc, l.err = TypeConverter(scheme, kinds); l.err != nil {
			klog.Background().Error(l.err, "Unable to build the managed fields' type converter")
		}
	}()
	return l
}

// laterTypeConverter is a type converter being built.
type laterTypeConverter struct {
	built chan struct{}
	tc    managedfields.TypeConverter
	err   error
}

func (l *laterTypeConverter) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	<-l.built
	if l.err != nil {
		return nil, l.err
	}
	return l.tc.ObjectToTyped(obj, opts...)
}

func (l *laterTypeConverter) TypedToObject(v *typed.TypedValue) (runtime.Object, error) {
	<-l.built
	if l.err != nil {
		return nil, l.err
	}
	return l.tc.TypedToObject(v)
}
