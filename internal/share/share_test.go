package share

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

type item struct {
	Name  string
	Value *int
}

type object struct {
	Name     string
	Labels   map[string]string
	Items    []item
	Ref      *item
	Tags     []string
	Fixed    [2]string
	private  []string
	Count    int
	Children []*item
}

func newObject(name string, value int, labels map[string]string, tags ...string) *object {
	v, w := value, 7
	own := map[string]string{}
	for k, v := range labels {
		own[strings.Clone(k)] = strings.Clone(v)
	}
	return &object{
		Name:     strings.Clone(name),
		Labels:   own,
		Items:    []item{{Name: strings.Clone("a"), Value: &v}, {Name: strings.Clone("b"), Value: &w}},
		Ref:      &item{Name: strings.Clone("ref-" + name), Value: &w},
		Tags:     tags,
		Fixed:    [2]string{strings.Clone("x"), strings.Clone(name)},
		private:  []string{"p"},
		Count:    value,
		Children: []*item{{Name: strings.Clone("c"), Value: &w}},
	}
}

func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
func sameSlice[T any](a, b []T) bool {
	return unsafe.SliceData(a) == unsafe.SliceData(b)
}
func sameMap(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func TestEqual(t *testing.T) {
	tests := []struct {
		name  string
		dst   func() *object
		check func(t *testing.T, dst, tmpl *object)
	}{
		{
			name: "an equal object shares every exported part",
			dst:  func() *object { return newObject("x", 1, map[string]string{"app": "web"}, "t") },
			check: func(t *testing.T, dst, tmpl *object) {
				if !sameString(dst.Name, tmpl.Name) || !sameMap(dst.Labels, tmpl.Labels) || !sameSlice(dst.Items, tmpl.Items) ||
					dst.Ref != tmpl.Ref || !sameSlice(dst.Children, tmpl.Children) || !sameString(dst.Fixed[1], tmpl.Fixed[1]) {
					t.Errorf("not all shared: %+v", dst)
				}
				if sameSlice(dst.private, tmpl.private) {
					t.Errorf("an unexported field was shared")
				}
			},
		},
		{
			name: "a slice that differs in one element shares the others, and the equal parts of that one",
			dst:  func() *object { return newObject("y", 2, map[string]string{"app": "web"}, "t") },
			check: func(t *testing.T, dst, tmpl *object) {
				if sameSlice(dst.Items, tmpl.Items) {
					t.Fatalf("unequal slices shared")
				}
				if !sameString(dst.Items[0].Name, tmpl.Items[0].Name) || dst.Items[0].Value == tmpl.Items[0].Value {
					t.Errorf("first element: name shared %v, value shared %v; want true, false",
						sameString(dst.Items[0].Name, tmpl.Items[0].Name), dst.Items[0].Value == tmpl.Items[0].Value)
				}
				if dst.Items[1].Value != tmpl.Items[1].Value {
					t.Errorf("the equal element's pointer is not shared")
				}
				if sameString(dst.Name, tmpl.Name) || sameString(dst.Fixed[1], tmpl.Fixed[1]) || !sameString(dst.Fixed[0], tmpl.Fixed[0]) {
					t.Errorf("strings: shared where they differ, or not where they are equal")
				}
				if dst.Ref == tmpl.Ref || dst.Ref.Value != tmpl.Ref.Value {
					t.Errorf("a pointer to a differing struct: the struct shared, or its equal parts not")
				}
			},
		},
		{
			name: "maps are shared whole or not at all",
			dst:  func() *object { return newObject("x", 1, map[string]string{"app": "db"}, "t") },
			check: func(t *testing.T, dst, tmpl *object) {
				if sameMap(dst.Labels, tmpl.Labels) {
					t.Errorf("unequal maps shared")
				}
			},
		},
		{
			name: "slices of another length are left",
			dst:  func() *object { return newObject("x", 1, map[string]string{"app": "web"}, "t", "u") },
			check: func(t *testing.T, dst, tmpl *object) {
				if sameSlice(dst.Tags, tmpl.Tags) {
					t.Errorf("unequal slices shared")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := newObject("x", 1, map[string]string{"app": "web"}, "t")
			dst, want := tc.dst(), tc.dst()
			Equal(dst, tmpl)
			if !reflect.DeepEqual(dst, want) {
				t.Fatalf("the object reads differently:\n got %+v\nwant %+v", dst, want)
			}
			tc.check(t, dst, tmpl)
		})
	}
}

func TestEqualLeavesNil(t *testing.T) {
	var a *object
	Equal(a, newObject("x", 1, nil))
	b := &object{}
	Equal(b, newObject("x", 1, nil))
	if !reflect.DeepEqual(b, &object{}) {
		t.Errorf("empty values were filled: %+v", b)
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		name      string
		dst, tmpl any
		share     bool
	}{
		{name: "pointers to one type", dst: newObject("x", 1, nil), tmpl: newObject("x", 1, nil), share: true},
		{name: "pointers to different types", dst: newObject("x", 1, nil), tmpl: &item{Name: "x"}},
		{name: "not pointers", dst: *newObject("x", 1, nil), tmpl: *newObject("x", 1, nil)},
		{name: "a nil template", dst: newObject("x", 1, nil), tmpl: (*object)(nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Values(tc.dst, tc.tmpl)
			d, ok := tc.dst.(*object)
			if !ok {
				return // nothing it could have changed
			}
			tmpl, _ := tc.tmpl.(*object)
			if shared := tmpl != nil && sameString(d.Name, tmpl.Name); shared != tc.share {
				t.Errorf("shared: %v, want %v", shared, tc.share)
			}
		})
	}
}
