package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// fuzzServer is one server for all of a fuzz target's inputs (a server per
// input would cost a second each), with an administrator's client over the
// in-process transport, which runs the whole handler chain, and a
// namespace holding a few ConfigMaps that every input must leave as they
// are.
type fuzzServer struct {
	s      *Server
	client *http.Client
	cs     kubernetes.Interface
	ns     string
	stored []byte // the namespace's ConfigMaps before the inputs, as listed
}

var (
	fuzzOnce sync.Once
	fuzzSrv  *fuzzServer
	fuzzErr  error
)

func newFuzzServer(t testing.TB) *fuzzServer {
	fuzzOnce.Do(func() {
		var s *Server
		if s, fuzzErr = New(Config{AnyPort: true}); fuzzErr != nil {
			return
		}
		go s.Start(context.Background()) // for the life of the test binary
		<-s.Ready()
		var cfg *rest.Config
		if cfg, fuzzErr = s.InProcessRESTConfig("fuzzer", user.SystemPrivilegedGroup); fuzzErr != nil {
			return
		}
		f := &fuzzServer{s: s, ns: "fuzz", cs: kubernetes.NewForConfigOrDie(cfg)}
		if f.client, fuzzErr = rest.HTTPClientFor(cfg); fuzzErr != nil {
			return
		}
		ctx := context.Background()
		if _, fuzzErr = f.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}, metav1.CreateOptions{}); fuzzErr != nil {
			return
		}
		for i := range 5 {
			if _, fuzzErr = f.cs.CoreV1().ConfigMaps(f.ns).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Labels: map[string]string{"app": "a", "i": fmt.Sprint(i)}},
				Data:       map[string]string{"k": "v"},
			}, metav1.CreateOptions{}); fuzzErr != nil {
				return
			}
		}
		f.stored, fuzzErr = f.listNames()
		fuzzSrv = f
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzSrv
}

// listNames lists the fuzz namespace's ConfigMaps: names, labels, data.
func (f *fuzzServer) listNames() ([]byte, error) {
	list, err := f.cs.CoreV1().ConfigMaps(f.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	type item struct {
		Name   string
		Labels map[string]string
		Data   map[string]string
	}
	var items []item
	for _, cm := range list.Items {
		items = append(items, item{cm.Name, cm.Labels, cm.Data})
	}
	return json.Marshal(items)
}

// do sends a request and checks what every answer must be: no 5xx (kube-
// apiserver answers none of these inputs so, and a panic in a handler is
// answered 500), and a Status with the answer's code for an error.
func (f *fuzzServer) do(t *testing.T, method, path string, body []byte, contentType string) int {
	t.Helper()
	req, err := http.NewRequest(method, f.s.URL()+path, bytes.NewReader(body))
	if err != nil {
		return 0 // not a request a client could send
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 && !referenceAnswers5xx(b) {
		t.Fatalf("%s %s (body %q): %d %s", method, path, body, resp.StatusCode, b)
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") == "application/json" {
		var st metav1.Status
		if err := json.Unmarshal(b, &st); err != nil || st.Kind != "Status" || int(st.Code) != resp.StatusCode {
			t.Fatalf("%s %s: %d with a body that is not its Status: %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

// referenceAnswers5xx reports whether a 5xx answer is one kube-apiserver
// gives the same input, checked against the reference peer:
//   - an apply whose document does not fit the type's schema (a key that
//     is not a string, such as `0:`) is answered 500 "failed to create
//     typed patch object (...): .0: field not declared in schema" by both;
//   - a strategic merge patch with a "$patch" directive it does not know in
//     a map the object has (`{"metadata":{"labels":{"$patch":""}}}` on a
//     ConfigMap with labels; found by FuzzWriteBodies) is answered 500
//     "unknown patch type:  in map: map[$patch:]" by both.
func referenceAnswers5xx(body []byte) bool {
	var st metav1.Status
	if json.Unmarshal(body, &st) != nil || st.Code != http.StatusInternalServerError {
		return false
	}
	return strings.HasPrefix(st.Message, "failed to create typed patch object (") ||
		strings.HasPrefix(st.Message, "unknown patch type: ") && strings.Contains(st.Message, " in map: ")
}

// referenceAnswersWatch5xx reports whether a watch's 5xx answer is one
// kube-apiserver gives the same parameters, checked against the reference
// peer: a watch from a resourceVersion that is not a number is answered
// 500 `resourceVersion: Invalid value: "A": strconv.ParseUint: parsing
// "A": invalid syntax` by both (a list, 400 "invalid resource version").
func referenceAnswersWatch5xx(body []byte) bool {
	var st metav1.Status
	return json.Unmarshal(body, &st) == nil && st.Code == http.StatusInternalServerError && st.Reason == "" &&
		strings.HasPrefix(st.Message, "resourceVersion: Invalid value: ") && strings.Contains(st.Message, ": strconv.ParseUint: parsing ")
}

// intact fails if the inputs changed the stored ConfigMaps.
func (f *fuzzServer) intact(t *testing.T) {
	t.Helper()
	now, err := f.listNames()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, f.stored) {
		t.Fatalf("stored ConfigMaps changed: %s, were %s", now, f.stored)
	}
}

// FuzzListParameters: any label selector, field selector,
// resourceVersion, resourceVersionMatch, limit and continue token on a list
// is answered without a 5xx, with a Status for an error.
func FuzzListParameters(f *testing.F) {
	for _, seed := range []struct{ label, field, rv, match, limit, cont string }{
		{"app=a", "", "", "", "", ""},
		{"app in (a,b),i!=3", "metadata.name=cm-1", "0", "NotOlderThan", "2", ""},
		{"!app", "metadata.namespace!=x", "1", "Exact", "1", "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJjbS0xXHUwMDAwIn0"},
		{"app=", "spec.x=y", "abc", "Latest", "-1", "garbage"},
		{"a=b=c", "metadata.name", "99999999999999999999", "", "x", "e30"},
	} {
		f.Add(seed.label, seed.field, seed.rv, seed.match, seed.limit, seed.cont)
	}
	f.Fuzz(func(t *testing.T, label, field, rv, match, limit, cont string) {
		s := newFuzzServer(t)
		q := url.Values{}
		for k, v := range map[string]string{"labelSelector": label, "fieldSelector": field, "resourceVersion": rv, "resourceVersionMatch": match, "limit": limit, "continue": cont} {
			if v != "" {
				q.Set(k, v)
			}
		}
		s.do(t, http.MethodGet, "/api/v1/namespaces/"+s.ns+"/configmaps?"+q.Encode(), nil, "")
		s.do(t, http.MethodGet, "/api/v1/configmaps?"+q.Encode(), nil, "")
	})
}

// FuzzWriteBodies: any body on a create, an update and each patch type of
// a ConfigMap is answered without a 5xx, with a Status for an error, and
// leaves the stored ConfigMaps as they were (the writes are dry runs; a
// create under a new name is deleted).
func FuzzWriteBodies(f *testing.F) {
	for _, seed := range []string{
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-0","labels":{"app":"b"}},"data":{"k":"w"}}`,
		`{"metadata":{"name":"cm-1","resourceVersion":"1"},"data":{"k":1}}`,
		`[{"op":"replace","path":"/data/k","value":"x"}]`,
		`{"data":{"k":null},"metadata":{"labels":{"$patch":"delete"}}}`,
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-2\n",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-3","managedFields":[{"manager":"x","operation":"Apply","fieldsV1":{"f:data":{}}}]}}`,
		"\x00\x01k8s\x00",
		`{`,
	} {
		f.Add([]byte(seed))
	}
	types := []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := newFuzzServer(t)
		base := "/api/v1/namespaces/" + s.ns + "/configmaps"
		for _, ct := range types[:3] {
			s.do(t, http.MethodPost, base+"?dryRun=All", body, ct)
			s.do(t, http.MethodPut, base+"/cm-0?dryRun=All", body, ct)
		}
		for _, ct := range types[3:] {
			if ct == "application/json-patch+json" && replacesRootWithNoValue(body) {
				continue
			}
			s.do(t, http.MethodPatch, base+"/cm-1?dryRun=All&fieldManager=fuzz", body, ct)
		}
		s.intact(t)
	})
}

// replacesRootWithNoValue reports whether a JSON patch has a replace of the
// whole document ("path": "") without a value, on which the JSON patch
// library of the pin (gopkg.in/evanphx/json-patch.v4) dereferences nil:
// kube-apiserver aborts such a request as kubesim does (checked against the
// reference peer: the stream is reset with INTERNAL_ERROR on both).
func replacesRootWithNoValue(body []byte) bool {
	var ops []map[string]json.RawMessage
	if json.Unmarshal(body, &ops) != nil {
		return false
	}
	for _, op := range ops {
		var kind, path string
		if json.Unmarshal(op["op"], &kind) != nil || json.Unmarshal(op["path"], &path) != nil {
			continue
		}
		if _, ok := op["value"]; kind == "replace" && path == "" && !ok {
			return true
		}
	}
	return false
}

// FuzzWatchParameters: any resourceVersion, resourceVersionMatch,
// sendInitialEvents, allowWatchBookmarks, timeoutSeconds and selectors on a
// watch are answered without a 5xx (but those kube-apiserver gives the
// same parameters), with a Status for an error; a watch that starts streams
// watch events, none of them an error of the server's.
func FuzzWatchParameters(f *testing.F) {
	for _, seed := range []struct{ rv, match, initial, bookmarks, timeout, label, field string }{
		{"", "", "", "", "1", "app=a", ""},
		{"0", "", "", "true", "", "", "metadata.name=cm-1"},
		{"", "NotOlderThan", "true", "true", "", "", ""},
		{"1", "Exact", "false", "false", "-1", "!app", "metadata.namespace!=x"},
		{"99999999", "", "", "", "x", "a in (", "spec.x=y"},
	} {
		f.Add(seed.rv, seed.match, seed.initial, seed.bookmarks, seed.timeout, seed.label, seed.field)
	}
	f.Fuzz(func(t *testing.T, rv, match, initial, bookmarks, timeout, label, field string) {
		s := newFuzzServer(t)
		q := url.Values{"watch": {"true"}}
		for k, v := range map[string]string{"resourceVersion": rv, "resourceVersionMatch": match, "sendInitialEvents": initial, "allowWatchBookmarks": bookmarks, "timeoutSeconds": timeout, "labelSelector": label, "fieldSelector": field} {
			if v != "" {
				q.Set(k, v)
			}
		}
		s.watch(t, "/api/v1/namespaces/"+s.ns+"/configmaps?"+q.Encode())
		s.watch(t, "/api/v1/configmaps?"+q.Encode())
	})
}

// watch opens a watch, checks its answer as do does, and for one that
// starts, reads its events for a moment: each must be a watch event of a
// known type, and an ERROR event's Status no 5xx.
func (f *fuzzServer) watch(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.s.URL()+path, nil)
	if err != nil {
		return
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 && !referenceAnswersWatch5xx(b) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		var st metav1.Status
		if err := json.Unmarshal(b, &st); err != nil || st.Kind != "Status" || int(st.Code) != resp.StatusCode {
			t.Fatalf("GET %s: %d with a body that is not its Status: %s", path, resp.StatusCode, b)
		}
		return
	}
	// Read what the watch sends for 50 ms (the initial events, if any),
	// then end it.
	timer := time.AfterFunc(50*time.Millisecond, cancel)
	defer timer.Stop()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev struct {
			Type   string
			Object json.RawMessage
		}
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() == nil && err != io.EOF {
				t.Fatalf("GET %s: a watch event that does not decode: %v", path, err)
			}
			return
		}
		switch ev.Type {
		case "ADDED", "MODIFIED", "DELETED", "BOOKMARK":
		case "ERROR":
			var st metav1.Status
			if err := json.Unmarshal(ev.Object, &st); err != nil || st.Kind != "Status" || st.Code >= 500 {
				t.Fatalf("GET %s: ERROR event %s", path, ev.Object)
			}
		default:
			t.Fatalf("GET %s: watch event of type %q", path, ev.Type)
		}
	}
}
