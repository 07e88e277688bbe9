package apiserver

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"sync"

	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/anonymous"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/authentication/request/union"
	"k8s.io/apiserver/pkg/authentication/request/websocket"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	authzunion "k8s.io/apiserver/pkg/authorization/union"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/informers"
	certinformersv1 "k8s.io/client-go/informers/certificates/v1"
	resourceinformers "k8s.io/client-go/informers/resource/v1"
	"k8s.io/kubernetes/pkg/auth/nodeidentifier"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/node"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"
)

// newAuthenticator accepts client certificates signed by the cluster CA,
// bearer tokens (the admin token, service-account tokens), and otherwise
// the anonymous user, as kube-apiserver does with anonymous auth enabled.
func newAuthenticator(ca *x509.Certificate, tokens authenticator.Token) authenticator.Request {
	return union.NewFailOnError(newCredentialAuthenticator(ca, tokens), anonymous.NewAuthenticator([]apiserver.AnonymousAuthCondition{}))
}

// newTokenAuthenticator authenticates bearer tokens: what TokenReviews ask.
func newTokenAuthenticator(tokens authenticator.Token) authenticator.Request {
	return group.NewAuthenticatedGroupAdder(bearertoken.New(tokens))
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
func newCredentialAuthenticator(ca *x509.Certificate, tokens authenticator.Token) authenticator.Request {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	// As kube-apiserver builds its chain: authenticated users join
	// system:authenticated, and a bad credential is a 401, not anonymous.
	return group.NewAuthenticatedGroupAdder(union.New(
		newCachedCertAuthenticator(x509request.New(opts, x509request.CommonNameUserConversion)),
		bearertoken.New(tokens),
		websocket.NewProtocolAuthenticator(tokens),
	))
}

// Authorization modes, as kube-apiserver's --authorization-mode names them.
const (
	AuthorizationModeNode        = "Node"
	AuthorizationModeRBAC        = "RBAC"
	AuthorizationModeAlwaysAllow = "AlwaysAllow"
	AuthorizationModeAlwaysDeny  = "AlwaysDeny"
)

// defaultAuthorizationModes is --authorization-mode=Node,RBAC, as kubeadm
// runs kube-apiserver.
var defaultAuthorizationModes = []string{AuthorizationModeNode, AuthorizationModeRBAC}

// validateAuthorizationModes checks modes as kube-apiserver checks its
// --authorization-mode: known modes, each once.
func validateAuthorizationModes(modes []string) error {
	seen := map[string]bool{}
	for _, m := range modes {
		switch m {
		case AuthorizationModeNode, AuthorizationModeRBAC, AuthorizationModeAlwaysAllow, AuthorizationModeAlwaysDeny:
		default:
			return fmt.Errorf("AuthorizationModes: authorization mode %q is not one of %s, %s, %s, %s", m,
				AuthorizationModeAlwaysAllow, AuthorizationModeAlwaysDeny, AuthorizationModeNode, AuthorizationModeRBAC)
		}
		if seen[m] {
			return fmt.Errorf("AuthorizationModes: authorization mode %q is given twice", m)
		}
		seen[m] = true
	}
	return nil
}

// ComponentsGroup is the group of kubesim's in-process components that act
// for many of upstream's identities at once (kube-controller-manager without
// a service account per controller, the simulated kubelets, the add-ons):
// authorized as system:masters is, but not exempt from API Priority and
// Fairness as system:masters is, so that each is classified with the other
// groups of its identity where kube-apiserver classifies that identity.
const ComponentsGroup = "system:kubesim:components"

// newAuthorizer is kube-apiserver's authorizer with --authorization-mode
// set to modes (Node,RBAC by default, as kubeadm runs it): members of
// system:masters (and ComponentsGroup) first, then each mode in order. The Node authorizer (a
// kubelet, system:node:NAME in system:nodes, reaches only its own node's
// objects and what its pods use) reads a graph of nodes, pods, PVs,
// VolumeAttachments, ResourceSlices and PodCertificateRequests; the RBAC
// authorizer the bootstrapped policy, through informers. The RBAC
// authorizer also resolves rules for SelfSubjectRulesReviews, or the
// first of AlwaysAllow and AlwaysDeny without it.
func newAuthorizer(factory informers.SharedInformerFactory, modes []string) (authorizer.Authorizer, authorizer.RuleResolver, error) {
	authorizers := []authzunion.NamedAuthorizer{
		{AuthorizerName: "kubernetes.io/system-privileged-group", Authorizer: authorizerfactory.NewPrivilegedGroups(user.SystemPrivilegedGroup, ComponentsGroup)},
	}
	var resolvers []authorizer.RuleResolver
	for _, mode := range modes {
		switch mode {
		case AuthorizationModeNode:
			authorizers = append(authorizers, authzunion.NamedAuthorizer{AuthorizerName: "node", Authorizer: newNodeAuthorizer(factory)})
		case AuthorizationModeRBAC:
			r := factory.Rbac().V1()
			rbacAuthorizer := rbac.New(
				&rbac.RoleGetter{Lister: r.Roles().Lister()},
				&rbac.RoleBindingLister{Lister: r.RoleBindings().Lister()},
				&rbac.ClusterRoleGetter{Lister: r.ClusterRoles().Lister()},
				&rbac.ClusterRoleBindingLister{Lister: r.ClusterRoleBindings().Lister()},
			)
			authorizers = append(authorizers, authzunion.NamedAuthorizer{AuthorizerName: "rbac", Authorizer: rbacAuthorizer})
			resolvers = append([]authorizer.RuleResolver{rbacAuthorizer}, resolvers...)
		case AuthorizationModeAlwaysAllow:
			a := authorizerfactory.NewAlwaysAllowAuthorizer()
			authorizers = append(authorizers, authzunion.NamedAuthorizer{AuthorizerName: "always-allow", Authorizer: a})
			resolvers = append(resolvers, a)
		case AuthorizationModeAlwaysDeny:
			a := authorizerfactory.NewAlwaysDenyAuthorizer()
			authorizers = append(authorizers, authzunion.NamedAuthorizer{AuthorizerName: "always-deny", Authorizer: a})
			resolvers = append(resolvers, a)
		default:
			return nil, nil, validateAuthorizationModes([]string{mode})
		}
	}
	authz, err := authzunion.New(authorizers...)
	if err != nil {
		return nil, nil, fmt.Errorf("unable to build the authorizer: %w", err)
	}
	if len(resolvers) == 0 {
		return authz, authorizerfactory.NewAlwaysDenyAuthorizer(), nil // Node alone resolves no rules
	}
	return authz, resolvers[0], nil
}

// newNodeAuthorizer is the Node authorizer over a graph its informers keep.
func newNodeAuthorizer(factory informers.SharedInformerFactory) authorizer.Authorizer {
	var slices resourceinformers.ResourceSliceInformer
	if utilfeature.DefaultFeatureGate.Enabled(features.DynamicResourceAllocation) {
		slices = factory.Resource().V1().ResourceSlices()
	}
	var pcrs certinformersv1.PodCertificateRequestInformer
	if utilfeature.DefaultFeatureGate.Enabled(features.PodCertificateRequest) {
		pcrs = factory.Certificates().V1().PodCertificateRequests()
	}
	nodeAuthorizerMetrics.Do(node.RegisterMetrics)
	graph := node.NewGraph()
	c := factory.Core().V1()
	node.AddGraphEventHandlers(graph, c.Nodes(), c.Pods(), c.PersistentVolumes(), factory.Storage().V1().VolumeAttachments(), slices, pcrs)
	return node.NewAuthorizer(graph, nodeidentifier.NewDefaultNodeIdentifier(), bootstrappolicy.NodeRules())
}

// nodeAuthorizerMetrics registers the Node authorizer's metrics once per
// process, however many servers it runs.
var nodeAuthorizerMetrics sync.Once
