package registry

import (
	"fmt"

	"k8s.io/apiextensions-apiserver/pkg/registry/customresourcedefinition"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/registry/rest"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/featuregate"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	certificatesapi "k8s.io/kubernetes/pkg/apis/certificates"
	"k8s.io/kubernetes/pkg/features"

	"k8s.io/kubernetes/pkg/registry/admissionregistration/mutatingadmissionpolicy"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/mutatingadmissionpolicybinding"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/mutatingwebhookconfiguration"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/validatingadmissionpolicy"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/validatingadmissionpolicybinding"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/validatingwebhookconfiguration"
	"k8s.io/kubernetes/pkg/registry/apps/controllerrevision"
	"k8s.io/kubernetes/pkg/registry/apps/daemonset"
	"k8s.io/kubernetes/pkg/registry/apps/deployment"
	"k8s.io/kubernetes/pkg/registry/apps/replicaset"
	"k8s.io/kubernetes/pkg/registry/apps/statefulset"
	"k8s.io/kubernetes/pkg/registry/autoscaling/horizontalpodautoscaler"
	"k8s.io/kubernetes/pkg/registry/batch/cronjob"
	"k8s.io/kubernetes/pkg/registry/batch/job"
	"k8s.io/kubernetes/pkg/registry/certificates/certificates"
	"k8s.io/kubernetes/pkg/registry/certificates/clustertrustbundle"
	"k8s.io/kubernetes/pkg/registry/certificates/podcertificaterequest"
	"k8s.io/kubernetes/pkg/registry/coordination/lease"
	"k8s.io/kubernetes/pkg/registry/core/configmap"
	"k8s.io/kubernetes/pkg/registry/core/endpoint"
	"k8s.io/kubernetes/pkg/registry/core/event"
	"k8s.io/kubernetes/pkg/registry/core/limitrange"
	"k8s.io/kubernetes/pkg/registry/core/namespace"
	"k8s.io/kubernetes/pkg/registry/core/node"
	"k8s.io/kubernetes/pkg/registry/core/persistentvolume"
	"k8s.io/kubernetes/pkg/registry/core/persistentvolumeclaim"
	"k8s.io/kubernetes/pkg/registry/core/pod"
	"k8s.io/kubernetes/pkg/registry/core/podtemplate"
	"k8s.io/kubernetes/pkg/registry/core/replicationcontroller"
	"k8s.io/kubernetes/pkg/registry/core/resourcequota"
	"k8s.io/kubernetes/pkg/registry/core/secret"
	"k8s.io/kubernetes/pkg/registry/core/service"
	"k8s.io/kubernetes/pkg/registry/core/serviceaccount"
	"k8s.io/kubernetes/pkg/registry/discovery/endpointslice"
	"k8s.io/kubernetes/pkg/registry/flowcontrol/flowschema"
	"k8s.io/kubernetes/pkg/registry/flowcontrol/prioritylevelconfiguration"
	"k8s.io/kubernetes/pkg/registry/networking/ingress"
	"k8s.io/kubernetes/pkg/registry/networking/ingressclass"
	"k8s.io/kubernetes/pkg/registry/networking/ipaddress"
	"k8s.io/kubernetes/pkg/registry/networking/networkpolicy"
	"k8s.io/kubernetes/pkg/registry/networking/servicecidr"
	"k8s.io/kubernetes/pkg/registry/node/runtimeclass"
	"k8s.io/kubernetes/pkg/registry/policy/poddisruptionbudget"
	"k8s.io/kubernetes/pkg/registry/rbac/clusterrole"
	"k8s.io/kubernetes/pkg/registry/rbac/clusterrolebinding"
	"k8s.io/kubernetes/pkg/registry/rbac/role"
	"k8s.io/kubernetes/pkg/registry/rbac/rolebinding"
	"k8s.io/kubernetes/pkg/registry/resource/deviceclass"
	"k8s.io/kubernetes/pkg/registry/resource/devicetaintrule"
	"k8s.io/kubernetes/pkg/registry/resource/resourceclaim"
	"k8s.io/kubernetes/pkg/registry/resource/resourceclaimtemplate"
	"k8s.io/kubernetes/pkg/registry/resource/resourceslice"
	"k8s.io/kubernetes/pkg/registry/scheduling/priorityclass"
	"k8s.io/kubernetes/pkg/registry/storage/csidriver"
	"k8s.io/kubernetes/pkg/registry/storage/csinode"
	"k8s.io/kubernetes/pkg/registry/storage/csistoragecapacity"
	"k8s.io/kubernetes/pkg/registry/storage/storageclass"
	"k8s.io/kubernetes/pkg/registry/storage/volumeattachment"
	"k8s.io/kubernetes/pkg/registry/storage/volumeattributesclass"
	"k8s.io/kubernetes/pkg/registry/storagemigration/storagemigration"
)

// spec is what the registry knows of a resource beyond its discovery
// document: the upstream strategies that give it kube-apiserver's semantics.
type spec struct {
	strategy Strategy
	// subresources updated with their own strategy: status, finalize, ...
	updates map[string]rest.RESTUpdateStrategy
	attrs   AttrFunc
	// returnDeleted: DELETE answers with the object, not a Status.
	returnDeleted bool
	// sharedWith names the resource whose store this one serves.
	sharedWith *schema.GroupResource
	// table prints the resource; default: upstream's printers, or name
	// and age.
	table rest.TableConvertor
}

// podCertificateRequestAttrs and clusterTrustBundleAttrs are upstream's
// getAttrs of their storage packages (unexported there): the fields they can
// be selected by (signers watch their requests by spec.signerName, the
// kubelet its bundles).
func podCertificateRequestAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	req, ok := obj.(*certificatesapi.PodCertificateRequest)
	if !ok {
		return nil, nil, fmt.Errorf("not a podcertificaterequest")
	}
	return labels.Set(req.Labels), generic.MergeFieldsSets(generic.ObjectMetaFieldsSet(&req.ObjectMeta, true), fields.Set{
		"spec.signerName": req.Spec.SignerName,
		"spec.podName":    req.Spec.PodName,
		"spec.nodeName":   string(req.Spec.NodeName),
	}), nil
}

func clusterTrustBundleAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	bundle, ok := obj.(*certificatesapi.ClusterTrustBundle)
	if !ok {
		return nil, nil, fmt.Errorf("not a clustertrustbundle")
	}
	return labels.Set(bundle.Labels), generic.MergeFieldsSets(generic.ObjectMetaFieldsSet(&bundle.ObjectMeta, false), fields.Set{
		"spec.signerName": bundle.Spec.SignerName,
	}), nil
}

func status(s rest.RESTUpdateStrategy) map[string]rest.RESTUpdateStrategy {
	return map[string]rest.RESTUpdateStrategy{"status": s}
}

var coreEvents = schema.GroupResource{Resource: "events"}

// EncodedPrefixes are the keys whose objects a store keeps encoded, not
// decoded, once written (memory.Config.EncodedPrefixes): Events (core and
// events.k8s.io share the store), written by the thousand (four or five a
// pod started) and seldom read, which kube-apiserver keeps in etcd alone,
// with no watch cache (its DefaultWatchCacheSizes).
var EncodedPrefixes = []string{"/registry/core/events/"}

// Strategies that take collaborators, built here without them: the
// admission policy ones skip their parameter-kind checks without an
// authorizer; the ResourceClaim ones are built again per registry with its
// authorizer and namespace client (storeFor).
var (
	vapStrategy   = validatingadmissionpolicy.NewStrategy(nil, nil)
	claimStrategy = resourceclaim.NewStrategy(nil, nil)
	pcrStrategy   = podcertificaterequest.NewStrategy()

	podCertificateRequests = schema.GroupResource{Group: "certificates.k8s.io", Resource: "podcertificaterequests"}
	resourceClaims         = schema.GroupResource{Group: "resource.k8s.io", Resource: "resourceclaims"}
	resourceClaimTemplates = schema.GroupResource{Group: "resource.k8s.io", Resource: "resourceclaimtemplates"}
)

// specs lists every resource kubesim stores, by group and resource.
var specs = map[schema.GroupResource]spec{
	{Resource: "configmaps"}:             {strategy: configmap.Strategy, attrs: configmap.GetAttrs},
	{Resource: "endpoints"}:              {strategy: endpoint.Strategy},
	{Resource: "events"}:                 {strategy: event.Strategy, attrs: event.GetAttrs},
	{Resource: "limitranges"}:            {strategy: limitrange.Strategy},
	{Resource: "namespaces"}:             {strategy: namespace.Strategy, attrs: namespace.GetAttrs, returnDeleted: true, updates: map[string]rest.RESTUpdateStrategy{"status": namespace.StatusStrategy, "finalize": namespace.FinalizeStrategy}},
	{Resource: "nodes"}:                  {strategy: node.Strategy, attrs: node.GetAttrs, updates: status(node.StatusStrategy)},
	{Resource: "persistentvolumeclaims"}: {strategy: persistentvolumeclaim.Strategy, attrs: persistentvolumeclaim.GetAttrs, returnDeleted: true, updates: status(persistentvolumeclaim.StatusStrategy)},
	{Resource: "persistentvolumes"}:      {strategy: persistentvolume.Strategy, attrs: persistentvolume.GetAttrs, returnDeleted: true, updates: status(persistentvolume.StatusStrategy)},
	{Resource: "pods"}: {strategy: pod.Strategy, attrs: pod.GetAttrs, returnDeleted: true, updates: map[string]rest.RESTUpdateStrategy{
		"status": pod.StatusStrategy, "ephemeralcontainers": pod.EphemeralContainersStrategy, "resize": pod.ResizeStrategy}},
	{Resource: "podtemplates"}:           {strategy: podtemplate.Strategy, returnDeleted: true},
	{Resource: "replicationcontrollers"}: {strategy: replicationcontroller.Strategy, attrs: replicationcontroller.GetAttrs, updates: status(replicationcontroller.StatusStrategy)},
	{Resource: "resourcequotas"}:         {strategy: resourcequota.Strategy, returnDeleted: true, updates: status(resourcequota.StatusStrategy)},
	{Resource: "secrets"}:                {strategy: secret.Strategy, attrs: secret.GetAttrs},
	{Resource: "serviceaccounts"}:        {strategy: serviceaccount.Strategy, returnDeleted: true},
	{Resource: "services"}:               {strategy: service.Strategy, attrs: service.GetAttrs, returnDeleted: true, updates: status(service.StatusStrategy)},

	{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}:     {strategy: mutatingwebhookconfiguration.Strategy},
	{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicies"}:       {strategy: vapStrategy, updates: status(validatingadmissionpolicy.NewStatusStrategy(vapStrategy))},
	{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicybindings"}: {strategy: validatingadmissionpolicybinding.NewStrategy(nil, nil, nil)},
	{Group: "admissionregistration.k8s.io", Resource: "mutatingadmissionpolicies"}:         {strategy: mutatingadmissionpolicy.NewStrategy(nil, nil)},
	{Group: "admissionregistration.k8s.io", Resource: "mutatingadmissionpolicybindings"}:   {strategy: mutatingadmissionpolicybinding.NewStrategy(nil, nil, nil)},
	{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"}:   {strategy: validatingwebhookconfiguration.Strategy},

	apiServices: apiServiceSpec(),
	crds:        {strategy: crdStrategy, attrs: customresourcedefinition.GetAttrs, table: crdTable, updates: status(customresourcedefinition.NewStatusStrategy(legacyscheme.Scheme))},

	{Group: "apps", Resource: "controllerrevisions"}: {strategy: controllerrevision.Strategy},
	{Group: "apps", Resource: "daemonsets"}:          {strategy: daemonset.Strategy, updates: status(daemonset.StatusStrategy)},
	{Group: "apps", Resource: "deployments"}:         {strategy: deployment.Strategy, updates: status(deployment.StatusStrategy)},
	{Group: "apps", Resource: "replicasets"}:         {strategy: replicaset.Strategy, attrs: replicaset.GetAttrs, updates: status(replicaset.StatusStrategy)},
	{Group: "apps", Resource: "statefulsets"}:        {strategy: statefulset.Strategy, updates: status(statefulset.StatusStrategy)},

	{Group: "autoscaling", Resource: "horizontalpodautoscalers"}: {strategy: horizontalpodautoscaler.Strategy, updates: status(horizontalpodautoscaler.StatusStrategy)},

	{Group: "batch", Resource: "cronjobs"}: {strategy: cronjob.Strategy, updates: status(cronjob.StatusStrategy)},
	{Group: "batch", Resource: "jobs"}:     {strategy: job.Strategy, attrs: job.GetAttrs, updates: status(job.StatusStrategy)},

	{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}: {strategy: certificates.Strategy, attrs: certificates.GetAttrs, updates: map[string]rest.RESTUpdateStrategy{
		"status": certificates.StatusStrategy, "approval": certificates.ApprovalStrategy}},
	{Group: "certificates.k8s.io", Resource: "clustertrustbundles"}:    {strategy: clustertrustbundle.Strategy, attrs: clusterTrustBundleAttrs},
	{Group: "certificates.k8s.io", Resource: "podcertificaterequests"}: {strategy: pcrStrategy, attrs: podCertificateRequestAttrs}, // its status: subresourceStorage, which has the authorizer

	{Group: "coordination.k8s.io", Resource: "leases"}: {strategy: lease.Strategy},

	{Group: "discovery.k8s.io", Resource: "endpointslices"}: {strategy: endpointslice.Strategy},

	{Group: "events.k8s.io", Resource: "events"}: {sharedWith: &coreEvents},

	{Group: "flowcontrol.apiserver.k8s.io", Resource: "flowschemas"}:                 {strategy: flowschema.Strategy, updates: status(flowschema.StatusStrategy)},
	{Group: "flowcontrol.apiserver.k8s.io", Resource: "prioritylevelconfigurations"}: {strategy: prioritylevelconfiguration.Strategy, updates: status(prioritylevelconfiguration.StatusStrategy)},

	{Group: "networking.k8s.io", Resource: "ingressclasses"}:  {strategy: ingressclass.Strategy},
	{Group: "networking.k8s.io", Resource: "ingresses"}:       {strategy: ingress.Strategy, updates: status(ingress.StatusStrategy)},
	{Group: "networking.k8s.io", Resource: "ipaddresses"}:     {strategy: ipaddress.Strategy},
	{Group: "networking.k8s.io", Resource: "networkpolicies"}: {strategy: networkpolicy.Strategy},
	{Group: "networking.k8s.io", Resource: "servicecidrs"}:    {strategy: servicecidr.Strategy, updates: status(servicecidr.StatusStrategy)},

	{Group: "node.k8s.io", Resource: "runtimeclasses"}: {strategy: runtimeclass.Strategy},

	{Group: "policy", Resource: "poddisruptionbudgets"}: {strategy: poddisruptionbudget.Strategy, updates: status(poddisruptionbudget.StatusStrategy)},

	{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}: {strategy: clusterrolebinding.Strategy},
	{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}:        {strategy: clusterrole.Strategy},
	{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}:        {strategy: rolebinding.Strategy},
	{Group: "rbac.authorization.k8s.io", Resource: "roles"}:               {strategy: role.Strategy},

	{Group: "resource.k8s.io", Resource: "deviceclasses"}:          {strategy: deviceclass.Strategy, returnDeleted: true},
	{Group: "resource.k8s.io", Resource: "devicetaintrules"}:       {strategy: devicetaintrule.Strategy, updates: status(devicetaintrule.StatusStrategy)},
	{Group: "resource.k8s.io", Resource: "resourceclaims"}:         {strategy: claimStrategy, attrs: resourceclaim.GetAttrs, returnDeleted: true}, // strategy and status: per registry (storeFor)
	{Group: "resource.k8s.io", Resource: "resourceclaimtemplates"}: {strategy: resourceclaimtemplate.NewStrategy(nil), attrs: resourceclaimtemplate.GetAttrs, returnDeleted: true},
	{Group: "resource.k8s.io", Resource: "resourceslices"}:         {strategy: resourceslice.Strategy, attrs: resourceslice.GetAttrs, returnDeleted: true},

	{Group: "scheduling.k8s.io", Resource: "priorityclasses"}: {strategy: priorityclass.Strategy},

	{Group: "storage.k8s.io", Resource: "csidrivers"}:              {strategy: csidriver.Strategy, returnDeleted: true},
	{Group: "storage.k8s.io", Resource: "csinodes"}:                {strategy: csinode.Strategy, returnDeleted: true, updates: status(csinode.StatusStrategy)},
	{Group: "storage.k8s.io", Resource: "csistoragecapacities"}:    {strategy: csistoragecapacity.Strategy},
	{Group: "storage.k8s.io", Resource: "storageclasses"}:          {strategy: storageclass.Strategy, returnDeleted: true},
	{Group: "storage.k8s.io", Resource: "volumeattachments"}:       {strategy: volumeattachment.Strategy, returnDeleted: true, updates: status(volumeattachment.StatusStrategy)},
	{Group: "storage.k8s.io", Resource: "volumeattributesclasses"}: {strategy: volumeattributesclass.Strategy, returnDeleted: true},

	{Group: "storagemigration.k8s.io", Resource: "storageversionmigrations"}: {strategy: storagemigration.Strategy, updates: status(storagemigration.StatusStrategy)},
}

// gated lists resources that kube-apiserver serves only behind a feature
// gate, including ones kubesim does not store yet, so discovery leaves
// them out exactly when kube-apiserver does.
var gated = map[schema.GroupResource]featuregate.Feature{
	{Group: "certificates.k8s.io", Resource: "clustertrustbundles"}:    features.ClusterTrustBundle,
	{Group: "certificates.k8s.io", Resource: "podcertificaterequests"}: features.PodCertificateRequest,
}

func enabled(gr schema.GroupResource) bool {
	if g, ok := gated[gr]; ok {
		return utilfeature.DefaultFeatureGate.Enabled(g)
	}
	return true
}
