package kubeletsim

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/internal/pki"
)

// newKubeletServer builds the kubelet endpoint of every simulated node:
// container logs from the profile, a clear refusal of exec, attach and
// port-forward, and health.
func (s *Simulator) newKubeletServer(ctx context.Context) (*http.Server, error) {
	ca := s.cfg.ServingCA
	if ca == nil {
		var err error
		if ca, err = pki.NewCA("kubeletsim-ca"); err != nil {
			return nil, err
		}
	}
	serving, err := ca.Issue(pki.CertOptions{CommonName: "kubeletsim", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP(s.cfg.NodeIP)}, Server: true})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		return nil, err
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if s.cfg.ClientCA != nil {
		tlsConfig.ClientCAs, tlsConfig.ClientAuth = s.cfg.ClientCA, tls.RequireAndVerifyClientCert
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.serveLogs)
	for _, op := range []string{"exec", "attach", "portForward", "run"} {
		mux.HandleFunc("/"+op+"/", s.refuseStreaming(op))
	}
	s.handleMetrics(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          nil,
	}
	// Every simulated node is at this one address: metrics-server's
	// scrapes of all of them at once are streams of one HTTP/2 connection.
	// Beyond a connection's stream limit (250 by default) its client opens
	// more connections, and closes them once idle: a TLS handshake per
	// extra connection and scrape, a fifth of the CPU of 5,000 idle nodes.
	if err := http2.ConfigureServer(srv, &http2.Server{MaxConcurrentStreams: maxKubeletStreams}); err != nil {
		return nil, err
	}
	return srv, nil
}

// handleMetrics adds the routes metrics scrapers read, which
// MetricsTransport also serves in-process.
func (s *Simulator) handleMetrics(mux *http.ServeMux) {
	mux.HandleFunc("GET /nodes/{node}/metrics/resource", s.serveResourceMetrics)
	mux.HandleFunc("GET /nodes/{node}/stats/summary", s.serveSummary)
}

// maxKubeletStreams bounds the requests in flight on one connection to the
// simulated kubelets' endpoint: more than the nodes one process runs.
const maxKubeletStreams = 1 << 16

// writeStatus answers with a Status, as kubelet's server answers errors.
func writeKubeletStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	})
}

// writeLogError answers a log request with a plain-text error, as kubelet
// does; the API server wraps it in a Status with the same code.
func writeLogError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(msg))
}

// refuseStreaming answers exec, attach and port-forward: a simulated node
// runs no containers to stream from.
func (s *Simulator) refuseStreaming(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		node := "unknown"
		if pod := s.podFromPath(req); pod != nil {
			node = pod.Spec.NodeName
		}
		writeKubeletStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest,
			fmt.Sprintf("%s is not supported on simulated node %q: kubesim's simulated kubelets run no containers (use a real node for %s)", op, node, op))
	}
}

// podFromPath finds the pod a kubelet streaming path (/exec/NS/POD/...)
// names, if this process simulates its node.
func (s *Simulator) podFromPath(req *http.Request) *corev1.Pod {
	// /exec/NAMESPACE/POD/CONTAINER (or /exec/NAMESPACE/POD/UID/CONTAINER)
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if len(parts) < 3 {
		return nil
	}
	ns, name := parts[1], parts[2]
	obj, ok, _ := s.podInformer.GetIndexer().GetByKey(ns + "/" + name)
	if !ok {
		return nil
	}
	pod := obj.(*corev1.Pod)
	if s.node(pod.Spec.NodeName) == nil {
		return nil
	}
	return pod
}

// serveLogs serves a container's log: the profile's lines, printed when
// the container (or its previous run) started.
func (s *Simulator) serveLogs(w http.ResponseWriter, req *http.Request) {
	ns, name, container := req.PathValue("namespace"), req.PathValue("pod"), req.PathValue("container")
	obj, ok, _ := s.podInformer.GetIndexer().GetByKey(ns + "/" + name)
	var pod *corev1.Pod
	if ok {
		pod = obj.(*corev1.Pod)
	}
	var n *node
	if pod != nil {
		n = s.node(pod.Spec.NodeName)
	}
	if n == nil {
		writeLogError(w, http.StatusNotFound, fmt.Sprintf("pod %q in namespace %q is not on a simulated node of this kubelet", name, ns))
		return
	}
	var cs *corev1.ContainerStatus
	for _, list := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == container {
				cs = &list[i]
			}
		}
	}
	q := req.URL.Query()
	previous, _ := strconv.ParseBool(q.Get("previous"))
	var started time.Time
	running := false
	switch {
	case cs == nil:
		writeLogError(w, http.StatusBadRequest, fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, name))
		return
	case previous:
		if cs.LastTerminationState.Terminated == nil {
			writeLogError(w, http.StatusBadRequest, fmt.Sprintf("previous terminated container %q in pod %q not found", container, name))
			return
		}
		started = cs.LastTerminationState.Terminated.StartedAt.Time
	case cs.State.Running != nil:
		started, running = cs.State.Running.StartedAt.Time, true
	case cs.State.Terminated != nil:
		started = cs.State.Terminated.StartedAt.Time
	default:
		reason := "ContainerCreating"
		if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
			reason = cs.State.Waiting.Reason
		}
		writeLogError(w, http.StatusBadRequest, fmt.Sprintf("container %q in pod %q is waiting to start: %s", container, name, reason))
		return
	}
	lc := s.lifecycleOf(req.Context(), pod, n.profile)
	lines := make([]string, 0, len(lc.logs))
	for _, l := range lc.logs {
		lines = append(lines, expand(l, pod, container))
	}
	if v := q.Get("sinceSeconds"); v != "" {
		if sec, err := strconv.ParseInt(v, 10, 64); err == nil && started.Before(s.clock.Now().Add(-time.Duration(sec)*time.Second)) {
			lines = nil
		}
	}
	if v := q.Get("sinceTime"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil && started.Before(t) {
			lines = nil
		}
	}
	if v := q.Get("tailLines"); v != "" {
		if tail, err := strconv.Atoi(v); err == nil && tail >= 0 && tail < len(lines) {
			lines = lines[len(lines)-tail:]
		}
	}
	limit := int64(-1)
	if v := q.Get("limitBytes"); v != "" {
		limit, _ = strconv.ParseInt(v, 10, 64)
	}
	timestamps, _ := strconv.ParseBool(q.Get("timestamps"))
	w.Header().Set("Content-Type", "text/plain")
	bw := bufio.NewWriter(w)
	var written int64
	for _, l := range lines {
		if timestamps {
			l = started.UTC().Format(time.RFC3339Nano) + " " + l
		}
		l += "\n"
		if limit >= 0 && written+int64(len(l)) > limit {
			bw.WriteString(l[:limit-written])
			break
		}
		bw.WriteString(l)
		written += int64(len(l))
	}
	bw.Flush()
	follow, _ := strconv.ParseBool(q.Get("follow"))
	if !follow || !running || previous {
		return
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	// Following: the stream ends when the container stops or the client
	// goes away.
	ticker := s.clock.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-req.Context().Done():
			return
		case <-ticker.C():
		}
		obj, ok, _ := s.podInformer.GetIndexer().GetByKey(ns + "/" + name)
		if !ok {
			return
		}
		if !containerRunsSince(obj.(*corev1.Pod), container, started) {
			klog.FromContext(req.Context()).V(4).Info("Log stream ended", "pod", klog.KRef(ns, name), "container", container)
			return
		}
	}
}

// containerRunsSince says whether the container's run that started at
// started is still running.
func containerRunsSince(pod *corev1.Pod, container string, started time.Time) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == container {
			return cs.State.Running != nil && cs.State.Running.StartedAt.Time.Equal(started)
		}
	}
	for _, cs := range pod.Status.InitContainerStatuses {
		if cs.Name == container {
			return cs.State.Running != nil && cs.State.Running.StartedAt.Time.Equal(started)
		}
	}
	return false
}

// expand replaces $(POD), $(NAMESPACE), $(CONTAINER) and $(NODE).
func expand(line string, pod *corev1.Pod, container string) string {
	r := []string{"$(POD)", pod.Name, "$(NAMESPACE)", pod.Namespace, "$(CONTAINER)", container, "$(NODE)", pod.Spec.NodeName}
	for i := 0; i < len(r); i += 2 {
		line = strings.ReplaceAll(line, r[i], r[i+1])
	}
	return line
}
