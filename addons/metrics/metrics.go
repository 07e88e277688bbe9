package metrics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	utilcompatibility "k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	openapicommon "k8s.io/kube-openapi/pkg/common"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	"sigs.k8s.io/metrics-server/pkg/api"
	"sigs.k8s.io/metrics-server/pkg/scraper"
	"sigs.k8s.io/metrics-server/pkg/scraper/client"
	"sigs.k8s.io/metrics-server/pkg/scraper/client/resource"
	"sigs.k8s.io/metrics-server/pkg/storage"
)

// GroupVersion is what metrics-server serves.
var GroupVersion = metricsv1beta1.SchemeGroupVersion

// Priorities of metrics-server's APIService (v1beta1.metrics.k8s.io), as
// its manifests register it.
const (
	GroupPriorityMinimum = 100
	VersionPriority      = 100
)

// Version is the metrics-server release kubesim runs.
const Version = "v0.8.0"

// Config configures the metrics server.
type Config struct {
	// Informers provide Nodes, and the Pods whose metadata metrics-server's
	// API reads (the Running ones, as its own informer holds); the server
	// starts the informers it adds. Required.
	Informers informers.SharedInformerFactory
	// Kubelet is how kubelets are reached: TLS (the CA that signed their
	// serving certificates, and a client certificate they accept) and a
	// timeout. Required.
	Kubelet rest.Config
	// Resolution is how often nodes are scraped (--metric-resolution).
	// Default: 15s.
	Resolution time.Duration
	// ScrapeTimeout bounds one scrape of one node. Default: 10s.
	ScrapeTimeout time.Duration
}

// Server is an in-process metrics-server.
type Server struct {
	cfg     Config
	scraper scraper.Scraper
	store   storage.Storage
	handler http.Handler
	synced  []cache.InformerSynced
}

// schemeOnce sets the version metrics-server serves as the preferred one
// of its scheme (k8s.io/metrics also registers metrics.k8s.io/v1, which
// metrics-server does not serve).
var schemeOnce sync.Once

// New validates and defaults cfg and builds the server.
func New(cfg Config) (*Server, error) {
	return newServer(cfg, openAPIDefinitions)
}

// newServer is New with the OpenAPI definitions defs gives.
func newServer(cfg Config, defs openapicommon.GetOpenAPIDefinitions) (*Server, error) {
	if cfg.Informers == nil {
		return nil, errors.New("metrics: Informers is required")
	}
	if cfg.Resolution <= 0 {
		cfg.Resolution = 15 * time.Second
	}
	if cfg.ScrapeTimeout <= 0 {
		cfg.ScrapeTimeout = 10 * time.Second
	}
	schemeOnce.Do(func() { utilruntimeMust(api.Scheme.SetVersionPriority(metricsv1beta1.SchemeGroupVersion)) })
	kubelet, err := resource.NewForConfig(&client.KubeletClientConfig{
		Client:              cfg.Kubelet,
		AddressTypePriority: []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName},
		Scheme:              "https",
		DefaultPort:         10250,
		UseNodeStatusPort:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("unable to build metrics-server's kubelet client: %w", err)
	}
	nodes := cfg.Informers.Core().V1().Nodes()
	pods := cfg.Informers.Core().V1().Pods()
	s := &Server{
		cfg:     cfg,
		scraper: scraper.NewScraper(nodes.Lister(), kubelet, cfg.ScrapeTimeout, nil),
		store:   storage.NewStorage(cfg.Resolution),
		synced:  []cache.InformerSynced{nodes.Informer().HasSynced, pods.Informer().HasSynced},
	}
	gc := genericapiserver.NewConfig(api.Codecs)
	gc.EnableMetrics = false
	gc.EnableProfiling = false
	// Served in-process, through the kubesim API server: neither address
	// is dialled.
	gc.ExternalAddress = "127.0.0.1:443"
	gc.LoopbackClientConfig = &rest.Config{Host: "https://127.0.0.1:1"}
	gc.EffectiveVersion = utilcompatibility.DefaultBuildEffectiveVersion()
	// metrics-server's own definitions are keyed by Go path; v0.37's
	// OpenAPI builder looks models up by their OpenAPI names, which
	// k8s.io/kubernetes's definitions (which include metrics.k8s.io) use.
	// No OpenAPI v2 document: kubesim's /openapi/v2 does not merge the
	// aggregated servers' (its /openapi/v3 does), and building it took a
	// sixth of the CPU of starting a cluster in-process.
	gc.OpenAPIConfig = nil
	gc.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(defs, openapinamer.NewDefinitionNamer(api.Scheme))
	gc.OpenAPIV3Config.Info.Title, gc.OpenAPIV3Config.Info.Version = "metrics-server", Version
	gs, err := gc.Complete(nil).New("metrics-server", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, fmt.Errorf("unable to build metrics-server's API server: %w", err)
	}
	if err := api.Install(s.store, runningPods{pods: pods.Lister()}, nodes.Lister(), gs, nil); err != nil {
		return nil, fmt.Errorf("unable to install metrics.k8s.io: %w", err)
	}
	gs.PrepareRun()
	s.handler = gs.Handler
	return s, nil
}

// openAPIDefinitions gives each metrics-server the definitions its routes
// reach, out of k8s.io/kubernetes's: metrics.k8s.io's types, the
// apimachinery types every API group's routes use (Status, lists' and
// objects' metadata, WatchEvent, APIResourceList, ...) and what those
// refer to. Those are built once per process (all of k8s.io/kubernetes's
// definitions took 7 MB and 8 ms of CPU each cluster); each server gets
// its own map and its own copy of each definition's extensions, which
// kube-openapi's builder writes to as it builds the spec. The references
// are the same the server's ref callback makes (they depend on the name
// only), so ref is not called.
func openAPIDefinitions(ref openapicommon.ReferenceCallback) map[string]openapicommon.OpenAPIDefinition {
	shared := sharedOpenAPIDefinitions()
	defs := make(map[string]openapicommon.OpenAPIDefinition, len(shared))
	for name, d := range shared {
		d.Schema.Extensions = maps.Clone(d.Schema.Extensions)
		defs[name] = d
	}
	return defs
}

// openAPIRoots are the prefixes of the definitions a metrics-server's
// routes may name directly.
var openAPIRoots = []string{
	"io.k8s.metrics.pkg.apis.metrics.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.",
	"io.k8s.apimachinery.pkg.runtime.",
	"io.k8s.apimachinery.pkg.version.",
}

var sharedOpenAPIDefinitions = sync.OnceValue(func() map[string]openapicommon.OpenAPIDefinition {
	cfg := genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, openapinamer.NewDefinitionNamer(api.Scheme))
	all := cfg.Definitions
	defs := map[string]openapicommon.OpenAPIDefinition{}
	var reach func(name string)
	reach = func(name string) {
		if _, ok := defs[name]; ok {
			return
		}
		d, ok := all[name]
		if !ok {
			return // the builder reports it, as it would have
		}
		defs[name] = d
		for _, dep := range d.Dependencies {
			reach(dep)
		}
	}
	for name := range all {
		for _, root := range openAPIRoots {
			if strings.HasPrefix(name, root) {
				reach(name)
			}
		}
	}
	return defs
})

func utilruntimeMust(err error) {
	if err != nil {
		panic(err)
	}
}

// Handler serves metrics.k8s.io (and metrics-server's discovery and
// OpenAPI). It trusts its caller to have authenticated and authorized the
// request.
func (s *Server) Handler() http.Handler { return s.handler }

// GroupVersionServed is the group version Handler serves.
func (s *Server) GroupVersionServed() schema.GroupVersion { return GroupVersion }

// Start scrapes every node every Resolution until ctx is done, as
// metrics-server's scrape loop does.
func (s *Server) Start(ctx context.Context) error {
	s.cfg.Informers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return nil
	}
	logger := klog.FromContext(ctx).WithName("metrics-server")
	logger.V(2).Info("Scraping nodes", "resolution", s.cfg.Resolution)
	tick := func() {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.Resolution)
		defer cancel()
		s.store.Store(s.scraper.Scrape(ctx))
	}
	tick()
	t := time.NewTicker(s.cfg.Resolution)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			tick()
		}
	}
}

// Ready says whether the server has metrics to serve (two scrapes).
func (s *Server) Ready() bool { return s.store.Ready() }
