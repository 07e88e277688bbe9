package kubeletsim_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubesim/kubesim/kubeletsim"
)

// recordingTransport is a MetricsTransport's next: it records what it is
// handed and answers 418.
type recordingTransport struct{ got []string }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = append(r.got, req.Method+" "+req.URL.String())
	return &http.Response{StatusCode: http.StatusTeapot, Body: http.NoBody, Request: req}, nil
}

// TestMetricsTransport: metrics-server's scrapes of this simulator's nodes
// get, in-process, what the kubelet endpoint answers over TLS (status,
// content type, body, byte for byte); every other request goes through
// the next transport.
func TestMetricsTransport(t *testing.T) {
	c := startCluster(t, kubeletsim.NodePool{Count: 1, Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}})
	ctx := context.Background()
	if _, err := c.client.CoreV1().Pods("default").Create(ctx, newPod("web", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitPod(t, "web", "Running", func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == corev1.PodRunning })
	node, err := c.client.CoreV1().Nodes().Get(ctx, "node-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ip string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
		}
	}
	endpoint := "https://" + net.JoinHostPort(ip, strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)))
	metricsPath := node.Annotations[kubeletsim.AnnotationResourceMetricsPath]
	if ip == "" || metricsPath == "" {
		t.Fatalf("node-0 has no InternalIP or metrics path: %v, %v", node.Status.Addresses, node.Annotations)
	}

	// The endpoint over its TLS connection (its CA is the simulator's own).
	overTLS := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	next := &recordingTransport{}
	inProcess := &http.Client{Transport: c.sim.MetricsTransport(next)}
	get := func(t *testing.T, client *http.Client, url string) (int, string, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}

	for _, tc := range []struct {
		name, path string
		code       int
		contains   string
	}{
		{"resource metrics", metricsPath, http.StatusOK, `container_cpu_usage_seconds_total{container="c",namespace="default",pod="web"}`},
		{"stats summary", "/nodes/node-0/stats/summary", http.StatusOK, `"nodeName":"node-0"`},
		{"a node of no simulator", "/nodes/node-9/metrics/resource", http.StatusNotFound, `node \"node-9\" is not a node of this simulator`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode, wantType, want := get(t, overTLS, endpoint+tc.path)
			code, typ, got := get(t, inProcess, endpoint+tc.path)
			if code != wantCode || typ != wantType || got != want {
				t.Fatalf("in-process: %d %q\n%s\nover TLS: %d %q\n%s", code, typ, got, wantCode, wantType, want)
			}
			if code != tc.code || !strings.Contains(got, tc.contains) {
				t.Fatalf("answer %d, want %d with %s:\n%s", code, tc.code, tc.contains, got)
			}
			if len(next.got) != 0 {
				t.Fatalf("the next transport was used: %v", next.got)
			}
		})
	}

	t.Run("other requests go through the next transport", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(endpoint, "https://"))
		other, _ := strconv.Atoi(port)
		urls := []string{
			"https://" + net.JoinHostPort(ip, strconv.Itoa(other+1)) + metricsPath, // another process's endpoint
			"https://192.0.2.1:10250/metrics/resource",                             // a real node's kubelet
			endpoint + "/containerLogs/default/web/c",                              // logs may stream
			endpoint + metricsPath + "?x=1",
			"http://" + strings.TrimPrefix(endpoint, "https://") + metricsPath,
		}
		next.got = nil
		for _, u := range urls {
			if code, _, _ := get(t, inProcess, u); code != http.StatusTeapot {
				t.Errorf("%s: %d, want the next transport's 418", u, code)
			}
		}
		if len(next.got) != len(urls) {
			t.Fatalf("the next transport got %v, want %d requests", next.got, len(urls))
		}
	})

	t.Run("a body read after Close fails", func(t *testing.T) {
		resp, err := inProcess.Get(endpoint + metricsPath)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ContentLength <= 0 {
			t.Fatalf("ContentLength %d", resp.ContentLength)
		}
		resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 10)); !errors.Is(err, http.ErrBodyReadAfterClose) {
			t.Fatalf("read after Close: %v", err)
		}
	})
}
