package apiserver

import (
	"io"
	"net/http"
	"sync"

	"github.com/klauspost/compress/gzip"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/features"
)

// k8s.io/apiserver's SerializeObject compresses a response when the client
// accepts gzip (and APIResponseCompression is on) and the response's first
// write, or what it buffers of small first writes, is over 128 KiB: a list
// of thousands of objects. It compresses with compress/gzip at level 1,
// which was half of a 10,000-ConfigMap list's time in the server.
// compressLists serves lists the same way with
// github.com/klauspost/compress's gzip at the same level: twice as fast,
// within 2% of the same size, the same format (clients decompress it as
// they do kube-apiserver's; the bytes differ, as those of another
// compressor's would). The list handler writes uncompressed (the request
// it gets accepts no encoding), and gzipDeferredWriter makes
// SerializeObject's decision on what it writes.

// gzipThreshold and firstWriteStreamingThreshold are SerializeObject's
// (responsewriters' defaultGzipThresholdBytes and
// firstWriteStreamingThresholdBytes).
const (
	gzipThreshold                = 128 * 1024
	firstWriteStreamingThreshold = 4
)

// gzipLevel is SerializeObject's (responsewriters' gzipContentEncodingLevel).
const gzipLevel = 1

var gzipWriters = sync.Pool{New: func() any {
	w, err := gzip.NewWriterLevel(nil, gzipLevel)
	if err != nil {
		panic(err)
	}
	return w
}}

// compressLists serves a list request with next, compressing the response
// as SerializeObject would (see gzipDeferredWriter). The list handler also
// serves ?watch=true: a watch is left to it (its watch server flushes each
// event, and compresses a watch-list stream itself).
func compressLists(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		info, ok := request.RequestInfoFrom(req.Context())
		if !ok || info.Verb != "list" || responsewriters.ContentEncodingSupported(req, features.APIResponseCompression) != "gzip" {
			next(w, req)
			return
		}
		uncompressed := req.Clone(req.Context())
		uncompressed.Header.Del("Accept-Encoding")
		gw := &gzipDeferredWriter{hw: w}
		defer gw.Close()
		next(gw, uncompressed)
	}
}

// gzipDeferredWriter compresses what a handler writes as responsewriters'
// deferredResponseWriter does for a client that accepts gzip, given what
// the deferred writer writes for a client that does not (each write as it
// comes, after the header): a first write over firstWriteStreamingThreshold
// decides at once, compressed if it is over gzipThreshold; smaller first
// writes are buffered until they are over gzipThreshold (compressed) or
// the response ends (not).
type gzipDeferredWriter struct {
	hw     http.ResponseWriter
	status int // the handler's WriteHeader, held until the decision

	buffered bool
	buffer   []byte
	w        io.Writer // once decided: hw, or gz over it
	gz       *gzip.Writer
}

func (g *gzipDeferredWriter) Header() http.Header { return g.hw.Header() }

func (g *gzipDeferredWriter) WriteHeader(code int) {
	switch {
	case g.w != nil:
		g.hw.WriteHeader(code) // superfluous: net/http says so
	case g.status == 0:
		g.status = code
	}
}

func (g *gzipDeferredWriter) Write(p []byte) (int, error) {
	switch {
	case g.w != nil:
		return g.w.Write(p)
	case !g.buffered && len(p) > firstWriteStreamingThreshold:
		return g.decide(p)
	default:
		g.buffered = true
		g.buffer = append(g.buffer, p...)
		if len(g.buffer) > gzipThreshold {
			_, err := g.decide(g.buffer)
			g.buffer = nil
			return len(p), err
		}
		return len(p), nil
	}
}

// decide starts the response with its first bytes p: compressed if they
// are over gzipThreshold.
func (g *gzipDeferredWriter) decide(p []byte) (int, error) {
	g.w = g.hw
	if len(p) > gzipThreshold {
		h := g.hw.Header()
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		g.gz = gzipWriters.Get().(*gzip.Writer)
		g.gz.Reset(g.hw)
		g.w = g.gz
	}
	if g.status != 0 {
		g.hw.WriteHeader(g.status)
	}
	return g.w.Write(p)
}

// Close writes what is buffered, or the status of a response without a
// body, and ends the compressed stream.
func (g *gzipDeferredWriter) Close() error {
	if g.w == nil {
		if g.buffered {
			_, err := g.decide(g.buffer)
			g.buffer = nil
			if err != nil {
				return err
			}
		} else if g.status != 0 {
			g.hw.WriteHeader(g.status)
		}
	}
	if g.gz == nil {
		return nil
	}
	err := g.gz.Close()
	g.gz.Reset(nil)
	gzipWriters.Put(g.gz)
	g.gz = nil
	return err
}
