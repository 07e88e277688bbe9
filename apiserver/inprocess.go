package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/kubesim/kubesim/internal/pki"
)

// The in-process transport: the simulator's own components (the scheduler,
// the controllers, kubeletsim) run in the server's process, and their
// requests need not be encrypted, framed into HTTP/2 and carried through
// a socket to reach a handler a function call away. On 5,000 idle nodes
// that path took an eighth of the process's CPU. The handler sees the
// request the network would have given it (HTTP/2.0, the client's
// certificate as the TLS peer's, so that authentication, authorization,
// admission, audit and metrics are unchanged), and the response streams
// back through a bounded buffer, as HTTP/2's flow-control window bounds it.

// inProcessWindow bounds what a response buffers ahead of its reader: the
// stream window of client-go's HTTP/2 transport (4 MiB).
const inProcessWindow = 4 << 20

// errInProcessAborted is what a reader sees when the handler aborted the
// response (http.ErrAbortHandler, or a panic), as a reset stream.
var errInProcessAborted = errors.New("stream error: the server aborted the response")

// InProcessRESTConfig returns a client configuration for a component in
// this process, authenticating as user in groups (the identity a client
// certificate from the cluster CA gives, as UserRESTConfig's), whose
// requests call the server's handler directly: no TLS, HTTP/2 or socket.
// Its requests are refused, as by a closed port, when the server does not
// serve.
func (s *Server) InProcessRESTConfig(user string, groups ...string) (*rest.Config, error) {
	kp, err := s.ca.Issue(pki.CertOptions{CommonName: user, Organization: groups})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	cfg := s.RESTConfig()
	cfg.TLSClientConfig = rest.TLSClientConfig{} // a custom transport takes no TLS options
	cfg.Transport = &inProcessTransport{
		s: s,
		state: &tls.ConnectionState{
			Version:            tls.VersionTLS13,
			HandshakeComplete:  true,
			NegotiatedProtocol: "h2",
			ServerName:         s.listener.Addr().(*net.TCPAddr).IP.String(),
			PeerCertificates:   []*x509.Certificate{leaf},
		},
	}
	return cfg, nil
}

// serveInProcess makes the in-process transport serve requests in ctx (the
// context net/http's server gives its requests), or refuse them (nil).
func (s *Server) serveInProcess(ctx context.Context) {
	s.inProcess.Lock()
	defer s.inProcess.Unlock()
	s.inProcess.ctx = ctx
	s.inProcess.workers = nil
	if ctx != nil {
		s.inProcess.workers = &handlerWorkers{work: make(chan func()), done: ctx.Done()}
	}
}

// inProcessContext is the context in-process requests are served in, and
// the goroutines that serve them; nil when the server does not serve.
func (s *Server) inProcessContext() (context.Context, *handlerWorkers) {
	s.inProcess.RLock()
	defer s.inProcess.RUnlock()
	return s.inProcess.ctx, s.inProcess.workers
}

// maxIdleWorkers bounds the goroutines kept waiting for in-process requests.
const maxIdleWorkers = 128

// handlerWorkers runs each in-process request in a goroutine of its own, as
// net/http's HTTP/2 server does, but keeps the goroutines that are done for
// the next requests instead of ending them. A handler's stack grows to
// tens of KiB (the handler chain, the field manager's recursive walks), and
// a new goroutine's grows by copying itself, doubling from a few KiB, once
// per request: on 5,000 idle nodes (500 lease renewals a second) that
// copying took 7% of the process's CPU.
type handlerWorkers struct {
	work chan func()     // unbuffered: taken only by an idle goroutine
	done <-chan struct{} // idle goroutines end when the server stops serving
	idle atomic.Int32
}

// run runs f in an idle goroutine, or in a new one if none is idle. It
// never waits.
func (h *handlerWorkers) run(f func()) {
	select {
	case h.work <- f:
	default:
		go h.loop(f)
	}
}

func (h *handlerWorkers) loop(f func()) {
	for {
		f()
		if h.idle.Add(1) > maxIdleWorkers {
			h.idle.Add(-1)
			return
		}
		select {
		case f = <-h.work:
			h.idle.Add(-1)
		case <-h.done:
			h.idle.Add(-1)
			return
		}
	}
}

// inProcessTransport is an http.RoundTripper serving each request with the
// server's handler in a goroutine of its own (see handlerWorkers), as
// net/http's HTTP/2 server does.
type inProcessTransport struct {
	s     *Server
	state *tls.ConnectionState
}

// RoundTrip implements http.RoundTripper.
func (t *inProcessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base, workers := t.s.inProcessContext()
	if base == nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: t.s.listener.Addr(), Err: syscall.ECONNREFUSED}
	}
	ctx, cancel := context.WithCancel(base)
	stopCancel := context.AfterFunc(req.Context(), cancel)
	sreq, err := t.serverRequest(ctx, req)
	if err != nil {
		stopCancel()
		cancel()
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	w := &inProcessResponseWriter{
		header: http.Header{},
		pipe:   newWindowPipe(inProcessWindow, cancel),
		ready:  make(chan struct{}),
		req:    req,
		ctx:    ctx,
	}
	// The handler's writes stop when its request ends (the client went
	// away, the server stops), as they fail on a reset stream.
	context.AfterFunc(ctx, w.pipe.stopWrites)
	workers.run(func() { t.serve(w, sreq, cancel, stopCancel) })
	select {
	case <-w.ready:
		if w.resp == nil {
			return nil, errInProcessAborted
		}
		return w.resp, nil
	case <-req.Context().Done():
		w.pipe.closeRead()
		return nil, req.Context().Err()
	}
}

// serverRequest is req as net/http's server would hand it to a handler.
func (t *inProcessTransport) serverRequest(ctx context.Context, req *http.Request) (*http.Request, error) {
	u, err := url.ParseRequestURI(req.URL.RequestURI())
	if err != nil {
		return nil, err
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	body := req.Body
	if body == nil {
		body = http.NoBody
	}
	sreq := (&http.Request{
		Method:        req.Method,
		URL:           u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        req.Header.Clone(),
		Body:          body,
		ContentLength: req.ContentLength,
		Host:          host,
		RemoteAddr:    "127.0.0.1:0", // a component of this process
		RequestURI:    u.RequestURI(),
		TLS:           t.state,
	}).WithContext(ctx)
	if sreq.Header == nil {
		sreq.Header = http.Header{}
	}
	if req.ContentLength > 0 {
		sreq.Header.Set("Content-Length", strconv.FormatInt(req.ContentLength, 10))
	}
	return sreq, nil
}

// serve runs the handler, then ends the response, as net/http's server:
// the request's context is cancelled once the handler returns.
func (t *inProcessTransport) serve(w *inProcessResponseWriter, req *http.Request, cancel context.CancelFunc, stopCancel func() bool) {
	// The goroutine is the server's, not the client's: it carries the
	// profiler labels of the server's context (none, or the ones Start was
	// given), as net/http's goroutines carry Start's.
	pprof.SetGoroutineLabels(req.Context())
	defer func() {
		stopCancel()
		cancel()
		req.Body.Close()
	}()
	defer func() {
		if r := recover(); r != nil {
			if r != http.ErrAbortHandler {
				klog.ErrorS(fmt.Errorf("%v", r), "Panic serving an in-process request", "method", req.Method, "uri", req.RequestURI)
			}
			w.once.Do(func() { close(w.ready) }) // not committed: the round trip fails
			w.pipe.closeWrite(errInProcessAborted)
		}
	}()
	t.s.handler.ServeHTTP(w, req)
	w.commit()
	w.pipe.closeWrite(nil)
}

// inProcessResponseWriter is the handler's http.ResponseWriter: the
// response is committed (its status and headers handed to the client) at
// the first write or flush, or when the handler returns.
type inProcessResponseWriter struct {
	header http.Header
	status int
	once   sync.Once
	ready  chan struct{}
	resp   *http.Response
	pipe   *windowPipe
	req    *http.Request
	ctx    context.Context // the server side's request context
}

func (w *inProcessResponseWriter) Header() http.Header { return w.header }

func (w *inProcessResponseWriter) WriteHeader(code int) {
	if code < 200 || w.status != 0 { // informational, or already written
		return
	}
	w.status = code
}

func (w *inProcessResponseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if len(b) > 0 && w.header.Get("Content-Type") == "" && w.resp == nil {
		w.header.Set("Content-Type", http.DetectContentType(b))
	}
	w.commit()
	if !bodyAllowed(w.status) || w.req.Method == http.MethodHead {
		return len(b), nil
	}
	return w.pipe.write(b)
}

// CloseNotify implements http.CloseNotifier, which the apiserver's
// response writer decorators look for (with http.Flusher) to keep
// flushing available through them, as on net/http's writers.
func (w *inProcessResponseWriter) CloseNotify() <-chan bool {
	ch := make(chan bool, 1)
	context.AfterFunc(w.ctx, func() { ch <- true })
	return ch
}

// Flush implements http.Flusher: the response is committed; what is
// written reaches the reader at once anyway.
func (w *inProcessResponseWriter) Flush() { w.commit() }

// commit hands the status and the headers to the client, once.
func (w *inProcessResponseWriter) commit() {
	w.once.Do(func() {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		contentLength := int64(-1)
		if v := w.header.Get("Content-Length"); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				contentLength = n
			}
		}
		var body io.ReadCloser = w.pipe
		if !bodyAllowed(w.status) || w.req.Method == http.MethodHead {
			body = http.NoBody
			contentLength = 0
		}
		w.resp = &http.Response{
			Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
			StatusCode:    w.status,
			Proto:         "HTTP/2.0",
			ProtoMajor:    2,
			Header:        w.header.Clone(),
			Body:          body,
			ContentLength: contentLength,
			Request:       w.req,
			TLS:           w.req.TLS,
		}
		close(w.ready)
	})
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}

// windowPipe carries a response body from the handler to the client:
// writes block while window bytes wait unread; closing the read side
// fails the writes and cancels the request, as a client resetting its
// stream does.
type windowPipe struct {
	mu   sync.Mutex
	cond *sync.Cond
	// buf[off:] waits for the reader. buf is kept for the next writes once
	// read (a watch writes an event at a time: a buffer each was a sixth
	// of what a pod's writes allocated in the API server), unless large.
	buf      []byte
	off      int
	window   int
	readErr  error // the reader sees it once buf is drained (io.EOF when the handler is done)
	readDone bool  // the reader closed the body
	stopped  bool  // the request ended: writes fail
	cancel   context.CancelFunc
}

// maxKeptBuffer is the largest buffer a pipe keeps once read.
const maxKeptBuffer = 64 << 10

func newWindowPipe(window int, cancel context.CancelFunc) *windowPipe {
	p := &windowPipe{window: window, cancel: cancel}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *windowPipe) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for len(b) > 0 {
		for len(p.buf)-p.off >= p.window && !p.readDone && !p.stopped && p.readErr == nil {
			p.cond.Wait()
		}
		if p.readDone || p.stopped {
			return n, io.ErrClosedPipe
		}
		if p.readErr != nil {
			return n, errors.New("http: response written after the handler returned")
		}
		if p.off > 0 && p.off >= len(p.buf)/2 {
			// What was read makes room: the unread part moves down.
			p.buf = p.buf[:copy(p.buf, p.buf[p.off:])]
			p.off = 0
		}
		m := min(len(b), p.window-(len(p.buf)-p.off))
		p.buf = append(p.buf, b[:m]...)
		b = b[m:]
		n += m
		p.cond.Broadcast()
	}
	return n, nil
}

// Read implements io.Reader for the client.
func (p *windowPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.buf) == p.off && p.readErr == nil && !p.readDone {
		p.cond.Wait()
	}
	if p.readDone {
		return 0, errors.New("http: read on closed response body")
	}
	if len(p.buf) == p.off {
		return 0, p.readErr
	}
	n := copy(b, p.buf[p.off:])
	p.off += n
	if p.off == len(p.buf) {
		p.off = 0
		p.buf = p.buf[:0]
		if cap(p.buf) > maxKeptBuffer {
			p.buf = nil // let a large response's buffer go
		}
	}
	p.cond.Broadcast()
	return n, nil
}

// Close implements io.Closer for the client: the handler's writes fail and
// its request is cancelled.
func (p *windowPipe) Close() error {
	p.closeRead()
	return nil
}

func (p *windowPipe) closeRead() {
	p.mu.Lock()
	p.readDone = true
	p.buf, p.off = nil, 0
	p.cond.Broadcast()
	p.mu.Unlock()
	p.cancel()
}

// stopWrites fails the handler's writes from now on; what is buffered
// stays for the reader.
func (p *windowPipe) stopWrites() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// closeWrite ends the body: the reader gets err (io.EOF when nil) once it
// has read what is buffered.
func (p *windowPipe) closeWrite(err error) {
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.readErr == nil {
		p.readErr = err
	}
	p.cond.Broadcast()
}

// onWorkers serves each request h is given on one of workers' goroutines
// (see handlerWorkers). kube-apiserver's timeout filter runs the rest of
// the chain in a new goroutine for each request, whose stack then grows by
// copying itself several times (authentication, flow control, the
// handler: 4% of the CPU of a create). That goroutine now waits for a
// worker instead; a panic in h (http.ErrAbortHandler, which aborts the
// response, among them) is raised again in it, where the timeout filter
// and net/http recover it as they would have.
func onWorkers(h http.Handler, workers *handlerWorkers) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		done := make(chan any, 1)
		workers.run(func() {
			defer func() { done <- recover() }()
			pprof.SetGoroutineLabels(req.Context())
			h.ServeHTTP(w, req)
		})
		if p := <-done; p != nil {
			panic(p)
		}
	})
}
