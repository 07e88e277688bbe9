package share

import "reflect"

// Equal makes the parts of *dst that are deeply equal to the same parts of
// *tmpl point at tmpl's copies: its non-empty strings, pointers, slices and
// maps. Where a pointer's or a slice's contents differ, their parts are
// shared in turn (a slice's element by element where the lengths agree);
// maps are shared whole or not at all. Unexported fields are left as they
// are. *dst reads as it did before: only where its values are stored
// changes.
//
// Both must be read-only from then on: a write through one would show in
// the other. That is the rule for objects in storage and in informers'
// caches, which is where this is used.
func Equal[T any](dst, tmpl *T) {
	if dst == nil || tmpl == nil || dst == tmpl {
		return
	}
	walk(reflect.ValueOf(dst).Elem(), reflect.ValueOf(tmpl).Elem())
}

// Values is Equal for two values known as interfaces (runtime.Object):
// pointers to values of one type; anything else is left.
func Values(dst, tmpl any) {
	d, t := reflect.ValueOf(dst), reflect.ValueOf(tmpl)
	if d.Kind() != reflect.Pointer || d.Type() != t.Type() || d.IsNil() || t.IsNil() || d.Pointer() == t.Pointer() {
		return
	}
	walk(d.Elem(), t.Elem())
}

func walk(d, t reflect.Value) {
	switch d.Kind() {
	case reflect.String:
		if d.Len() > 0 && d.String() == t.String() {
			d.Set(t)
		}
	case reflect.Pointer:
		if d.IsNil() || t.IsNil() || d.Pointer() == t.Pointer() {
			return
		}
		if reflect.DeepEqual(d.Interface(), t.Interface()) {
			d.Set(t)
			return
		}
		walk(d.Elem(), t.Elem())
	case reflect.Slice:
		if d.IsNil() || t.IsNil() || d.Len() != t.Len() || d.Pointer() == t.Pointer() {
			return
		}
		if reflect.DeepEqual(d.Interface(), t.Interface()) {
			d.Set(t)
			return
		}
		for i := range d.Len() {
			walk(d.Index(i), t.Index(i))
		}
	case reflect.Map:
		if d.IsNil() || t.IsNil() || d.Len() != t.Len() || d.Pointer() == t.Pointer() {
			return
		}
		if reflect.DeepEqual(d.Interface(), t.Interface()) {
			d.Set(t)
		}
	case reflect.Struct:
		for i := range d.NumField() {
			if f := d.Field(i); f.CanSet() {
				walk(f, t.Field(i))
			}
		}
	case reflect.Array:
		for i := range d.Len() {
			walk(d.Index(i), t.Index(i))
		}
	}
}
