package openapi

import (
	"fmt"
	"reflect"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/schemaconv"
	openapiutil "k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	smdschema "sigs.k8s.io/structured-merge-diff/v6/schema"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// The field manager turns the old and the new object of every update into
// structured-merge-diff typed values, and each conversion walks the whole
// object to validate it against the schema: on 5,000 idle nodes (lease
// renewals) those walks took a tenth of the process's CPU, as much as the
// comparison that follows them. For a Go object whose type the schema was
// generated from, the walk can fail in few ways: a field the schema does
// not declare (kube-apiserver drops the fields of disabled features from
// its OpenAPI), an element of a keyed list with every key omitted, a value
// whose JSON encoding the schema does not describe. skipValidationTypeConverter
// looks at only those fields of each object, and validates the objects
// where one is set, so the field manager gets what upstream's converter
// gives it: the same typed value, or the same error.

// skipValidationTypeConverter is managedfields.NewTypeConverter's converter
// that leaves out the validation walk where it cannot fail.
type skipValidationTypeConverter struct {
	// upstream's: TypedToObject, and the error for a kind without a schema
	managedfields.TypeConverter

	parsers map[schema.GroupVersionKind]*typed.ParseableType
	plans   sync.Map // planKey -> *plan
}

var _ managedfields.TypeConverter = (*skipValidationTypeConverter)(nil)

// newTypeConverter returns the field manager's type converter for models,
// as managedfields.NewTypeConverter(models, false) builds it.
func newTypeConverter(models map[string]*spec.Schema) (managedfields.TypeConverter, error) {
	// Upstream's over no models: its TypedToObject does not read them,
	// and it gives the error of a kind without a schema (the field
	// manager's versions converter recognises its type). Over the models it
	// would convert them to a schema again (a fifth of the converter's
	// build, the largest part of a process's first start).
	upstream, err := managedfields.NewTypeConverter(map[string]*spec.Schema{}, false)
	if err != nil {
		return nil, err
	}
	typeSchema, err := schemaconv.ToSchemaFromOpenAPI(models, false)
	if err != nil {
		return nil, fmt.Errorf("failed to convert models to schema: %v", err)
	}
	parser := &typed.Parser{Schema: smdschema.Schema{Types: typeSchema.Types}}
	parsers := map[schema.GroupVersionKind]*typed.ParseableType{}
	for name, model := range models {
		for _, gvk := range modelKinds(model) {
			t := parser.Type(name)
			parsers[gvk] = &t
		}
	}
	return &skipValidationTypeConverter{TypeConverter: upstream, parsers: parsers}, nil
}

// modelKinds reads a model's x-kubernetes-group-version-kind extension.
func modelKinds(model *spec.Schema) []schema.GroupVersionKind {
	list, _ := model.Extensions["x-kubernetes-group-version-kind"].([]interface{})
	var gvks []schema.GroupVersionKind
	for _, item := range list {
		var group, version, kind any
		switch m := item.(type) {
		case map[string]interface{}:
			group, version, kind = m["group"], m["version"], m["kind"]
		case map[interface{}]interface{}:
			group, version, kind = m["group"], m["version"], m["kind"]
		}
		g, gok := group.(string)
		v, vok := version.(string)
		k, kok := kind.(string)
		if gok && vok && kok && k != "" {
			gvks = append(gvks, schema.GroupVersionKind{Group: g, Version: v, Kind: k})
		}
	}
	return gvks
}

// ObjectToTyped implements managedfields.TypeConverter as upstream's does,
// over a parser of its own: the field manager merges typed values only if
// they come from the same schema. It skips the validation only for the
// field manager's own conversions of typed objects (those that allow
// duplicates), and only where the object sets no field the validation
// could reject.
func (c *skipValidationTypeConverter) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	pt := c.parsers[obj.GetObjectKind().GroupVersionKind()]
	if pt == nil {
		return c.TypeConverter.ObjectToTyped(obj, opts...) // upstream's error
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return pt.FromUnstructured(u.UnstructuredContent(), opts...)
	}
	if !slices.Equal(opts, []typed.ValidationOptions{typed.AllowDuplicates}) || c.unvalidated(obj) == nil {
		return pt.FromStructured(obj, opts...)
	}
	rv, err := value.NewValueReflect(obj)
	if err != nil {
		return pt.FromStructured(obj, opts...)
	}
	return typed.AsTypedUnvalidated(rv, pt.Schema, pt.TypeRef), nil
}

// unvalidated returns the parseable type of typed object obj if validating
// obj against it cannot fail, nil if it may.
func (c *skipValidationTypeConverter) unvalidated(obj runtime.Object) *typed.ParseableType {
	if _, ok := obj.(*unstructured.Unstructured); ok {
		return nil
	}
	pt := c.parsers[obj.GetObjectKind().GroupVersionKind()]
	v := reflect.ValueOf(obj)
	if pt == nil || pt.TypeRef.NamedType == nil || v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	if c.planFor(v.Type().Elem(), pt.Schema, *pt.TypeRef.NamedType).mayFail(v.Elem()) {
		return nil
	}
	return pt
}

// plan lists, for a Go struct type and its schema, the fields the
// validation could reject and the fields to look into for more.
type plan struct {
	opaque bool // the type does not map onto its schema: always validate
	steps  []step
}

type step struct {
	field *value.FieldCacheEntry
	// set: validate when the field is not omitted (undeclared, or a value
	// whose encoding the schema may not describe).
	set bool
	// keys: the field is a keyed list whose elements may omit every key;
	// validate when one does.
	keys []*value.FieldCacheEntry
	// elem: the plan of the field's struct value, or of its elements.
	elem *plan
}

type planKey struct {
	t    reflect.Type
	name string
}

// mayFail reports whether the validation walk could reject v.
func (p *plan) mayFail(v reflect.Value) bool {
	if p.opaque {
		return true
	}
	for i := range p.steps {
		s := &p.steps[i]
		fv := s.field.GetFrom(v)
		if s.field.CanOmit(fv) {
			continue
		}
		if s.set || s.elem != nil && s.elem.opaque {
			return true
		}
		if s.keys == nil && s.elem == nil {
			continue
		}
		for fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				break
			}
			fv = fv.Elem()
		}
		switch fv.Kind() {
		case reflect.Struct:
			if s.elem.mayFail(fv) {
				return true
			}
		case reflect.Slice, reflect.Array, reflect.Map:
			it := valuesOf(fv)
			for ev := range it {
				for ev.Kind() == reflect.Pointer && !ev.IsNil() {
					ev = ev.Elem()
				}
				if ev.Kind() != reflect.Struct {
					continue
				}
				if s.keys != nil && allKeysOmitted(ev, s.keys) {
					return true
				}
				if s.elem != nil && s.elem.mayFail(ev) {
					return true
				}
			}
		}
	}
	return false
}

// valuesOf yields the elements of a slice or array, or the values of a map.
func valuesOf(v reflect.Value) func(func(reflect.Value) bool) {
	return func(yield func(reflect.Value) bool) {
		if v.Kind() == reflect.Map {
			it := v.MapRange()
			for it.Next() {
				if !yield(it.Value()) {
					return
				}
			}
			return
		}
		for i := range v.Len() {
			if !yield(v.Index(i)) {
				return
			}
		}
	}
}

func allKeysOmitted(v reflect.Value, keys []*value.FieldCacheEntry) bool {
	for _, k := range keys {
		if !k.CanOmit(k.GetFrom(v)) {
			return false
		}
	}
	return true
}

// planFor returns the plan of Go struct type t against the named schema
// type, building it once.
func (c *skipValidationTypeConverter) planFor(t reflect.Type, s *smdschema.Schema, name string) *plan {
	key := planKey{t, name}
	if p, ok := c.plans.Load(key); ok {
		return p.(*plan)
	}
	building := map[planKey]*plan{}
	p := buildPlan(t, s, smdschema.TypeRef{NamedType: &name}, building)
	prune(building)
	for k, bp := range building {
		c.plans.LoadOrStore(k, bp)
	}
	return p
}

// safeLeaves are the types that encode themselves (json.Marshaler or
// value.UnstructuredConverter) as a scalar their schema accepts.
var safeLeaves = map[reflect.Type]bool{
	reflect.TypeFor[metav1.Time]():        true,
	reflect.TypeFor[metav1.MicroTime]():   true,
	reflect.TypeFor[metav1.Duration]():    true,
	reflect.TypeFor[resource.Quantity]():  true,
	reflect.TypeFor[intstr.IntOrString](): true,
	reflect.TypeFor[metav1.FieldsV1]():    true,
}

// buildPlan builds the plan of struct type t against tr. building holds
// the plans of named types under construction, for recursive types.
func buildPlan(t reflect.Type, s *smdschema.Schema, tr smdschema.TypeRef, building map[planKey]*plan) *plan {
	var key planKey
	if tr.NamedType != nil {
		key = planKey{t, *tr.NamedType}
		if p, ok := building[key]; ok {
			return p
		}
	}
	p := &plan{}
	if tr.NamedType != nil {
		building[key] = p
	}
	atom, ok := s.Resolve(tr)
	if !ok || atom.Map == nil || t.Kind() != reflect.Struct || value.TypeReflectEntryOf(t).CanConvertToUnstructured() {
		p.opaque = true
		return p
	}
	entry := value.TypeReflectEntryOf(t)
	zero := reflect.New(t).Elem()
	for _, fe := range entry.OrderedFields() {
		ft := fe.GetFrom(zero).Type()
		sf, declared := atom.Map.FindField(fe.JsonName)
		if !declared {
			// Undeclared: the walk fails unless the map has an element
			// type, which it then checks the value against.
			p.steps = append(p.steps, step{field: fe, set: true})
			continue
		}
		if st, needed := fieldStep(fe, ft, s, sf.Type, building); needed {
			p.steps = append(p.steps, st)
		}
	}
	return p
}

// fieldStep returns what the validation of a declared field of Go type ft
// against tr needs looked at, and whether it needs anything.
func fieldStep(fe *value.FieldCacheEntry, ft reflect.Type, s *smdschema.Schema, tr smdschema.TypeRef, building map[planKey]*plan) (step, bool) {
	for ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	st := step{field: fe}
	if safeLeaves[ft] {
		return st, false
	}
	atom, ok := s.Resolve(tr)
	if !ok {
		st.set = true
		return st, true
	}
	ce := value.TypeReflectEntryOf(ft)
	if ce.CanConvertToUnstructured() {
		// Encodes itself to something the schema may not describe.
		st.set = true
		return st, true
	}
	switch ft.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if atom.Scalar == nil {
			st.set = true
			return st, true
		}
		return st, false
	case reflect.Struct:
		// Kept for now: prune drops it if there is nothing to look at.
		st.elem = buildPlan(ft, s, tr, building)
		return st, true
	case reflect.Slice, reflect.Array:
		if ft.Elem().Kind() == reflect.Uint8 {
			// []byte: a base64 string.
			if atom.Scalar == nil {
				st.set = true
				return st, true
			}
			return st, false
		}
		if atom.List == nil {
			st.set = true
			return st, true
		}
		return elemStep(st, ft.Elem(), s, atom.List.ElementType, atom.List, building)
	case reflect.Map:
		if atom.Map == nil || ft.Key().Kind() != reflect.String {
			st.set = true
			return st, true
		}
		return elemStep(st, ft.Elem(), s, atom.Map.ElementType, nil, building)
	default:
		// interface{} and the like: whatever is in it.
		st.set = true
		return st, true
	}
}

// prune drops the steps that lead to nothing to look at, from the plans
// of building and those they reach. Types may be recursive: a plan is
// trivial unless it has, or reaches, a step that can fail.
func prune(building map[planKey]*plan) {
	all := map[*plan]bool{}
	var collect func(p *plan)
	collect = func(p *plan) {
		if p == nil || all[p] {
			return
		}
		all[p] = true
		for _, s := range p.steps {
			collect(s.elem)
		}
	}
	for _, p := range building {
		collect(p)
	}
	live := map[*plan]bool{} // plans that are not trivial
	for changed := true; changed; {
		changed = false
		for p := range all {
			if live[p] {
				continue
			}
			if p.opaque || slices.ContainsFunc(p.steps, func(s step) bool { return s.set || s.keys != nil || live[s.elem] }) {
				live[p] = true
				changed = true
			}
		}
	}
	for p := range all {
		p.steps = slices.DeleteFunc(p.steps, func(s step) bool { return !s.set && s.keys == nil && !live[s.elem] })
		for i := range p.steps {
			if !live[p.steps[i].elem] {
				p.steps[i].elem = nil
			}
		}
	}
}

// elemStep fills in the step of a list (list non-nil) or map field from
// its element type.
func elemStep(st step, et reflect.Type, s *smdschema.Schema, etr smdschema.TypeRef, list *smdschema.List, building map[planKey]*plan) (step, bool) {
	for et.Kind() == reflect.Pointer {
		et = et.Elem()
	}
	if safeLeaves[et] {
		return st, false
	}
	inner, needed := fieldStep(st.field, et, s, etr, building)
	if inner.set {
		// Elements the plan cannot follow: validate whenever there are any.
		st.set = true
		return st, true
	}
	st.elem = inner.elem
	if list != nil && list.ElementRelationship == smdschema.Associative && len(list.Keys) > 0 && et.Kind() == reflect.Struct {
		fields := value.TypeReflectEntryOf(et).Fields()
		keys := make([]*value.FieldCacheEntry, 0, len(list.Keys))
		for _, k := range list.Keys {
			kf, ok := fields[k]
			if !ok {
				// A key the Go type lacks: every element omits it.
				st.set = true
				return st, true
			}
			keys = append(keys, kf)
		}
		if slices.ContainsFunc(keys, func(k *value.FieldCacheEntry) bool { return !k.CanOmit(reflect.Zero(fieldType(et, k))) }) {
			// Some key is never omitted.
			keys = nil
		}
		st.keys = keys
		needed = needed || keys != nil
	}
	return st, needed
}

// fieldType returns the type of field f of struct type t.
func fieldType(t reflect.Type, f *value.FieldCacheEntry) reflect.Type {
	return f.GetFrom(reflect.New(t).Elem()).Type()
}

// generatedParser parses over zz_generated.schema.go's schema: what
// schemaconv.ToSchemaFromOpenAPI makes of the models of every kind
// legacyscheme holds, which a process would otherwise build from
// k8s.io/kubernetes's OpenAPI definitions at its first start (45 ms of
// CPU, most of a process's start-up). TestGeneratedSchema keeps it current.
var generatedParser = sync.OnceValue(func() *typed.Parser {
	return &typed.Parser{Schema: smdschema.Schema{Types: generatedTypes}}
})

// generatedKinds maps each model to its x-kubernetes-group-version-kind.
var generatedKinds = sync.OnceValue(func() map[string][]schema.GroupVersionKind {
	m := make(map[string][]schema.GroupVersionKind, len(generatedModelKinds))
	for _, mk := range generatedModelKinds {
		m[mk.model] = mk.kinds
	}
	return m
})

// generatedTypeConverter returns newTypeConverter(Models(scheme, kinds))
// built over the generated schema, or nil if that does not cover them. It
// parses the models Models would build, those of the kinds and of the
// types they reference, with the same schema types.
func generatedTypeConverter(scheme *runtime.Scheme, kinds []schema.GroupVersionKind) (managedfields.TypeConverter, error) {
	if scheme != legacyscheme.Scheme {
		return nil, nil
	}
	parser := generatedParser()
	roots := make([]string, 0, len(kinds))
	for _, gvk := range kinds {
		obj, err := scheme.New(gvk)
		if err != nil {
			return nil, nil // Models' error
		}
		name := openapiutil.GetCanonicalTypeName(obj)
		if _, ok := parser.Schema.FindNamedType(name); !ok {
			return nil, nil
		}
		roots = append(roots, name)
	}
	upstream, err := managedfields.NewTypeConverter(map[string]*spec.Schema{}, false)
	if err != nil {
		return nil, err
	}
	modelKinds := generatedKinds()
	parsers := map[schema.GroupVersionKind]*typed.ParseableType{}
	for name := range referenced(&parser.Schema, roots) {
		for _, gvk := range modelKinds[name] {
			t := parser.Type(name)
			parsers[gvk] = &t
		}
	}
	return &skipValidationTypeConverter{TypeConverter: upstream, parsers: parsers}, nil
}

// referenced returns the named types of s that roots are or reference.
func referenced(s *smdschema.Schema, roots []string) map[string]bool {
	seen := map[string]bool{}
	var visitRef func(smdschema.TypeRef)
	var visitAtom func(smdschema.Atom)
	visitRef = func(tr smdschema.TypeRef) {
		if tr.NamedType != nil && !seen[*tr.NamedType] {
			seen[*tr.NamedType] = true
			if td, ok := s.FindNamedType(*tr.NamedType); ok {
				visitAtom(td.Atom)
			}
		}
		visitAtom(tr.Inlined)
	}
	visitAtom = func(a smdschema.Atom) {
		if a.List != nil {
			visitRef(a.List.ElementType)
		}
		if a.Map != nil {
			for _, f := range a.Map.Fields {
				visitRef(f.Type)
			}
			visitRef(a.Map.ElementType)
		}
	}
	for _, r := range roots {
		visitRef(smdschema.TypeRef{NamedType: &r})
	}
	return seen
}
