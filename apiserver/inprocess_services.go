package apiserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// inProcessServices are Services whose backend runs in this process (an
// aggregated API server such as metrics-server): a connection to the
// Service's ClusterIP and port is a pipe to it, as a connection to a pod
// behind the Service would be.
type inProcessServices struct {
	mu        sync.RWMutex // guards listeners
	listeners map[servicePort]*pipeListener
}

type servicePort struct {
	service types.NamespacedName
	port    int32
}

// ServeInProcess serves the Service namespace/name's port with h, over TLS
// with cert, in this process: the aggregator's proxy and availability
// checks, which dial the Service's ClusterIP, reach h without a network.
// It serves until ctx is done.
func (s *Server) ServeInProcess(ctx context.Context, namespace, name string, port int32, h http.Handler, cert tls.Certificate) {
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}},
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	key := servicePort{types.NamespacedName{Namespace: namespace, Name: name}, port}
	s.inProcessServices.mu.Lock()
	if s.inProcessServices.listeners == nil {
		s.inProcessServices.listeners = map[servicePort]*pipeListener{}
	}
	s.inProcessServices.listeners[key] = l
	s.inProcessServices.mu.Unlock()
	go srv.ServeTLS(l, "", "")
	go func() {
		<-ctx.Done()
		s.inProcessServices.mu.Lock()
		if s.inProcessServices.listeners[key] == l {
			delete(s.inProcessServices.listeners, key)
		}
		s.inProcessServices.mu.Unlock()
		srv.Close()
	}()
}

// dialService is how the aggregator dials an aggregated API server: a
// Service served in process is piped to; anything else is dialled only
// where the host routes it other than by its default route (into the
// real nodes' networks, or loopback), never off the machine.
func (s *Server) dialService(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(portStr)
	s.inProcessServices.mu.RLock()
	for key, l := range s.inProcessServices.listeners {
		if int(key.port) != port {
			continue
		}
		svc, err := s.informers.Core().V1().Services().Lister().Services(key.service.Namespace).Get(key.service.Name)
		if err == nil && svc.Spec.ClusterIP == host {
			s.inProcessServices.mu.RUnlock()
			return l.dial(ctx)
		}
	}
	s.inProcessServices.mu.RUnlock()
	ip := net.ParseIP(host)
	if ip == nil || (!ip.IsLoopback() && !routedLocally(ip)) {
		return nil, fmt.Errorf("not dialling %s: kubesim reaches only its own networks, and the host routes %s only by its default route", addr, host)
	}
	return (&net.Dialer{Timeout: 30 * time.Second}).DialContext(ctx, network, addr)
}

// routedLocally says whether the host's IPv4 routing table
// (/proc/net/route) has a route for ip other than the default one.
func routedLocally(ip net.IP) bool {
	ip4 := ip.To4()
	if ip4 == nil {
		return false
	}
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return false
	}
	defer f.Close()
	dst := binary.BigEndian.Uint32(ip4)
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		d, err1 := hex.DecodeString(fields[1])
		m, err2 := hex.DecodeString(fields[7])
		if err1 != nil || err2 != nil || len(d) != 4 || len(m) != 4 {
			continue
		}
		// The table holds addresses in host (little-endian) order.
		network, mask := binary.LittleEndian.Uint32(d), binary.LittleEndian.Uint32(m)
		if mask != 0 && dst&mask == network&mask {
			return true
		}
	}
	return false
}

// pipeListener is a net.Listener whose connections are made by dial.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "in-process" }
