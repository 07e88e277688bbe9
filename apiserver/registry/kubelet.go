package registry

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericrest "k8s.io/apiserver/pkg/registry/generic/rest"
	"k8s.io/apiserver/pkg/registry/rest"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	api "k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/kubernetes/pkg/apis/core/validation"
	"k8s.io/kubernetes/pkg/features"
	kubeletclient "k8s.io/kubernetes/pkg/kubelet/client"
	"k8s.io/kubernetes/pkg/registry/core/pod"
	podrest "k8s.io/kubernetes/pkg/registry/core/pod/rest"
	"k8s.io/utils/ptr"
)

// kubeletSubresource returns the storage of a pod subresource that the API
// server proxies to the pod's kubelet (log, exec, attach, portforward), or
// nil when there is no kubelet connection or sub is not one of them. exec,
// attach and portforward are upstream's own REST objects; log is upstream's
// LogREST, which takes a generic registry store, restated over a getter.
func (r *Registry) kubeletSubresource(cfg Config, pods *Store, sub string) rest.Storage {
	if cfg.KubeletConn == nil {
		return nil
	}
	switch sub {
	case "log":
		return &LogREST{pods: pods, kubeletConn: cfg.KubeletConn}
	case "exec":
		return &podrest.ExecREST{Store: pods, KubeletConn: cfg.KubeletConn, Authorizer: cfg.Authorizer}
	case "attach":
		return &podrest.AttachREST{Store: pods, KubeletConn: cfg.KubeletConn, Authorizer: cfg.Authorizer}
	case "portforward":
		return &podrest.PortForwardREST{Store: pods, KubeletConn: cfg.KubeletConn, Authorizer: cfg.Authorizer}
	}
	return nil
}

// LogREST serves pods/log: it streams the container log from the pod's
// kubelet, as kube-apiserver's LogREST does.
type LogREST struct {
	pods        pod.ResourceGetter
	kubeletConn kubeletclient.ConnectionInfoGetter
}

var _ rest.GetterWithOptions = (*LogREST)(nil)

// New returns an empty pod.
func (r *LogREST) New() runtime.Object { return &api.Pod{} }

// Destroy does nothing: the pod store is shared.
func (r *LogREST) Destroy() {}

// ProducesMIMETypes returns text/plain, the type of a log.
func (r *LogREST) ProducesMIMETypes(verb string) []string { return []string{"text/plain"} }

// ProducesObject returns a string: a log is text.
func (r *LogREST) ProducesObject(verb string) interface{} { return "" }

// NewGetOptions returns the options of a log request.
func (r *LogREST) NewGetOptions() (runtime.Object, bool, string) {
	return &api.PodLogOptions{}, false, ""
}

// Get returns a streamer of the container's log at its kubelet.
func (r *LogREST) Get(ctx context.Context, name string, opts runtime.Object) (runtime.Object, error) {
	logOpts, ok := opts.(*api.PodLogOptions)
	if !ok {
		return nil, fmt.Errorf("invalid options object: %#v", opts)
	}
	splitStreams := utilfeature.DefaultFeatureGate.Enabled(features.PodLogsQuerySplitStreams)
	if splitStreams && logOpts.Stream == nil {
		logOpts.Stream = ptr.To(api.LogStreamAll)
	}
	if errs := validation.ValidatePodLogOptions(logOpts, splitStreams); len(errs) > 0 {
		return nil, errors.NewInvalid(api.Kind("PodLogOptions"), name, errs)
	}
	location, transport, err := pod.LogLocation(ctx, r.pods, r.kubeletConn, name, logOpts)
	if err != nil {
		return nil, err
	}
	return &genericrest.LocationStreamer{
		Location:        location,
		Transport:       transport,
		ContentType:     "text/plain",
		Flush:           logOpts.Follow,
		ResponseChecker: genericrest.NewGenericHttpResponseChecker(schema.GroupResource{Resource: "pods/log"}, name),
		RedirectChecker: genericrest.PreventRedirects,
	}, nil
}
