package kubeletsim

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// MetricsTransport returns a RoundTripper for a metrics scraper in the
// simulator's process (metrics-server's kubelet client). Its GET requests
// for the resource metrics and the stats summary of the simulator's nodes,
// at the kubelet endpoint's address, are answered by the endpoint's own
// handlers in-process, as the endpoint would answer them over its TLS
// connection; every other request (another process's nodes, real nodes'
// kubelets, logs) goes through next.
//
// At 5,000 nodes metrics-server scrapes 333 nodes a second. Over the
// endpoint's HTTP/2 connection each scrape cost TLS records, HTTP/2
// framing and write system calls on both ends: about 6% of the CPU of an
// idle cluster, more than making the answers.
func (s *Simulator) MetricsTransport(next http.RoundTripper) http.RoundTripper {
	mux := http.NewServeMux()
	s.handleMetrics(mux)
	return &metricsTransport{
		host: net.JoinHostPort(s.cfg.NodeIP, strconv.Itoa(int(s.kubeletPort))),
		mux:  mux,
		next: next,
	}
}

type metricsTransport struct {
	host string // the endpoint's address, as nodes report it
	mux  *http.ServeMux
	next http.RoundTripper
}

func (t *metricsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" || req.URL.Host != t.host || req.URL.RawQuery != "" {
		return t.next.RoundTrip(req)
	}
	if _, pattern := t.mux.Handler(req); pattern == "" {
		return t.next.RoundTrip(req)
	}
	if req.Body != nil {
		req.Body.Close() // as a transport must, even on errors
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	// The request as a server would see it (the mux sets its path
	// values: a copy, since a RoundTripper must not change its request).
	in := req.WithContext(req.Context())
	in.Body, in.RequestURI, in.Host = http.NoBody, req.URL.RequestURI(), t.host
	in.Proto, in.ProtoMajor, in.ProtoMinor = "HTTP/2.0", 2, 0
	w := &bufferedResponse{header: http.Header{}, body: responseBodies.Get().(*responseBody)}
	t.mux.ServeHTTP(w, in)
	code := w.code
	if code == 0 {
		code = http.StatusOK
	}
	if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	return &http.Response{
		Status:        strconv.Itoa(code) + " " + http.StatusText(code),
		StatusCode:    code,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        w.header,
		Body:          w.body,
		ContentLength: int64(w.body.Len()),
		Request:       req,
	}, nil
}

// bufferedResponse is the ResponseWriter of an in-process answer.
type bufferedResponse struct {
	header http.Header
	code   int
	body   *responseBody
}

func (w *bufferedResponse) Header() http.Header { return w.header }

func (w *bufferedResponse) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *bufferedResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.buf.Write(p)
}

// responseBody is an answer's body; Close returns its buffer for reuse.
type responseBody struct {
	buf bytes.Buffer
	mu  sync.Mutex
	off int
}

var responseBodies = sync.Pool{New: func() any { return new(responseBody) }}

// maxPooledBody bounds the buffers kept for reuse, as the answers' own.
const maxPooledBody = maxPooledMetricsBuffer

func (b *responseBody) Len() int      { return b.buf.Len() }
func (b *responseBody) Bytes() []byte { return b.buf.Bytes() }

func (b *responseBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.off < 0 {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.off >= b.buf.Len() {
		return 0, io.EOF
	}
	n := copy(p, b.buf.Bytes()[b.off:])
	b.off += n
	return n, nil
}

func (b *responseBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.off < 0 {
		return nil
	}
	b.off = -1
	if b.buf.Cap() <= maxPooledBody {
		// A new body for the pool: this one may still be read after
		// Close (and must then fail), so it is not reused itself.
		nb := &responseBody{}
		nb.buf = b.buf // ownership of the storage moves
		b.buf = bytes.Buffer{}
		nb.buf.Reset()
		responseBodies.Put(nb)
	}
	return nil
}
