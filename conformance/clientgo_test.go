package conformance_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	resourcev1 "k8s.io/api/resource/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// typedClient is what every typed client-go client offers for one kind.
type typedClient[T runtime.Object] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
	Get(context.Context, string, metav1.GetOptions) (T, error)
	Update(context.Context, T, metav1.UpdateOptions) (T, error)
	Delete(context.Context, string, metav1.DeleteOptions) error
}

// crud creates, reads, updates and deletes obj through a typed client.
func crud[T runtime.Object](ctx context.Context, c typedClient[T], obj T) {
	GinkgoHelper()
	m, err := meta.Accessor(obj)
	Expect(err).NotTo(HaveOccurred())
	kind := fmt.Sprintf("%T %s", obj, m.GetName())

	created, err := c.Create(ctx, obj, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred(), "create %s", kind)
	cm, _ := meta.Accessor(created)
	Expect(cm.GetUID()).NotTo(BeEmpty(), kind)
	Expect(cm.GetResourceVersion()).NotTo(BeEmpty(), kind)
	ts := cm.GetCreationTimestamp()
	Expect(ts.IsZero()).To(BeFalse(), kind)

	_, err = c.Create(ctx, obj, metav1.CreateOptions{})
	Expect(apierrors.IsAlreadyExists(err)).To(BeTrue(), "second create of %s: %v", kind, err)

	var got, updated T
	var gm metav1.Object
	// Controllers may write status concurrently (the reference's
	// priority-and-fairness controller does): retry on conflicts, as any
	// client must.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		if got, err = c.Get(ctx, m.GetName(), metav1.GetOptions{}); err != nil {
			return err
		}
		gm, _ = meta.Accessor(got)
		labels := gm.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels["crud"] = "updated"
		gm.SetLabels(labels)
		updated, err = c.Update(ctx, got, metav1.UpdateOptions{})
		return err
	})
	Expect(err).NotTo(HaveOccurred(), "update %s", kind)
	Expect(gm.GetUID()).To(Equal(cm.GetUID()), kind)
	um, _ := meta.Accessor(updated)
	Expect(um.GetLabels()).To(HaveKeyWithValue("crud", "updated"), kind)
	Expect(um.GetResourceVersion()).NotTo(Equal(gm.GetResourceVersion()), kind)

	// An update from the stale copy conflicts.
	_, err = c.Update(ctx, got, metav1.UpdateOptions{})
	Expect(apierrors.IsConflict(err)).To(BeTrue(), "stale update of %s: %v", kind, err)

	// Background propagation, as kubectl deletes: core/v1
	// ReplicationControllers default to orphaning, which leaves a finalizer
	// for the garbage collector.
	background := metav1.DeletePropagationBackground
	Expect(c.Delete(ctx, m.GetName(), metav1.DeleteOptions{PropagationPolicy: &background})).To(Succeed(), "delete %s", kind)
	// Objects that admission gave finalizers (PV and PVC protection) wait
	// for their controllers; the spec removes the finalizers as they would.
	Eventually(func() error {
		obj, err := c.Get(ctx, m.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if om, _ := meta.Accessor(obj); om.GetDeletionTimestamp() != nil && len(om.GetFinalizers()) > 0 {
			om.SetFinalizers(nil)
			if _, err := c.Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
		return fmt.Errorf("%s still exists", kind)
	}).WithTimeout(10*time.Second).Should(Satisfy(apierrors.IsNotFound), kind)
}

// must returns v, failing the spec on err.
func must[T any](v T, err error) T {
	GinkgoHelper()
	Expect(err).NotTo(HaveOccurred())
	return v
}

// apiutil is the group, version and kind of a typed object.
func apiutil(obj runtime.Object) (schema.GroupVersionKind, error) {
	gvks, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil {
		return schema.GroupVersionKind{}, err
	}
	return gvks[0], nil
}

// informerLog records the events informers deliver for a spec's objects, by
// "resource.group/name".
type informerLog struct {
	mu     sync.Mutex
	events map[string][]string
}

// handler records the events of one resource's objects that belong to the
// spec: in namespace ns, or cluster-scoped and named with suffix (or ip).
func (l *informerLog) handler(resource, ns, suffix, ip string) cache.ResourceEventHandler {
	record := func(obj any, what string) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return
		}
		if m.GetNamespace() != ns && !strings.HasSuffix(m.GetName(), suffix) && m.GetName() != ip {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		key := resource + "/" + m.GetName()
		// Updates are recorded once per distinct label value: finalizer
		// removal and status writes are updates too.
		if what == "update" {
			what = "update crud=" + m.GetLabels()["crud"]
			if what == "update crud=" || slices.Contains(l.events[key], what) {
				return
			}
		}
		l.events[key] = append(l.events[key], what)
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { record(obj, "add") },
		UpdateFunc: func(_, obj any) { record(obj, "update") },
		DeleteFunc: func(obj any) { record(obj, "delete") },
	}
}

func (l *informerLog) of(key string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events[key])
}

// manifestObjects decodes the GA manifest set into typed objects.
func manifestObjects() []runtime.Object {
	GinkgoHelper()
	var out []runtime.Object
	files, err := filepath.Glob(testdata("manifests", "ga", "*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	for _, f := range files {
		b, err := os.ReadFile(f)
		Expect(err).NotTo(HaveOccurred())
		for _, doc := range strings.Split(string(b), "\n---\n") {
			js, err := utilyaml.ToJSON([]byte(doc))
			Expect(err).NotTo(HaveOccurred())
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil)
			Expect(err).NotTo(HaveOccurred(), "decode %s", doc)
			out = append(out, obj)
		}
	}
	return out
}

// typedCRUD dispatches obj to the typed client of its kind.
func typedCRUD(ctx context.Context, cs kubernetes.Interface, obj runtime.Object, ns string) bool {
	GinkgoHelper()
	switch o := obj.(type) {
	case *corev1.Namespace:
		crud(ctx, cs.CoreV1().Namespaces(), o)
	case *corev1.ConfigMap:
		crud(ctx, cs.CoreV1().ConfigMaps(ns), o)
	case *corev1.Secret:
		crud(ctx, cs.CoreV1().Secrets(ns), o)
	case *corev1.ServiceAccount:
		crud(ctx, cs.CoreV1().ServiceAccounts(ns), o)
	case *corev1.Service:
		crud(ctx, cs.CoreV1().Services(ns), o)
	case *corev1.Endpoints:
		crud(ctx, cs.CoreV1().Endpoints(ns), o) //nolint:staticcheck // Endpoints is still GA
	case *corev1.Pod:
		crud(ctx, cs.CoreV1().Pods(ns), o)
	case *corev1.PodTemplate:
		crud(ctx, cs.CoreV1().PodTemplates(ns), o)
	case *corev1.ReplicationController:
		crud(ctx, cs.CoreV1().ReplicationControllers(ns), o)
	case *corev1.LimitRange:
		crud(ctx, cs.CoreV1().LimitRanges(ns), o)
	case *corev1.ResourceQuota:
		crud(ctx, cs.CoreV1().ResourceQuotas(ns), o)
	case *corev1.PersistentVolume:
		crud(ctx, cs.CoreV1().PersistentVolumes(), o)
	case *corev1.PersistentVolumeClaim:
		crud(ctx, cs.CoreV1().PersistentVolumeClaims(ns), o)
	case *corev1.Event:
		crud(ctx, cs.CoreV1().Events(ns), o)
	case *corev1.Node:
		crud(ctx, cs.CoreV1().Nodes(), o)
	case *appsv1.Deployment:
		crud(ctx, cs.AppsV1().Deployments(ns), o)
	case *appsv1.ReplicaSet:
		crud(ctx, cs.AppsV1().ReplicaSets(ns), o)
	case *appsv1.StatefulSet:
		crud(ctx, cs.AppsV1().StatefulSets(ns), o)
	case *appsv1.DaemonSet:
		crud(ctx, cs.AppsV1().DaemonSets(ns), o)
	case *appsv1.ControllerRevision:
		crud(ctx, cs.AppsV1().ControllerRevisions(ns), o)
	case *batchv1.Job:
		crud(ctx, cs.BatchV1().Jobs(ns), o)
	case *batchv1.CronJob:
		crud(ctx, cs.BatchV1().CronJobs(ns), o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		crud(ctx, cs.AutoscalingV2().HorizontalPodAutoscalers(ns), o)
	case *policyv1.PodDisruptionBudget:
		crud(ctx, cs.PolicyV1().PodDisruptionBudgets(ns), o)
	case *networkingv1.IngressClass:
		crud(ctx, cs.NetworkingV1().IngressClasses(), o)
	case *networkingv1.Ingress:
		crud(ctx, cs.NetworkingV1().Ingresses(ns), o)
	case *networkingv1.NetworkPolicy:
		crud(ctx, cs.NetworkingV1().NetworkPolicies(ns), o)
	case *networkingv1.ServiceCIDR:
		crud(ctx, cs.NetworkingV1().ServiceCIDRs(), o)
	case *discoveryv1.EndpointSlice:
		crud(ctx, cs.DiscoveryV1().EndpointSlices(ns), o)
	case *coordinationv1.Lease:
		crud(ctx, cs.CoordinationV1().Leases(ns), o)
	case *schedulingv1.PriorityClass:
		crud(ctx, cs.SchedulingV1().PriorityClasses(), o)
	case *nodev1.RuntimeClass:
		crud(ctx, cs.NodeV1().RuntimeClasses(), o)
	case *storagev1.StorageClass:
		crud(ctx, cs.StorageV1().StorageClasses(), o)
	case *storagev1.CSIDriver:
		crud(ctx, cs.StorageV1().CSIDrivers(), o)
	case *storagev1.CSINode:
		crud(ctx, cs.StorageV1().CSINodes(), o)
	case *storagev1.VolumeAttachment:
		crud(ctx, cs.StorageV1().VolumeAttachments(), o)
	case *storagev1.VolumeAttributesClass:
		crud(ctx, cs.StorageV1().VolumeAttributesClasses(), o)
	case *storagev1.CSIStorageCapacity:
		crud(ctx, cs.StorageV1().CSIStorageCapacities(ns), o)
	case *rbacv1.Role:
		crud(ctx, cs.RbacV1().Roles(ns), o)
	case *rbacv1.RoleBinding:
		crud(ctx, cs.RbacV1().RoleBindings(ns), o)
	case *rbacv1.ClusterRole:
		crud(ctx, cs.RbacV1().ClusterRoles(), o)
	case *rbacv1.ClusterRoleBinding:
		crud(ctx, cs.RbacV1().ClusterRoleBindings(), o)
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		crud(ctx, cs.AdmissionregistrationV1().ValidatingAdmissionPolicies(), o)
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		crud(ctx, cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings(), o)
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		crud(ctx, cs.AdmissionregistrationV1().ValidatingWebhookConfigurations(), o)
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		crud(ctx, cs.AdmissionregistrationV1().MutatingWebhookConfigurations(), o)
	case *flowcontrolv1.PriorityLevelConfiguration:
		crud(ctx, cs.FlowcontrolV1().PriorityLevelConfigurations(), o)
	case *flowcontrolv1.FlowSchema:
		crud(ctx, cs.FlowcontrolV1().FlowSchemas(), o)
	case *certificatesv1.CertificateSigningRequest:
		crud(ctx, cs.CertificatesV1().CertificateSigningRequests(), o)
	case *resourcev1.DeviceClass:
		crud(ctx, cs.ResourceV1().DeviceClasses(), o)
	case *resourcev1.ResourceClaim:
		crud(ctx, cs.ResourceV1().ResourceClaims(ns), o)
	case *resourcev1.ResourceClaimTemplate:
		crud(ctx, cs.ResourceV1().ResourceClaimTemplates(ns), o)
	case *resourcev1.ResourceSlice:
		crud(ctx, cs.ResourceV1().ResourceSlices(), o)
	case *eventsv1.Event:
		crud(ctx, cs.EventsV1().Events(ns), o)
	case *networkingv1.IPAddress:
		crud(ctx, cs.NetworkingV1().IPAddresses(), o)
	case *storagemigrationv1.StorageVersionMigration:
		crud(ctx, cs.StoragemigrationV1().StorageVersionMigrations(), o)
	case *admissionregistrationv1.MutatingAdmissionPolicy:
		crud(ctx, cs.AdmissionregistrationV1().MutatingAdmissionPolicies(), o)
	case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
		crud(ctx, cs.AdmissionregistrationV1().MutatingAdmissionPolicyBindings(), o)
	case *resourcev1.DeviceTaintRule:
		crud(ctx, cs.ResourceV1().DeviceTaintRules(), o)
	case *certificatesv1.ClusterTrustBundle:
		crud(ctx, cs.CertificatesV1().ClusterTrustBundles(), o)
	default:
		return false
	}
	return true
}

var _ = Describe("client-go", func() {
	DescribeTable("does typed CRUD on every GA kind of the manifest set, seen by a shared informer of each",
		func(ctx SpecContext, contentType, ns, suffix, ip string) {
			cfg := rest.CopyConfig(target.Config)
			cfg.ContentType = contentType
			cfg.AcceptContentTypes = contentType
			cs := kubernetes.NewForConfigOrDie(cfg)
			newNamespace(ctx, ns)
			objs := manifestObjects()
			for _, obj := range objs {
				m, _ := meta.Accessor(obj)
				if m.GetNamespace() != "" {
					m.SetNamespace(ns)
				} else if _, isIP := obj.(*networkingv1.IPAddress); isIP {
					m.SetName(ip) // an IPAddress is named by its address
				} else {
					m.SetName(m.GetName() + suffix) // cluster-scoped: keep clear of the other specs
				}
				// Events must name objects in their own namespace.
				switch e := obj.(type) {
				case *corev1.Event:
					e.InvolvedObject.Namespace = ns
				case *eventsv1.Event:
					e.Regarding.Namespace = ns
				}
			}

			// A shared informer of every kind, over the same content type,
			// records what it sees of the spec's objects.
			mapper := restmapper.NewDiscoveryRESTMapper(must(restmapper.GetAPIGroupResources(cs.Discovery())))
			factory := informers.NewSharedInformerFactory(cs, 0)
			seen := &informerLog{events: map[string][]string{}}
			gvrs := map[schema.GroupVersionResource]bool{}
			for _, obj := range objs {
				gvk := must(apiutil(obj))
				mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				Expect(err).NotTo(HaveOccurred(), "%s", gvk)
				if gvrs[mapping.Resource] {
					continue
				}
				gvrs[mapping.Resource] = true
				inf, err := factory.ForResource(mapping.Resource)
				Expect(err).NotTo(HaveOccurred(), "no informer for %s", mapping.Resource)
				_, err = inf.Informer().AddEventHandler(seen.handler(mapping.Resource.GroupResource().String(), ns, suffix, ip))
				Expect(err).NotTo(HaveOccurred())
			}
			stop := make(chan struct{})
			defer close(stop)
			factory.Start(stop)
			for gvr, ok := range factory.WaitForCacheSync(stop) {
				Expect(ok).To(BeTrue(), "informer of %v synced", gvr)
			}

			kinds := map[string]bool{}
			var want []string
			for _, obj := range objs {
				m, _ := meta.Accessor(obj)
				if sa, isSA := obj.(*corev1.ServiceAccount); isSA && sa.Name == "default" {
					continue // newNamespace made it
				}
				if _, isNS := obj.(*corev1.Namespace); isNS {
					continue // namespaces only finish deleting with the namespace controller
				}
				Expect(typedCRUD(ctx, cs, obj, ns)).To(BeTrue(), "no typed client for %T", obj)
				gvk := must(apiutil(obj))
				kinds[gvk.GroupVersion().String()+"/"+gvk.Kind] = true
				mapping, _ := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				want = append(want, mapping.Resource.GroupResource().String()+"/"+m.GetName())
			}
			// Each informer saw its object added, updated and deleted.
			for _, key := range want {
				Eventually(func() []string { return seen.of(key) }).WithTimeout(10*time.Second).Should(
					Equal([]string{"add", "update crud=updated", "delete"}), "informer events of %s", key)
			}

			if contentType != runtime.ContentTypeJSON {
				return
			}
			// The manifest set covers every stored kind discovery serves.
			notStored := map[string]string{
				"v1/Binding":                                       "create-only, covered by the binding spec",
				"v1/Namespace":                                     "covered by the kubectl specs (deletion needs the namespace controller)",
				"authentication.k8s.io/v1/TokenReview":             "a review, never stored",
				"authentication.k8s.io/v1/SelfSubjectReview":       "a review, never stored",
				"authorization.k8s.io/v1/SubjectAccessReview":      "a review, never stored",
				"authorization.k8s.io/v1/SelfSubjectAccessReview":  "a review, never stored",
				"authorization.k8s.io/v1/LocalSubjectAccessReview": "a review, never stored",
				"authorization.k8s.io/v1/SelfSubjectRulesReview":   "a review, never stored",
				"apiextensions.k8s.io/v1/CustomResourceDefinition": "covered by the CRD specs (its typed client is apiextensions-apiserver's)",
				"apiregistration.k8s.io/v1/APIService":             "covered by the aggregation specs (its typed client is kube-aggregator's)",
				"certificates.k8s.io/v1/PodCertificateRequest":     "needs a pod's signed proof of key possession",
			}
			lists, err := cs.Discovery().ServerPreferredResources()
			Expect(err).NotTo(HaveOccurred())
			for _, l := range lists {
				for _, r := range l.APIResources {
					if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "create") || !slices.Contains(r.Verbs, "get") {
						continue
					}
					key := l.GroupVersion + "/" + r.Kind
					if _, ok := notStored[key]; ok {
						continue
					}
					Expect(kinds).To(HaveKey(key), "the GA manifest set has no %s", key)
				}
			}
		},
		Entry("in JSON", runtime.ContentTypeJSON, "conformance-typed", "-typed", "10.96.250.251"),
		Entry("in protobuf", runtime.ContentTypeProtobuf, "conformance-typed-pb", "-typed-pb", "10.96.250.252"),
	)

	It("does CRUD and selected lists with the dynamic client", func(ctx SpecContext) {
		dyn := target.Dynamic()
		gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
		const ns = "default"
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "dynamic", "labels": map[string]any{"via": "dynamic"}},
			"spec": map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"app": "dynamic"}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "dynamic"}},
					"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "registry.k8s.io/pause:3.10"}}},
				},
			},
		}}
		created, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		replicas, _, _ := unstructured.NestedInt64(created.Object, "spec", "replicas")
		Expect(replicas).To(Equal(int64(1)), "defaulted replicas")

		list, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: "via=dynamic"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))

		Expect(unstructured.SetNestedField(created.Object, int64(2), "spec", "replicas")).To(Succeed())
		updated, err := dyn.Resource(gvr).Namespace(ns).Update(ctx, created, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.GetGeneration()).To(Equal(int64(2)))

		// Status changes through the main resource are ignored...
		Expect(unstructured.SetNestedField(updated.Object, int64(7), "status", "observedGeneration")).To(Succeed())
		ignored, err := dyn.Resource(gvr).Namespace(ns).Update(ctx, updated, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, found, _ := unstructured.NestedInt64(ignored.Object, "status", "observedGeneration")
		Expect(found).To(BeFalse())
		// ...and spec changes through /status.
		Expect(unstructured.SetNestedField(ignored.Object, int64(9), "spec", "replicas")).To(Succeed())
		Expect(unstructured.SetNestedField(ignored.Object, int64(7), "status", "observedGeneration")).To(Succeed())
		status, err := dyn.Resource(gvr).Namespace(ns).UpdateStatus(ctx, ignored, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		og, _, _ := unstructured.NestedInt64(status.Object, "status", "observedGeneration")
		r, _, _ := unstructured.NestedInt64(status.Object, "spec", "replicas")
		Expect([]int64{og, r, status.GetGeneration()}).To(Equal([]int64{7, 2, 2}))

		Expect(dyn.Resource(gvr).Namespace(ns).Delete(ctx, "dynamic", metav1.DeleteOptions{})).To(Succeed())
	})

	It("keeps a shared informer in sync through 10,000 writes, no event missed or repeated", func(ctx SpecContext) {
		cs := target.Clientset()
		const ns, objects, writesEach = "conformance-informer", 2000, 5
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		var mu sync.Mutex
		seen := map[string][]string{} // name -> resourceVersions in event order
		record := func(obj any) {
			cm := obj.(*corev1.ConfigMap)
			mu.Lock()
			seen[cm.Name] = append(seen[cm.Name], cm.ResourceVersion)
			mu.Unlock()
		}
		factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
		inf := factory.Core().V1().ConfigMaps().Informer()
		_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    record,
			UpdateFunc: func(_, obj any) { record(obj) },
			DeleteFunc: func(any) { Fail("no deletes happen") },
		})
		Expect(err).NotTo(HaveOccurred())
		stop := make(chan struct{})
		defer close(stop)
		factory.Start(stop)
		Expect(cache.WaitForCacheSync(stop, inf.HasSynced)).To(BeTrue())

		// 2,000 creates and 8,000 updates from 16 writers.
		written := make([][]string, objects)
		parallel(ctx, objects, func(i int) error {
			name := fmt.Sprintf("cm-%05d", i)
			cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"n": "0"}}, metav1.CreateOptions{})
			if err != nil {
				return err
			}
			written[i] = append(written[i], cm.ResourceVersion)
			for n := 1; n < writesEach; n++ {
				cm.Data["n"] = fmt.Sprint(n)
				if cm, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
					return err
				}
				written[i] = append(written[i], cm.ResourceVersion)
			}
			return nil
		})

		final, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(final.Items).To(HaveLen(objects))
		// The cache converges on the final list...
		Eventually(func() map[string]string {
			out := map[string]string{}
			for _, o := range inf.GetStore().List() {
				cm := o.(*corev1.ConfigMap)
				out[cm.Name] = cm.ResourceVersion
			}
			return out
		}).WithTimeout(60 * time.Second).Should(Equal(func() map[string]string {
			out := map[string]string{}
			for _, cm := range final.Items {
				out[cm.Name] = cm.ResourceVersion
			}
			return out
		}()))
		// ...having seen every write exactly once, in order.
		mu.Lock()
		defer mu.Unlock()
		events := 0
		for i := 0; i < objects; i++ {
			name := fmt.Sprintf("cm-%05d", i)
			Expect(seen[name]).To(Equal(written[i]), name)
			events += len(seen[name])
		}
		Expect(events).To(Equal(objects * writesEach))
	})

	It("paginates 10,000 objects with limit=500, each exactly once, from one snapshot", func(ctx SpecContext) {
		cs := target.Clientset()
		const ns, objects = "conformance-paging", 10000
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		parallel(ctx, objects, func(i int) error {
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("page-%05d", i)}}, metav1.CreateOptions{})
			return err
		})

		var names []string
		opts := metav1.ListOptions{Limit: 500}
		pages, snapshot := 0, ""
		for {
			page, err := cs.CoreV1().ConfigMaps(ns).List(ctx, opts)
			Expect(err).NotTo(HaveOccurred())
			pages++
			if snapshot == "" {
				snapshot = page.ResourceVersion
				// Writes after the first page must not show in later pages.
				_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "page-99999"}}, metav1.CreateOptions{})
				Expect(err).NotTo(HaveOccurred())
				Expect(cs.CoreV1().ConfigMaps(ns).Delete(ctx, "page-00600", metav1.DeleteOptions{})).To(Succeed())
			}
			Expect(page.ResourceVersion).To(Equal(snapshot))
			Expect(len(page.Items)).To(BeNumerically("<=", 500))
			for _, cm := range page.Items {
				names = append(names, cm.Name)
			}
			if page.Continue == "" {
				Expect(page.RemainingItemCount).To(BeNil())
				break
			}
			Expect(*page.RemainingItemCount).To(Equal(int64(objects - len(names))))
			opts.Continue = page.Continue
		}
		Expect(pages).To(Equal(objects / 500))
		Expect(names).To(HaveLen(objects))
		Expect(sort.StringsAreSorted(names)).To(BeTrue())
		unique := map[string]bool{}
		for _, n := range names {
			unique[n] = true
		}
		Expect(unique).To(HaveLen(objects))
		Expect(unique).To(HaveKey("page-00600"))
		Expect(unique).NotTo(HaveKey("page-99999"))
	})
})

// parallel runs fn(0..n-1) on 16 workers and expects every call to succeed.
// A failing call stops the work instead of leaving the feeder blocked.
func parallel(ctx context.Context, n int, fn func(i int) error) {
	GinkgoHelper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(i); err != nil {
					errs <- fmt.Errorf("item %d: %w", i, err)
					cancel()
					return
				}
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		Expect(err).NotTo(HaveOccurred())
	}
}
