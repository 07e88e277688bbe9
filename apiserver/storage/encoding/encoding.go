package encoding

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	serveroptions "k8s.io/apiserver/pkg/server/options"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"k8s.io/kubernetes/pkg/kubeapiserver"

	// Every API group kube-apiserver stores, installed into legacyscheme.
	_ "github.com/kubesim/kubesim/apiserver/install"
)

// Codec encodes and decodes stored objects by the group and resource of
// their key. It is safe for concurrent use.
type Codec struct {
	factory *serverstorage.DefaultStorageFactory

	mu     sync.RWMutex
	codecs map[schema.GroupResource]runtime.Codec // nil value: custom resource
	// groups are the codecs of groups RegisterGroup added.
	groups map[string]runtime.Codec
}

// NewCodec returns the codec of kube-apiserver v1.37's storage factory.
func NewCodec() (*Codec, error) {
	cfg := kubeapiserver.NewStorageFactoryConfig()
	// Every group kube-apiserver serves is on: that decides which of
	// cohabitating resources stores (apps deployments, core events).
	rc := serverstorage.NewResourceConfig()
	rc.EnableVersions(legacyscheme.Scheme.PrioritizedVersionsAllGroups()...)
	cfg.APIResourceConfig = rc
	etcd := serveroptions.NewEtcdOptions(storagebackend.NewDefaultConfig("/registry", nil))
	// As kube-apiserver's options set it (NewServerRunOptions).
	etcd.DefaultStorageMediaType = runtime.ContentTypeProtobuf
	factory, err := cfg.Complete(etcd).New()
	if err != nil {
		return nil, fmt.Errorf("unable to build kube-apiserver's storage factory: %w", err)
	}
	return &Codec{factory: factory, codecs: map[schema.GroupResource]runtime.Codec{}}, nil
}

// GroupResource returns the group and resource of a kubesim key
// (/registry/<group>/<resource>/...; group "core" for the core group).
func GroupResource(key string) (schema.GroupResource, error) {
	rest, ok := strings.CutPrefix(key, "/registry/")
	if !ok {
		return schema.GroupResource{}, fmt.Errorf("key %q is not under /registry/", key)
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return schema.GroupResource{}, fmt.Errorf("key %q names no group and resource", key)
	}
	gr := schema.GroupResource{Group: parts[0], Resource: parts[1]}
	if gr.Group == "core" {
		gr.Group = ""
	}
	return gr, nil
}

// builtin reports whether kube-apiserver (or its apiextensions and
// aggregator servers) stores gr as a built-in kind.
func builtin(gr schema.GroupResource) bool {
	return legacyscheme.Scheme.IsGroupRegistered(gr.Group)
}

// RegisterGroup makes the codec store the objects of group, a group
// kube-apiserver does not serve, with codec (k8s.io/apiserver's storage
// tests store their example.apiserver.k8s.io objects so).
func (c *Codec) RegisterGroup(group string, codec runtime.Codec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups == nil {
		c.groups = map[string]runtime.Codec{}
	}
	c.groups[group] = codec
}

func (c *Codec) codec(gr schema.GroupResource) (runtime.Codec, error) {
	c.mu.RLock()
	codec, ok := c.codecs[gr]
	if !ok {
		codec, ok = c.groups[gr.Group]
	}
	c.mu.RUnlock()
	if ok {
		return codec, nil
	}
	if builtin(gr) {
		cfg, err := c.factory.NewConfig(gr, nil)
		if err != nil {
			return nil, fmt.Errorf("unable to find the storage codec of %s: %w", gr, err)
		}
		codec = cfg.Codec
	}
	c.mu.Lock()
	c.codecs[gr] = codec
	c.mu.Unlock()
	return codec, nil
}

// Encode returns obj, stored under key, as kube-apiserver writes it. As
// apimachinery's codecs do, it sets and restores obj's TypeMeta while it
// runs: encode a copy of an object others read.
func (c *Codec) Encode(key string, obj runtime.Object) ([]byte, error) {
	gr, err := GroupResource(key)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("unable to encode %s: the object has no apiVersion or kind", key)
		}
		if err := unstructured.UnstructuredJSONScheme.Encode(u, &buf); err != nil {
			return nil, fmt.Errorf("unable to encode %s: %w", key, err)
		}
		return buf.Bytes(), nil
	}
	codec, err := c.codec(gr)
	if err != nil {
		return nil, err
	}
	if codec == nil {
		return nil, fmt.Errorf("unable to encode %s: %T is not a kind of %s", key, obj, gr)
	}
	if err := codec.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("unable to encode %s: %w", key, err)
	}
	return buf.Bytes(), nil
}

// Decode returns the object stored under key as data: an internal object
// of legacyscheme for a built-in resource, an *unstructured.Unstructured
// for a custom resource.
func (c *Codec) Decode(key string, data []byte) (runtime.Object, error) {
	gr, err := GroupResource(key)
	if err != nil {
		return nil, err
	}
	codec, err := c.codec(gr)
	if err != nil {
		return nil, err
	}
	if codec == nil {
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(data, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("unable to decode %s: %w", key, err)
		}
		return obj, nil
	}
	obj, _, err := codec.Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("unable to decode %s: %w", key, err)
	}
	return obj, nil
}

// EtcdKey returns the key kube-apiserver keeps the object of a kubesim key
// under, below its --etcd-prefix: /pods/NS/NAME, /minions/NAME,
// /services/specs/NS/NAME, /deployments/NS/NAME,
// /apiextensions.k8s.io/customresourcedefinitions/NAME, /GROUP/RESOURCE/...
// for custom resources.
func (c *Codec) EtcdKey(key string) (string, error) {
	gr, err := GroupResource(key)
	if err != nil {
		return "", err
	}
	rest := strings.SplitN(strings.TrimPrefix(key, "/registry/"), "/", 3)
	tail := ""
	if len(rest) == 3 {
		tail = rest[2]
	}
	return "/" + c.ResourcePrefix(gr) + "/" + tail, nil
}

// ResourcePrefix returns the directory kube-apiserver keeps gr's objects
// in, below its --etcd-prefix.
func (c *Codec) ResourcePrefix(gr schema.GroupResource) string {
	switch {
	case gr.Group == "apiextensions.k8s.io", gr.Group == "apiregistration.k8s.io", !builtin(gr):
		// The apiextensions and aggregator servers, and custom
		// resources, key by group and resource.
		return gr.Group + "/" + gr.Resource
	}
	return c.factory.ResourcePrefix(gr)
}
