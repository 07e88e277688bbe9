package realnode

import (
	"context"
	"io"
	"net"
	"sync"

	"k8s.io/klog/v2"
)

// forwarder relays TCP connections from a listener on the nodes' link to
// the API server wherever it listens (loopback, usually): the nodes reach
// the API server at the link's host address.
type forwarder struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
}

func newForwarder(listen, target string) (*forwarder, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	return &forwarder{ln: ln, target: target}, nil
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) serve(ctx context.Context) {
	logger := klog.FromContext(ctx)
	var conns sync.Map
	go func() {
		<-ctx.Done()
		f.ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	}()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				logger.Error(err, "API forwarder stopped accepting")
			}
			f.wg.Wait()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			var d net.Dialer
			up, err := d.DialContext(ctx, "tcp", f.target)
			if err != nil {
				logger.V(2).Info("API forwarder cannot reach the API server", "err", err)
				return
			}
			defer up.Close()
			conns.Store(c, nil)
			conns.Store(up, nil)
			defer conns.Delete(c)
			defer conns.Delete(up)
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); closeWrite(up); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

func closeWrite(c net.Conn) {
	if t, ok := c.(*net.TCPConn); ok {
		_ = t.CloseWrite()
	}
}
