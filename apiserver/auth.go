package apiserver

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/anonymous"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/authentication/request/union"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// newAuthenticator accepts client certificates signed by the cluster CA,
// the admin bearer token, and otherwise the anonymous user, as
// kube-apiserver does with anonymous auth enabled.
func newAuthenticator(ca *x509.Certificate, adminToken string) authenticator.Request {
	return union.NewFailOnError(newCredentialAuthenticator(ca, adminToken), anonymous.NewAuthenticator([]apiserver.AnonymousAuthCondition{}))
}

// newTokenAuthenticator authenticates bearer tokens: what TokenReviews ask.
func newTokenAuthenticator(adminToken string) authenticator.Request {
	return group.NewAuthenticatedGroupAdder(bearertoken.New(adminTokenAuthenticator(adminToken)))
}

func adminTokenAuthenticator(adminToken string) authenticator.Token {
	return authenticator.TokenFunc(func(ctx context.Context, t string) (*authenticator.Response, bool, error) {
		if subtle.ConstantTimeCompare([]byte(t), []byte(adminToken)) != 1 {
			return nil, false, nil
		}
		return &authenticator.Response{User: &user.DefaultInfo{Name: "kubesim-admin", UID: "kubesim-admin", Groups: []string{user.SystemPrivilegedGroup}}}, true, nil
	})
}

// newCredentialAuthenticator authenticates client certificates and bearer
// tokens, adding system:authenticated.
func newCredentialAuthenticator(ca *x509.Certificate, adminToken string) authenticator.Request {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	// As kube-apiserver builds its chain: authenticated users join
	// system:authenticated, and a bad credential is a 401, not anonymous.
	return group.NewAuthenticatedGroupAdder(union.New(
		x509request.New(opts, x509request.CommonNameUserConversion),
		bearertoken.New(adminTokenAuthenticator(adminToken)),
	))
}

// publicPaths are what kube-apiserver's bootstrap RBAC lets everyone read
// (system:public-info-viewer); discoveryPaths what every authenticated user
// may read (system:discovery).
var (
	publicPaths    = []string{"/healthz", "/livez", "/readyz", "/version"}
	discoveryPaths = []string{"/api", "/apis", "/openapi"}
)

func pathAllowed(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || path == p+"/" || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// selfReviews are the resources system:basic-user lets every authenticated
// user create.
var selfReviews = map[schema.GroupResource]bool{
	{Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}: true,
	{Group: "authorization.k8s.io", Resource: "selfsubjectrulesreviews"}:  true,
	{Group: "authentication.k8s.io", Resource: "selfsubjectreviews"}:      true,
}

// clusterAuthorizer is kubesim's authorizer until RBAC lands: members of
// system:masters may do anything, other users only read public and
// discovery paths.
type clusterAuthorizer struct{}

var _ authorizer.UnconditionalAuthorizer = clusterAuthorizer{}

func (clusterAuthorizer) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	u := a.GetUser()
	if u == nil {
		return authorizer.DecisionNoOpinion, "no user", nil
	}
	authenticated := false
	for _, g := range u.GetGroups() {
		if g == user.SystemPrivilegedGroup {
			return authorizer.DecisionAllow, "", nil
		}
		if g == user.AllAuthenticated {
			authenticated = true
		}
	}
	// system:basic-user: everyone authenticated may review themselves.
	if authenticated && a.IsResourceRequest() && a.GetVerb() == "create" && selfReviews[schema.GroupResource{Group: a.GetAPIGroup(), Resource: a.GetResource()}] {
		return authorizer.DecisionAllow, "", nil
	}
	if !a.IsResourceRequest() && a.GetVerb() == "get" {
		if pathAllowed(a.GetPath(), publicPaths) || (authenticated && pathAllowed(a.GetPath(), discoveryPaths)) {
			return authorizer.DecisionAllow, "", nil
		}
	}
	return authorizer.DecisionNoOpinion, "", nil
}

var _ authorizer.RuleResolver = clusterAuthorizer{}

// RulesFor implements authorizer.RuleResolver, for SelfSubjectRulesReviews.
func (clusterAuthorizer) RulesFor(ctx context.Context, u user.Info, namespace string) ([]authorizer.ResourceRuleInfo, []authorizer.NonResourceRuleInfo, bool, error) {
	authenticated := false
	for _, g := range u.GetGroups() {
		if g == user.SystemPrivilegedGroup {
			return []authorizer.ResourceRuleInfo{&authorizer.DefaultResourceRuleInfo{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
				[]authorizer.NonResourceRuleInfo{&authorizer.DefaultNonResourceRuleInfo{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}}, false, nil
		}
		if g == user.AllAuthenticated {
			authenticated = true
		}
	}
	var urls []string
	for _, p := range publicPaths {
		urls = append(urls, p, p+"/*")
	}
	if authenticated {
		for _, p := range discoveryPaths {
			urls = append(urls, p, p+"/*")
		}
	}
	return nil, []authorizer.NonResourceRuleInfo{&authorizer.DefaultNonResourceRuleInfo{Verbs: []string{"get"}, NonResourceURLs: urls}}, false, nil
}
