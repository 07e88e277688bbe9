package registry

import (
	"context"
	"fmt"
	"path"
	"reflect"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/registry/rest"
	apistorage "k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	serviceaccountstore "k8s.io/kubernetes/pkg/registry/core/serviceaccount/storage"
	"k8s.io/kubernetes/pkg/serviceaccount"
)

// ServiceAccountTokens configures TokenRequest (serviceaccounts/token), as
// kube-apiserver's --service-account-* flags do.
type ServiceAccountTokens struct {
	// Generator signs the tokens. Required for TokenRequest to be served.
	Generator serviceaccount.TokenGenerator
	// Audiences are the API server's audiences, the default of a
	// TokenRequest that names none.
	Audiences authenticator.Audiences
	// MaxExpiration caps a token's lifetime; 0 leaves it uncapped, as
	// kube-apiserver's --service-account-max-token-expiration.
	MaxExpiration time.Duration
	// ExtendExpiration and MaxExtendedExpiration: pod-bound tokens asking
	// for the kubelet's default 3607 s get this lifetime, warning after the
	// requested one (kube-apiserver's --service-account-extend-token-expiration,
	// on by default, with a year).
	ExtendExpiration      bool
	MaxExtendedExpiration time.Duration
}

// tokenRequestStorage is upstream's TokenREST (k8s.io/kubernetes
// pkg/registry/core/serviceaccount/storage), which kube-apiserver serves at
// serviceaccounts/token. Upstream builds it together with a generic
// registry store for service accounts that it reads them through; that
// store here reads kubesim's (getterStorage), so TokenREST, its
// validation, bound-object checks and claims are upstream's own.
func (r *Registry) tokenRequestStorage(cfg Config) (rest.Storage, error) {
	if cfg.ServiceAccountTokens == nil || cfg.ServiceAccountTokens.Generator == nil {
		return nil, nil
	}
	sa, pods, secrets, nodes := r.Stores[schema.GroupResource{Resource: "serviceaccounts"}], r.Stores[schema.GroupResource{Resource: "pods"}], r.Stores[schema.GroupResource{Resource: "secrets"}], r.Stores[schema.GroupResource{Resource: "nodes"}]
	if sa == nil || pods == nil || secrets == nil || nodes == nil {
		return nil, fmt.Errorf("unable to serve serviceaccounts/token: the serviceaccount, pod, secret and node stores are required")
	}
	opts := generic.RESTOptions{
		StorageConfig:  &storagebackend.ConfigForResource{GroupResource: sa.cfg.Resource},
		ResourcePrefix: "serviceaccounts",
		Decorator: func(_ *storagebackend.ConfigForResource, _ string, _ func(runtime.Object) (string, error), _ func() runtime.Object, _ func() runtime.Object, _ apistorage.AttrFunc, _ apistorage.IndexerFuncs, _ *cache.Indexers) (apistorage.Interface, factory.DestroyFunc, error) {
			return getterStorage{getter: sa}, func() {}, nil
		},
	}
	t := cfg.ServiceAccountTokens
	rs, err := serviceaccountstore.NewREST(opts, t.Generator, t.Audiences, authorizerOrNil(cfg.Authorizer), t.MaxExpiration, pods, secrets, nodes,
		versionedGetter[*admissionregistrationv1.ValidatingWebhookConfiguration]{r, validatingWebhooks},
		versionedGetter[*admissionregistrationv1.MutatingWebhookConfiguration]{r, mutatingWebhooks},
		t.ExtendExpiration, t.MaxExtendedExpiration)
	if err != nil {
		return nil, fmt.Errorf("unable to build serviceaccounts/token: %w", err)
	}
	return rs.Token, nil
}

var (
	validatingWebhooks = schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"}
	mutatingWebhooks   = schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}
)

// versionedGetter reads a store's objects at their external version T, a
// pointer to a k8s.io/api type, as a typed client would. It finds the store
// when called: stores of later groups are built after TokenREST.
type versionedGetter[T runtime.Object] struct {
	r  *Registry
	gr schema.GroupResource
}

func (g versionedGetter[T]) Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error) {
	var out T
	store := g.r.Stores[g.gr]
	if store == nil {
		return out, apierrors.NewNotFound(g.gr, name)
	}
	obj, err := store.Get(ctx, name, &opts)
	if err != nil {
		return out, err
	}
	out = reflect.New(reflect.TypeOf(out).Elem()).Interface().(T)
	if err := legacyscheme.Scheme.Convert(obj, out, nil); err != nil {
		return out, apierrors.NewInternalError(err)
	}
	return out, nil
}

func getVersioned[T runtime.Object](ctx context.Context, r *Registry, gr schema.GroupResource, namespace, name string) (T, error) {
	if namespace != "" {
		ctx = genericapirequest.WithNamespace(ctx, namespace)
	}
	return versionedGetter[T]{r, gr}.Get(ctx, name, metav1.GetOptions{})
}

// TokenGetter reads what service-account tokens are checked against
// (their account, and the pod, secret, node or webhook configuration they
// are bound to) straight from the stores, so a deleted pod's token stops
// working at once; kube-apiserver reads its informers, falling back to a
// live read.
func (r *Registry) TokenGetter() serviceaccount.ServiceAccountTokenGetter {
	return tokenGetter{r}
}

type tokenGetter struct{ r *Registry }

func (g tokenGetter) GetServiceAccount(ctx context.Context, namespace, name string) (*v1.ServiceAccount, error) {
	return getVersioned[*v1.ServiceAccount](ctx, g.r, schema.GroupResource{Resource: "serviceaccounts"}, namespace, name)
}

func (g tokenGetter) GetPod(ctx context.Context, namespace, name string) (*v1.Pod, error) {
	return getVersioned[*v1.Pod](ctx, g.r, schema.GroupResource{Resource: "pods"}, namespace, name)
}

func (g tokenGetter) GetSecret(ctx context.Context, namespace, name string) (*v1.Secret, error) {
	return getVersioned[*v1.Secret](ctx, g.r, schema.GroupResource{Resource: "secrets"}, namespace, name)
}

func (g tokenGetter) GetNode(ctx context.Context, name string) (*v1.Node, error) {
	return getVersioned[*v1.Node](ctx, g.r, schema.GroupResource{Resource: "nodes"}, "", name)
}

func (g tokenGetter) GetValidatingWebhookConfiguration(ctx context.Context, name string) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	return getVersioned[*admissionregistrationv1.ValidatingWebhookConfiguration](ctx, g.r, validatingWebhooks, "", name)
}

func (g tokenGetter) GetMutatingWebhookConfiguration(ctx context.Context, name string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	return getVersioned[*admissionregistrationv1.MutatingWebhookConfiguration](ctx, g.r, mutatingWebhooks, "", name)
}

// getterStorage is the k8s.io/apiserver storage.Interface of the generic
// store upstream's TokenREST reads service accounts through: Get reads
// kubesim's store (the key's last element is the name, the namespace is the
// request's); TokenREST calls nothing else, and everything else refuses.
type getterStorage struct{ getter rest.Getter }

var _ apistorage.Interface = getterStorage{}

var errReadOnly = apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "serviceaccounts"}, "write through serviceaccounts/token")

func (s getterStorage) Versioner() apistorage.Versioner { return apistorage.APIObjectVersioner{} }

func (s getterStorage) Get(ctx context.Context, key string, opts apistorage.GetOptions, out runtime.Object) error {
	obj, err := s.getter.Get(ctx, path.Base(key), &metav1.GetOptions{ResourceVersion: opts.ResourceVersion})
	if err != nil {
		return err
	}
	dst, src := reflect.ValueOf(out), reflect.ValueOf(obj)
	if dst.Type() != src.Type() {
		return apierrors.NewInternalError(fmt.Errorf("unable to read %s: got %T, want %T", key, obj, out))
	}
	dst.Elem().Set(src.Elem())
	return nil
}

func (s getterStorage) Create(context.Context, string, runtime.Object, runtime.Object, uint64) error {
	return errReadOnly
}

func (s getterStorage) Delete(context.Context, string, runtime.Object, *apistorage.Preconditions, apistorage.ValidateObjectFunc, runtime.Object, apistorage.DeleteOptions) error {
	return errReadOnly
}

func (s getterStorage) Watch(context.Context, string, apistorage.ListOptions) (watch.Interface, error) {
	return nil, errReadOnly
}

func (s getterStorage) GetList(context.Context, string, apistorage.ListOptions, runtime.Object) error {
	return errReadOnly
}

func (s getterStorage) GuaranteedUpdate(context.Context, string, runtime.Object, bool, *apistorage.Preconditions, apistorage.UpdateFunc, runtime.Object) error {
	return errReadOnly
}

func (s getterStorage) Stats(context.Context) (apistorage.Stats, error) {
	return apistorage.Stats{}, nil
}

func (s getterStorage) ReadinessCheck() error { return nil }

func (s getterStorage) RequestWatchProgress(context.Context) error { return errReadOnly }

func (s getterStorage) GetCurrentResourceVersion(context.Context) (uint64, error) {
	return 0, errReadOnly
}

func (s getterStorage) EnableResourceSizeEstimation(apistorage.KeysFunc) error { return nil }

func (s getterStorage) CompactRevision() int64 { return 0 }

// authorizerOrNil is the registry's authorizer as TokenREST takes it (it
// authorizes webhook-bound token requests), or nil.
func authorizerOrNil(a authorizer.UnconditionalAuthorizer) authorizer.Authorizer {
	full, _ := a.(authorizer.Authorizer)
	return full
}
