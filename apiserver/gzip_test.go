package apiserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/kubernetes"
)

// writesEncoder writes its chunks, one Write each, for any object but a
// Status (the error SerializeObject writes when it fails: its message).
type writesEncoder struct {
	chunks [][]byte
	err    error
}

func (e writesEncoder) Encode(obj runtime.Object, w io.Writer) error {
	if s, ok := obj.(*metav1.Status); ok {
		_, err := w.Write([]byte(s.Message))
		return err
	}
	for _, c := range e.chunks {
		if _, err := w.Write(c); err != nil {
			return err
		}
	}
	return e.err
}

func (writesEncoder) Identifier() runtime.Identifier { return "writes" }

// TestCompressListsAsSerializeObject: a response that compressLists
// compresses (SerializeObject writing uncompressed under it) has the status,
// headers and, decompressed, the body of the one SerializeObject writes
// compressed itself, for each way its writes can come: one small or large
// write, protobuf's 4-byte prefix then the items, smaller first writes,
// nothing, an error, a client that does not accept gzip.
func TestCompressListsAsSerializeObject(t *testing.T) {
	chunk := func(n int) []byte { return bytes.Repeat([]byte("k8s-list "), n/9+1)[:n] }
	many := func(first []byte, size, total int) [][]byte {
		out := [][]byte{first}
		for n := len(first); n < total; n += size {
			out = append(out, chunk(size))
		}
		return out
	}
	for _, tc := range []struct {
		name           string
		enc            writesEncoder
		status         int
		acceptEncoding string
		wantGzip       bool
	}{
		{name: "one small write", enc: writesEncoder{chunks: [][]byte{chunk(1000)}}, status: 200, acceptEncoding: "gzip"},
		{name: "one write at the threshold", enc: writesEncoder{chunks: [][]byte{chunk(gzipThreshold)}}, status: 200, acceptEncoding: "gzip"},
		{name: "one large write", enc: writesEncoder{chunks: [][]byte{chunk(200 << 10)}}, status: 200, acceptEncoding: "gzip", wantGzip: true},
		{name: "protobuf's prefix, then large", enc: writesEncoder{chunks: many([]byte{0x6b, 0x38, 0x73, 0x00}, 1000, 300<<10)}, status: 200, acceptEncoding: "gzip", wantGzip: true},
		{name: "protobuf's prefix, then small", enc: writesEncoder{chunks: many([]byte{0x6b, 0x38, 0x73, 0x00}, 1000, 50<<10)}, status: 200, acceptEncoding: "gzip"},
		{name: "small first writes, then large", enc: writesEncoder{chunks: append([][]byte{chunk(2), chunk(2), chunk(1)}, many(chunk(3), 5000, 140<<10)...)}, status: 200, acceptEncoding: "gzip", wantGzip: true},
		{name: "a first write over 4 bytes, then large", enc: writesEncoder{chunks: many(chunk(5), 1000, 300<<10)}, status: 200, acceptEncoding: "gzip"},
		{name: "nothing", enc: writesEncoder{}, status: 204, acceptEncoding: "gzip"},
		{name: "created", enc: writesEncoder{chunks: [][]byte{chunk(200 << 10)}}, status: 201, acceptEncoding: "deflate, gzip", wantGzip: true},
		{name: "an error before a write", enc: writesEncoder{err: errors.New("unable to encode")}, status: 200, acceptEncoding: "gzip"},
		{name: "not accepted", enc: writesEncoder{chunks: [][]byte{chunk(200 << 10)}}, status: 200, acceptEncoding: "deflate"},
		{name: "no Accept-Encoding", enc: writesEncoder{chunks: [][]byte{chunk(200 << 10)}}, status: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var acceptEncoding []string
			serve := func(w http.ResponseWriter, req *http.Request) {
				acceptEncoding = append(acceptEncoding, req.Header.Get("Accept-Encoding"))
				responsewriters.SerializeObject("application/test", tc.enc, w, req, tc.status, &metav1.List{})
			}
			request := func() *http.Request {
				req := httptest.NewRequest(http.MethodGet, "/api/v1/configmaps", nil)
				if tc.acceptEncoding != "" {
					req.Header.Set("Accept-Encoding", tc.acceptEncoding)
				}
				return req.WithContext(request.WithRequestInfo(req.Context(), &request.RequestInfo{IsResourceRequest: true, Verb: "list", APIVersion: "v1", Resource: "configmaps"}))
			}
			want, got := httptest.NewRecorder(), httptest.NewRecorder()
			serve(want, request())
			compressLists(serve)(got, request())
			// The list handler writes uncompressed under compressLists
			// for a client that accepts gzip.
			if strings.Contains(tc.acceptEncoding, "gzip") && acceptEncoding[1] != "" {
				t.Errorf("the list handler got Accept-Encoding %q", acceptEncoding[1])
			}
			if got.Code != want.Code {
				t.Errorf("status %d, SerializeObject's %d", got.Code, want.Code)
			}
			for _, h := range []string{"Content-Type", "Content-Encoding", "Vary"} {
				if got.Header().Values(h) == nil && want.Header().Values(h) == nil {
					continue
				}
				if g, w := got.Header().Values(h), want.Header().Values(h); !slices.Equal(g, w) {
					t.Errorf("%s %q, SerializeObject's %q", h, g, w)
				}
			}
			if gz := got.Header().Get("Content-Encoding") == "gzip"; gz != tc.wantGzip {
				t.Errorf("compressed = %v, want %v", gz, tc.wantGzip)
			}
			if g, w := body(t, got), body(t, want); !bytes.Equal(g, w) {
				t.Errorf("body of %d bytes, SerializeObject's %d", len(g), len(w))
			}
		})
	}
}

// body is a recorded response's body, decompressed.
func body(t *testing.T, r *httptest.ResponseRecorder) []byte {
	t.Helper()
	if r.Header().Get("Content-Encoding") != "gzip" {
		return r.Body.Bytes()
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCompressedListsAndWatches: over the network, with a client that
// accepts gzip (client-go's default), a large list comes compressed and a
// watch of the collection (?watch=true, served by the list handler)
// streams its events.
func TestCompressedListsAndWatches(t *testing.T) {
	s, _ := startServer(t)
	ctx := context.Background()
	cfg := s.RESTConfig()
	cfg.DisableCompression = false
	cs := kubernetes.NewForConfigOrDie(cfg)
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	const n = 200 // 1 KiB each: a list over the 128 KiB threshold
	for i := 0; i < n; i++ {
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%03d", i)},
			Data:       map[string]string{"key": strings.Repeat("v", 1024)},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for seen := 0; seen < n; seen++ {
		ev, ok := <-w.ResultChan()
		if !ok {
			t.Fatalf("the watch ended after %d events", seen)
		}
		if ev.Type != watch.Added {
			t.Fatalf("event %d: %s %v", seen, ev.Type, ev.Object)
		}
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/default/configmaps").SetHeader("Accept-Encoding", "gzip").Do(ctx).Raw()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the list is not compressed: %v", err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var list corev1.ConfigMapList
	if err := json.Unmarshal(plain, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != n {
		t.Errorf("%d ConfigMaps listed, want %d", len(list.Items), n)
	}
}
