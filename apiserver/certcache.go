package apiserver

import (
	"crypto/sha256"
	"net/http"
	"sync"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
)

// certCacheTTL bounds how long a verified client certificate chain is
// trusted without verifying it again.
const certCacheTTL = 5 * time.Minute

// certCacheSize bounds the cache; it is emptied when full.
const certCacheSize = 8192

// cachedCertAuthenticator remembers whom a client certificate chain
// authenticated, so that the requests of a connection, which all present
// the chain its handshake verified, verify its signatures once rather than
// on every request. kube-apiserver's x509 authenticator verifies on every
// request: with thousands of simulated kubelets over a handful of
// connections that was a twentieth of the CPU of registering them. Only
// successes are kept, until the earliest NotAfter of the chain or the TTL,
// so a request answers exactly as the delegate would; the CA is fixed for
// the server's life.
type cachedCertAuthenticator struct {
	delegate authenticator.Request
	now      func() time.Time

	mu      sync.Mutex
	entries map[[sha256.Size]byte]certCacheEntry
}

type certCacheEntry struct {
	resp    *authenticator.Response
	expires time.Time
}

func newCachedCertAuthenticator(delegate authenticator.Request) *cachedCertAuthenticator {
	return &cachedCertAuthenticator{delegate: delegate, now: time.Now, entries: map[[sha256.Size]byte]certCacheEntry{}}
}

// AuthenticateRequest implements authenticator.Request.
func (a *cachedCertAuthenticator) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 {
		return a.delegate.AuthenticateRequest(req)
	}
	h := sha256.New()
	expires := a.now().Add(certCacheTTL)
	for _, c := range req.TLS.PeerCertificates {
		h.Write(c.Raw)
		if c.NotAfter.Before(expires) {
			expires = c.NotAfter
		}
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])

	a.mu.Lock()
	e, ok := a.entries[key]
	a.mu.Unlock()
	if ok && a.now().Before(e.expires) {
		resp := *e.resp
		return &resp, true, nil
	}
	resp, ok, err := a.delegate.AuthenticateRequest(req)
	if err != nil || !ok {
		return resp, ok, err
	}
	a.mu.Lock()
	if len(a.entries) >= certCacheSize {
		clear(a.entries)
	}
	kept := *resp
	a.entries[key] = certCacheEntry{resp: &kept, expires: expires}
	a.mu.Unlock()
	return resp, ok, err
}
