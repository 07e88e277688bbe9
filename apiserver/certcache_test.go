package apiserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"

	"github.com/kubesim/kubesim/internal/pki"
)

// countingAuthenticator counts the requests that reach the delegate.
type countingAuthenticator struct {
	authenticator.Request
	calls int
}

func (c *countingAuthenticator) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	c.calls++
	return c.Request.AuthenticateRequest(req)
}

// clientCert issues a client certificate for user from ca, valid until
// notAfter.
func clientCert(t *testing.T, ca *pki.CA, user string, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: user, Organization: []string{"group-a"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestCachedCertAuthenticator(t *testing.T) {
	ca, err := pki.NewCA("cluster-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	year := time.Now().Add(365 * 24 * time.Hour)

	tests := []struct {
		name string
		cert *x509.Certificate
		// advance is how far the cache's clock moves between the two
		// requests.
		advance time.Duration
		// wantUser is empty when the certificate must be refused.
		wantUser string
		// wantCalls is how many of the two requests reach the delegate.
		wantCalls int
	}{
		{name: "a verified chain is verified once", cert: clientCert(t, ca, "alice", year), wantUser: "alice", wantCalls: 1},
		{name: "verified again after the TTL", cert: clientCert(t, ca, "bob", year), advance: certCacheTTL + time.Second, wantUser: "bob", wantCalls: 2},
		{name: "verified again once the certificate expires", cert: clientCert(t, ca, "carol", time.Now().Add(time.Minute)), advance: 2 * time.Minute, wantUser: "carol", wantCalls: 2},
		{name: "a certificate of another CA is refused every time", cert: clientCert(t, other, "mallory", year), wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			delegate := &countingAuthenticator{Request: x509request.New(opts, x509request.CommonNameUserConversion)}
			a := newCachedCertAuthenticator(delegate)
			now := time.Now()
			a.now = func() time.Time { return now }
			req := &http.Request{TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tt.cert}}}
			for i := range 2 {
				if i == 1 {
					now = now.Add(tt.advance)
				}
				resp, ok, err := a.AuthenticateRequest(req)
				if tt.wantUser == "" {
					if ok || err == nil {
						t.Fatalf("request %d: got ok=%v err=%v, want the delegate's error", i, ok, err)
					}
					continue
				}
				if err != nil || !ok {
					t.Fatalf("request %d: got ok=%v err=%v", i, ok, err)
				}
				if got := resp.User.GetName(); got != tt.wantUser {
					t.Errorf("request %d: user %q, want %q", i, got, tt.wantUser)
				}
				if got := resp.User.GetGroups(); len(got) != 1 || got[0] != "group-a" {
					t.Errorf("request %d: groups %v, want [group-a]", i, got)
				}
			}
			if delegate.calls != tt.wantCalls {
				t.Errorf("the delegate verified %d times, want %d", delegate.calls, tt.wantCalls)
			}
		})
	}
}
