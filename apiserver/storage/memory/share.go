package memory

import (
	"reflect"
	"runtime"
	"sort"
	"strings"
	"weak"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/kubesim/kubesim/internal/share"
)

// template is the first stored object of a set of replicas, whose parts
// the others share. The versions of the set's objects hold it: once none
// does, it goes, and the next object of the set is the template.
type template struct{ obj apiruntime.Object }

// shareWithReplicas makes a new object share the parts it has alike with
// the first stored object of its set of replicas: same type, namespace,
// controller (or none) and labels. A ReplicaSet's pods differ in their
// names, their service account token volume, their node and status; a
// client's ConfigMaps of one label set in their names and data. 150,000
// pods then cost the store the memory, and the collector the work, of what
// is each one's own. It returns the set's template, for obj's version to
// hold.
func (s *Store) shareWithReplicas(obj apiruntime.Object) *template {
	key, ok := templateKey(obj)
	if !ok {
		return nil
	}
	s.templatesMu.Lock()
	defer s.templatesMu.Unlock()
	if t := s.templates[key].Value(); t != nil {
		share.Values(obj, t.obj)
		return t
	}
	t := &template{obj: obj}
	wp := weak.Make(t)
	s.templates[key] = wp
	runtime.AddCleanup(t, func(key string) {
		s.templatesMu.Lock()
		defer s.templatesMu.Unlock()
		if s.templates[key] == wp {
			delete(s.templates, key)
		}
	}, key)
	return t
}

// heldTemplate is the template the version after cur holds: cur's, unless
// cur is the template itself. The template's own object holds it only
// until its first update: an object alone in its set (a Node, whose labels
// name it) would otherwise keep its first version alive as long as it
// lives. While other objects of the set hold the template it stays; once
// none does, the next object of the set is the template.
func heldTemplate(cur *version) *template {
	if cur.tmpl != nil && cur.tmpl.obj == cur.obj {
		return nil
	}
	return cur.tmpl
}

// shareWith makes obj share the parts it has alike with prev, another
// version of the same object. Unstructured objects share nothing: their
// metadata is a map, which setRevision writes into.
func shareWith(obj, prev apiruntime.Object) {
	if _, ok := obj.(apiruntime.Unstructured); ok {
		return
	}
	share.Values(obj, prev)
}

// templateKey identifies obj's set of replicas; ok is false for an
// unstructured object (see shareWith) or one without metadata.
func templateKey(obj apiruntime.Object) (string, bool) {
	if _, ok := obj.(apiruntime.Unstructured); ok {
		return "", false
	}
	a, err := meta.Accessor(obj)
	if err != nil {
		return "", false
	}
	// An object no controller owns is alike the others of its type,
	// namespace and labels (a client's ConfigMaps, a component's Events):
	// they share its set's template as well.
	var ownerUID string
	if owner := metav1.GetControllerOfNoCopy(a); owner != nil {
		ownerUID = string(owner.UID)
	}
	labels := a.GetLabels()
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(reflect.TypeOf(obj).String())
	b.WriteByte(0)
	b.WriteString(a.GetNamespace())
	b.WriteByte(0)
	b.WriteString(ownerUID)
	for _, k := range keys {
		// Label keys and values cannot hold a NUL.
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(labels[k])
	}
	return b.String(), true
}

// templateCount is the number of sets of replicas with a template.
func (s *Store) templateCount() int {
	s.templatesMu.Lock()
	defer s.templatesMu.Unlock()
	return len(s.templates)
}
