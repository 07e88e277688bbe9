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

// newAuthorizer is kube-apiserver's authorizer with
// --authorization-mode=Node,RBAC, as kubeadm runs it: members of
// system:masters first, then the Node authorizer (a kubelet, system:node:NAME
// in system:nodes, reaches only its own node's objects and what its pods
// use, from a graph of nodes, pods, PVs, VolumeAttachments, ResourceSlices
// and PodCertificateRequests), then the RBAC authorizer over the
// bootstrapped policy, read through informers. The RBAC authorizer also
// resolves rules for SelfSubjectRulesReviews.
func newAuthorizer(factory informers.SharedInformerFactory) (authorizer.Authorizer, authorizer.RuleResolver, error) {
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
	nodeAuthorizer := node.NewAuthorizer(graph, nodeidentifier.NewDefaultNodeIdentifier(), bootstrappolicy.NodeRules())
	r := factory.Rbac().V1()
	rbacAuthorizer := rbac.New(
		&rbac.RoleGetter{Lister: r.Roles().Lister()},
		&rbac.RoleBindingLister{Lister: r.RoleBindings().Lister()},
		&rbac.ClusterRoleGetter{Lister: r.ClusterRoles().Lister()},
		&rbac.ClusterRoleBindingLister{Lister: r.ClusterRoleBindings().Lister()},
	)
	authz, err := authzunion.New(
		authzunion.NamedAuthorizer{AuthorizerName: "kubernetes.io/system-privileged-group", Authorizer: authorizerfactory.NewPrivilegedGroups(user.SystemPrivilegedGroup)},
		authzunion.NamedAuthorizer{AuthorizerName: "node", Authorizer: nodeAuthorizer},
		authzunion.NamedAuthorizer{AuthorizerName: "rbac", Authorizer: rbacAuthorizer},
	)
	if err != nil {
		return nil, nil, fmt.Errorf("unable to build the authorizer: %w", err)
	}
	return authz, rbacAuthorizer, nil
}

// nodeAuthorizerMetrics registers the Node authorizer's metrics once per
// process, however many servers it runs.
var nodeAuthorizerMetrics sync.Once
