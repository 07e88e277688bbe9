package apiserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// Lists are encoded from their items' kept encodings (registry's
// encodedList): the bytes must be those the API's encoders write for the
// same list, in JSON and in protobuf, whatever the list holds, and follow
// every change.
func TestListsEncodedFromKeptItemEncodings(t *testing.T) {
	s, _ := startServer(t)
	cs := kubernetes.NewForConfigOrDie(s.RESTConfig())
	ctx := context.Background()
	const ns = "lists"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Labels: map[string]string{"app": "lists", "i": fmt.Sprint(i)},
				Annotations: map[string]string{"note": "<a & b> é \u2028"}},
			Data:       map[string]string{"key": fmt.Sprintf("value %d \"quoted\"", i)},
			BinaryData: map[string][]byte{"bin": {0, 1, 2, byte(i)}},
		}
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	replicas := int32(2)
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	const jsonType, protoType = "application/json", "application/vnd.kubernetes.protobuf"
	cases := []struct {
		name, path, param, value string
		items                    int
	}{
		{"namespaced", "/api/v1/namespaces/lists/configmaps", "", "", 5},
		{"by label", "/api/v1/namespaces/lists/configmaps", "labelSelector", "i=3", 1},
		{"a page", "/api/v1/namespaces/lists/configmaps", "limit", "2", 2},
		{"empty", "/api/v1/namespaces/lists/configmaps", "labelSelector", "app=none", 0},
		{"a named group", "/apis/apps/v1/namespaces/lists/deployments", "", "", 1},
		{"cluster-scoped", "/api/v1/namespaces", "", "", 5},
	}
	for _, tc := range cases {
		for _, accept := range []string{jsonType, protoType} {
			t.Run(tc.name+" "+accept, func(t *testing.T) {
				// Twice: encoded, then from the kept encodings.
				for range 2 {
					req := cs.CoreV1().RESTClient().Get().AbsPath(tc.path).SetHeader("Accept", accept)
					if tc.param != "" {
						req = req.Param(tc.param, tc.value)
					}
					body, err := req.DoRaw(ctx)
					if err != nil {
						t.Fatal(err)
					}
					items, again := reencode(t, body, accept == protoType)
					if !bytes.Equal(body, again) {
						t.Fatalf("the list's bytes differ from the encoder's:\n%q\n%q", body, again)
					}
					if items != tc.items {
						t.Fatalf("%d items, want %d", items, tc.items)
					}
				}
			})
		}
	}

	// A large list is compressed for a client that asks, as the API's
	// streaming encoders' lists are (the response writer decides by the
	// size of what is written, once it sees a streamed response start).
	const big = "biglists"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: big}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		if _, err := cs.CoreV1().ConfigMaps(big).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%03d", i)},
			Data: map[string]string{"payload": strings.Repeat("x", 1024)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	httpClient := cs.CoreV1().RESTClient().(*rest.RESTClient).Client
	for _, accept := range []string{jsonType, protoType} {
		for range 2 {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/api/v1/namespaces/"+big+"/configmaps", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", accept)
			req.Header.Set("Accept-Encoding", "gzip")
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("%s list of 150 KiB: %d, Content-Encoding %q, want 200 and gzip", accept, resp.StatusCode, resp.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if items, again := reencode(t, plain, accept == protoType); items != 150 || !bytes.Equal(plain, again) {
				t.Fatalf("%s list of 150 KiB: %d items, or bytes the encoder would not write", accept, items)
			}
		}
	}

	// A change is in the next list.
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "cm-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["key"] = "changed"
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := list.Items[0].Data["key"]; got != "changed" {
		t.Errorf("cm-0's data in the list after its update: %q, want \"changed\"", got)
	}
	// Tables are converted from the list, as before.
	table, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/lists/configmaps").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tbl metav1.Table
	if err := json.Unmarshal(table, &tbl); err != nil || tbl.Kind != "Table" || len(tbl.Rows) != 5 {
		t.Errorf("a Table of the ConfigMaps: %v, %s", err, table)
	}
}

// reencode decodes a list response and encodes it again with client-go's
// scheme and the API's serializers, returning its item count and the bytes.
func reencode(t *testing.T, body []byte, proto bool) (int, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if proto {
		s := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
		obj, gvk, err := s.Decode(body, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		if err := s.EncodeWithAllocator(obj, &buf, &runtime.Allocator{}); err != nil {
			t.Fatal(err)
		}
		items, err := metaLen(obj)
		if err != nil {
			t.Fatal(err)
		}
		return items, buf.Bytes()
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewEncoder(&buf).Encode(obj); err != nil {
		t.Fatal(err)
	}
	items, err := metaLen(obj)
	if err != nil {
		t.Fatal(err)
	}
	return items, buf.Bytes()
}

func metaLen(obj runtime.Object) (int, error) {
	items, err := meta.ExtractList(obj)
	return len(items), err
}
