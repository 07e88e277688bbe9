package apiserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	restful "github.com/emicklei/go-restful/v3"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	tokencache "k8s.io/apiserver/pkg/authentication/token/cache"
	tokenunion "k8s.io/apiserver/pkg/authentication/token/union"
	typedv1core "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/kubernetes/pkg/routes"
	"k8s.io/kubernetes/pkg/serviceaccount"

	"github.com/kubesim/kubesim/apiserver/registry"
)

// serviceAccounts holds what kube-apiserver's --service-account-* flags
// configure: the issuer, the signing key and its public half, which
// TokenRequest signs with and the authenticators verify.
type serviceAccounts struct {
	issuer    string
	key       crypto.Signer
	keyPEM    []byte
	generator serviceaccount.TokenGenerator
	publicKey serviceaccount.PublicKeysGetter
}

// newServiceAccounts uses key, or generates an ECDSA P-256 key (RSA 2048
// takes tens of milliseconds to generate; kube-apiserver accepts both).
func newServiceAccounts(issuer string, key crypto.Signer) (*serviceAccounts, error) {
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("unable to generate the service-account signing key: %w", err)
		}
		key = k
	}
	switch key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey:
	default:
		return nil, fmt.Errorf("the service-account signing key must be RSA or ECDSA, got %T", key)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	generator, err := serviceaccount.JWTTokenGenerator(issuer, key)
	if err != nil {
		return nil, err
	}
	publicKey, err := serviceaccount.StaticPublicKeysGetter([]interface{}{key.Public()})
	if err != nil {
		return nil, err
	}
	return &serviceAccounts{
		issuer:    issuer,
		key:       key,
		keyPEM:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		generator: generator,
		publicKey: publicKey,
	}, nil
}

// audiences are the API server's: its issuer, as kube-apiserver defaults
// --api-audiences to --service-account-issuer.
func (sa *serviceAccounts) audiences() authenticator.Audiences {
	return authenticator.Audiences{sa.issuer}
}

// tokens is what TokenRequest is served with: kube-apiserver's defaults,
// no cap on the expiration and pod-bound tokens extended to a year.
func (sa *serviceAccounts) tokens() *registry.ServiceAccountTokens {
	return &registry.ServiceAccountTokens{
		Generator:             sa.generator,
		Audiences:             sa.audiences(),
		ExtendExpiration:      true,
		MaxExtendedExpiration: serviceaccount.ExpirationExtensionSeconds * time.Second,
	}
}

// authenticators are kube-apiserver's two service-account token
// authenticators: legacy Secret-based tokens (looked up, so a deleted
// Secret or account revokes them) and bound tokens from TokenRequest.
func (sa *serviceAccounts) authenticators(getter serviceaccount.ServiceAccountTokenGetter, secrets typedv1core.SecretsGetter) ([]authenticator.Token, error) {
	legacy, err := serviceaccount.NewLegacyValidator(true, getter, secrets)
	if err != nil {
		return nil, err
	}
	return []authenticator.Token{
		serviceaccount.JWTTokenAuthenticator([]string{serviceaccount.LegacyIssuer}, sa.publicKey, sa.audiences(), legacy),
		serviceaccount.JWTTokenAuthenticator([]string{sa.issuer}, sa.publicKey, sa.audiences(), serviceaccount.NewValidator(getter)),
	}, nil
}

// tokenAuthenticator chains the admin token and the service-account
// tokens and caches successes for 10 s, as kube-apiserver's
// --token-auth-file and service-account authenticators are chained and
// cached (a revoked token works until its cached success expires).
func tokenAuthenticator(audiences authenticator.Audiences, admin authenticator.Token, rest ...authenticator.Token) authenticator.Token {
	all := append([]authenticator.Token{authenticator.WrapAudienceAgnosticToken(audiences, admin)}, rest...)
	return tokencache.New(tokenunion.New(all...), true, 10*time.Second, 0)
}

// installOpenIDMetadata serves service account issuer discovery
// (/.well-known/openid-configuration and /openid/v1/jwks) with upstream's
// handlers, on container.
func (sa *serviceAccounts) installOpenIDMetadata(container *restful.Container, externalAddress string) error {
	md, err := serviceaccount.NewOpenIDMetadataProvider(sa.issuer, "", externalAddress, sa.publicKey)
	if err != nil {
		return fmt.Errorf("unable to serve service account issuer discovery: %w", err)
	}
	routes.NewOpenIDMetadataServer(md).Install(container)
	return nil
}
