package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// clientCeiling measures the benchmark's own client: the same 16 client-go
// workers creating and getting ConfigMaps, against a server that does no
// work (TLS and HTTP/2 as the API servers serve them; a create's answer is
// its request, a get's a ConfigMap encoded once). What this machine's
// client can do at most, beside the API servers' rows: the floor a
// server's speed cannot lower.
func clientCeiling(ctx context.Context, o options, set func(name, unit string, higher bool, m *measurement)) error {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "bench-000001", Namespace: "bench", ResourceVersion: "1", Labels: map[string]string{"app": "bench"}},
		Data:       map[string]string{"key": strings.Repeat("v", 100)},
	}
	const jsonType, protoType = "application/json", "application/vnd.kubernetes.protobuf"
	canned := map[string][]byte{}
	for _, ct := range []string{jsonType, protoType} {
		info, _ := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), ct)
		b, err := runtime.Encode(scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion), cm)
		if err != nil {
			return err
		}
		canned[ct] = b
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ct := protoType
		if !strings.Contains(req.Header.Get("Accept"), "protobuf") {
			ct = jsonType
		}
		w.Header().Set("Content-Type", ct)
		if req.Method == http.MethodPost {
			body, _ := io.ReadAll(req.Body)
			w.WriteHeader(http.StatusCreated)
			w.Write(body)
			return
		}
		w.Write(canned[ct])
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	for _, enc := range []struct{ name, contentType string }{{"JSON", jsonType}, {"protobuf", protoType}} {
		cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: -1, Burst: -1,
			ContentConfig: rest.ContentConfig{ContentType: enc.contentType, AcceptContentTypes: enc.contentType}}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		lat, wall, err := parallel(o.objects, o.concurrency, func(i int) error {
			_, err := cs.CoreV1().ConfigMaps("bench").Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%06d", i), Labels: map[string]string{"app": "bench"}},
				Data:       map[string]string{"key": strings.Repeat("v", 100)},
			}, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			return err
		}
		set(fmt.Sprintf("the client alone: create ConfigMap (%s)", enc.name), "/s", true, rateM(o.objects, wall, lat, o.concurrency))
		lat, wall, err = parallel(o.objects, o.concurrency, func(i int) error {
			_, err := cs.CoreV1().ConfigMaps("bench").Get(ctx, fmt.Sprintf("bench-%06d", i), metav1.GetOptions{})
			return err
		})
		if err != nil {
			return err
		}
		set(fmt.Sprintf("the client alone: get ConfigMap (%s)", enc.name), "/s", true, rateM(o.objects, wall, lat, o.concurrency))
	}
	return nil
}
