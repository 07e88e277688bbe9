package registry

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-aggregator/pkg/registry/apiservice"
	apiserviceetcd "k8s.io/kube-aggregator/pkg/registry/apiservice/etcd"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
)

// apiServices is the resource of APIServices, which kube-aggregator serves
// in kube-apiserver.
var apiServices = schema.GroupResource{Group: "apiregistration.k8s.io", Resource: "apiservices"}

// apiServiceSpec serves APIServices with kube-aggregator's own strategies
// and table (Name, Service, Available, Age).
func apiServiceSpec() spec {
	return spec{
		// The strategy is a full RESTDeleteStrategy (it embeds the typer);
		// its constructor's return type just does not say so.
		strategy: apiservice.NewStrategy(legacyscheme.Scheme).(Strategy),
		attrs:    apiservice.GetAttrs,
		table:    &apiserviceetcd.REST{},
		updates:  status(apiservice.NewStatusStrategy(legacyscheme.Scheme)),
	}
}
