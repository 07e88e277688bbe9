package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/wait"
	apfbootstrap "k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
	"k8s.io/apiserver/pkg/registry/rest"
	utilflowcontrol "k8s.io/apiserver/pkg/util/flowcontrol"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	schedulingapiv1 "k8s.io/kubernetes/pkg/apis/scheduling/v1"
	"k8s.io/kubernetes/pkg/controlplane/controller/defaultservicecidr"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/apiserver/registry"
)

// apfProducer is the field manager of kube-apiserver's API Priority and
// Fairness bootstrap configuration (ensurer.fieldManager).
const apfProducer = "api-priority-and-fairness-config-producer-v1"

// serviceCIDRController is the field manager of kube-apiserver's default
// ServiceCIDR controller (unexported upstream).
const serviceCIDRController = "kubernetes-service-cidr-controller"

// loopbackManager is the field manager of what kube-apiserver creates
// through its loopback client: its user agent's command.
const loopbackManager = "kube-apiserver"

// bootstrapObject is an object kube-apiserver creates at start.
type bootstrapObject struct {
	resource  schema.GroupResource
	namespace string
	obj       runtime.Object
	// manager is the field manager that creates it: kube-apiserver (its
	// loopback client's user agent) unless set.
	manager string
	// statusManager, if set, applies obj's status (through the status
	// subresource, server-side) after it is created, as the controller
	// that creates it does.
	statusManager string
}

// bootstrapObjects are what kube-apiserver creates at start, from the same
// upstream data: the system namespaces, the RBAC bootstrap policy, the
// system priority classes, the API priority and fairness configuration
// (its FlowSchemas with the status its consumer gives them), the legacy
// token tracking ConfigMap, the default ServiceCIDR and the kubernetes
// Service; and the local APIServices (apiServiceObjects). Each object
// existing already is left as it is. New starts creating them in the
// background (startBootstrap), in parts that do not depend on each other;
// Start waits for them.
func (s *Server) bootstrapObjects() []bootstrapObject {
	return append(bootstrapClusterRoles(), s.bootstrapOthers()...)
}

// bootstrapClusterRoles are the RBAC bootstrap policy's ClusterRoles,
// about a third of the bootstrap's work, created beside the rest
// (bootstrapOthers).
func bootstrapClusterRoles() []bootstrapObject {
	// As kube-apiserver's RBAC post-start hook: the cluster policy and the
	// controllers' roles.
	clusterRoles := append(bootstrappolicy.ClusterRoles(), bootstrappolicy.ControllerRoles()...)
	out := make([]bootstrapObject, len(clusterRoles))
	for i := range clusterRoles {
		out[i] = bootstrapObject{resource: schema.GroupResource{Group: rbacGroup, Resource: "clusterroles"}, obj: &clusterRoles[i]}
	}
	return out
}

const rbacGroup = "rbac.authorization.k8s.io"

// bootstrapOthers are the bootstrap objects but the ClusterRoles and the
// APIServices.
func (s *Server) bootstrapOthers() []bootstrapObject {
	var out []bootstrapObject
	add := func(group, resource, namespace string, obj runtime.Object) {
		out = append(out, bootstrapObject{resource: schema.GroupResource{Group: group, Resource: resource}, namespace: namespace, obj: obj})
	}
	for _, name := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease} {
		add("", "namespaces", "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}

	clusterRoleBindings := append(bootstrappolicy.ClusterRoleBindings(), bootstrappolicy.ControllerRoleBindings()...)
	for i := range clusterRoleBindings {
		add(rbacGroup, "clusterrolebindings", "", &clusterRoleBindings[i])
	}
	for ns, roles := range bootstrappolicy.NamespaceRoles() {
		for i := range roles {
			add(rbacGroup, "roles", ns, &roles[i])
		}
	}
	for ns, bindings := range bootstrappolicy.NamespaceRoleBindings() {
		for i := range bindings {
			add(rbacGroup, "rolebindings", ns, &bindings[i])
		}
	}

	for _, pc := range schedulingapiv1.SystemPriorityClasses() {
		add("scheduling.k8s.io", "priorityclasses", "", pc)
	}

	const apf = "flowcontrol.apiserver.k8s.io"
	// As kube-apiserver's APF configuration producer writes them, with its
	// field manager.
	levels := map[string]bool{}
	for _, plc := range append(apfbootstrap.MandatoryPriorityLevelConfigurations, apfbootstrap.SuggestedPriorityLevelConfigurations...) {
		add(apf, "prioritylevelconfigurations", "", plc.DeepCopy())
		out[len(out)-1].manager = apfProducer
		levels[plc.Name] = true
	}
	for _, fs := range append(apfbootstrap.MandatoryFlowSchemas, apfbootstrap.SuggestedFlowSchemas...) {
		fs = fs.DeepCopy()
		add(apf, "flowschemas", "", fs)
		out[len(out)-1].manager = apfProducer
		if s.flowControl == nil {
			continue
		}
		// With the Dangling condition the configuration consumer would
		// apply at once (utilflowcontrol's presyncFlowSchemaStatus): it
		// then has nothing to write.
		out[len(out)-1].statusManager = utilflowcontrol.ConfigConsumerAsFieldManager
		fs.Status.Conditions = []flowcontrolv1.FlowSchemaCondition{danglingCondition(fs.Spec.PriorityLevelConfiguration.Name, !levels[fs.Spec.PriorityLevelConfiguration.Name], s.cfg.Clock.Now())}
	}

	add("", "configmaps", metav1.NamespaceSystem, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-legacy-service-account-token-tracking", Namespace: metav1.NamespaceSystem},
		Data:       map[string]string{"since": s.cfg.Clock.Now().UTC().Format("2006-01-02")},
	})

	// The default ServiceCIDR, as kube-apiserver's default ServiceCIDR
	// controller creates it and sets it Ready before the server is ready.
	if _, cidr, err := net.ParseCIDR(s.cfg.Services.ClusterIPRange); err == nil {
		out = append(out, bootstrapObject{resource: schema.GroupResource{Group: "networking.k8s.io", Resource: "servicecidrs"}, statusManager: serviceCIDRController, obj: &networkingv1.ServiceCIDR{
			ObjectMeta: metav1.ObjectMeta{Name: defaultservicecidr.DefaultServiceCIDRName},
			Spec:       networkingv1.ServiceCIDRSpec{CIDRs: []string{cidr.String()}},
			Status: networkingv1.ServiceCIDRStatus{Conditions: []metav1.Condition{{
				Type: networkingv1.ServiceCIDRConditionReady, Status: metav1.ConditionTrue,
				Message:            "Kubernetes default Service CIDR is ready",
				LastTransitionTime: metav1.NewTime(s.cfg.Clock.Now()),
			}}},
		}})
	}

	_, port, _ := net.SplitHostPort(s.Address())
	p, _ := strconv.Atoi(port)
	add("", "services", metav1.NamespaceDefault, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault, Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		// As kube-apiserver's kubernetes Service controller writes it.
		Spec: corev1.ServiceSpec{
			Type:            corev1.ServiceTypeClusterIP,
			ClusterIP:       s.registry.KubernetesServiceIP(),
			IPFamilyPolicy:  ptr.To(corev1.IPFamilyPolicySingleStack),
			SessionAffinity: corev1.ServiceAffinityNone,
			Ports:           []corev1.ServicePort{{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(int32(p))}},
		},
	})
	return out
}

// apiServiceObjects are the APIServices of the group versions the server
// serves, as the aggregator's autoregister controller creates them (local
// ones are Available once created): it then finds them as it wants them.
// They are bootstrapped once the aggregator is built, the other objects
// from the registry's build on.
func (s *Server) apiServiceObjects() []bootstrapObject {
	if s.aggregator == nil {
		return nil
	}
	var out []bootstrapObject
	for _, svc := range s.aggregator.onStart {
		out = append(out, bootstrapObject{resource: schema.GroupResource{Group: "apiregistration.k8s.io", Resource: "apiservices"}, obj: svc.DeepCopy()})
	}
	return out
}

// danglingCondition is the FlowSchema condition API Priority and
// Fairness's configuration consumer writes for a FlowSchema that names the
// priority level plName (utilflowcontrol's presyncFlowSchemaStatus).
func danglingCondition(plName string, dangling bool, now time.Time) flowcontrolv1.FlowSchemaCondition {
	c := flowcontrolv1.FlowSchemaCondition{Type: flowcontrolv1.FlowSchemaConditionDangling, LastTransitionTime: metav1.NewTime(now),
		Status: flowcontrolv1.ConditionFalse, Reason: "Found",
		Message: fmt.Sprintf("This FlowSchema references the PriorityLevelConfiguration object named %q and it exists", plName)}
	if dangling {
		c.Status, c.Reason = flowcontrolv1.ConditionTrue, "NotFound"
		c.Message = fmt.Sprintf("This FlowSchema references the PriorityLevelConfiguration object named %q but there is no such object", plName)
	}
	return c
}

// bootstrapRun creates bootstrap objects in the background, for New, which
// starts it, and Start, which waits for it.
type bootstrapRun struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	// done are the objects created or found existing.
	done []bootstrapRef
}

// bootstrapObjectHook, when set, is called before each bootstrap object is
// created (tests).
var bootstrapObjectHook atomic.Pointer[func(bootstrapObject)]

// bootstrapRef names a bootstrap object for the informers of its type
// (waitBootstrapSeen).
type bootstrapRef struct {
	typ reflect.Type // the versioned type, as informer factories key theirs
	gvr schema.GroupVersionResource
	key string // namespace/name, or name
}

// startBootstrap creates the objects objs gives (bootstrapObjects) in the
// background.
func (s *Server) startBootstrap(objs func() []bootstrapObject) {
	b := &s.bootstrapping
	if b.ctx == nil {
		b.ctx, b.cancel = context.WithCancel(context.Background())
	}
	b.wg.Go(func() {
		for _, o := range objs() {
			manager := o.manager
			if manager == "" {
				manager = loopbackManager
			}
			ref, err := newBootstrapRef(o)
			if err == nil {
				err = b.ctx.Err()
			}
			if err == nil {
				if hook := bootstrapObjectHook.Load(); hook != nil {
					(*hook)(o)
				}
				err = s.createVersioned(b.ctx, o.resource, o.namespace, o.obj, manager, o.statusManager)
			}
			b.mu.Lock()
			if err != nil && b.err == nil {
				b.err = err
			}
			if err == nil {
				b.done = append(b.done, ref)
			}
			b.mu.Unlock()
			if err != nil {
				return
			}
		}
	})
}

// wait waits for what startBootstrap started and returns its first error.
func (b *bootstrapRun) wait() error {
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// bootstrap waits until the bootstrap objects New started creating are
// created; when ctx ends first, it stops their creation.
func (s *Server) bootstrap(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.bootstrapping.wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		s.bootstrapping.cancel()
		<-done
		return ctx.Err()
	}
}

func newBootstrapRef(o bootstrapObject) (bootstrapRef, error) {
	gvks, _, err := legacyscheme.Scheme.ObjectKinds(o.obj)
	if err != nil {
		return bootstrapRef{}, err
	}
	a, err := meta.Accessor(o.obj)
	if err != nil {
		return bootstrapRef{}, err
	}
	key := a.GetName()
	if o.namespace != "" {
		key = o.namespace + "/" + key
	}
	return bootstrapRef{typ: reflect.TypeOf(o.obj), gvr: gvks[0].GroupVersion().WithResource(o.resource.Resource), key: key}, nil
}

// waitBootstrapSeen waits until each of the server's informers in started
// holds every bootstrap object of its type. The informers start beside the
// bootstrap's end (Start): the list they synced with may be from before
// some were created, which their watches then bring.
func (s *Server) waitBootstrapSeen(ctx context.Context, started map[reflect.Type]bool) error {
	b := &s.bootstrapping
	b.mu.Lock()
	refs := slices.Clone(b.done)
	b.mu.Unlock()
	for _, r := range refs {
		if !started[r.typ] {
			continue
		}
		informer, err := s.informers.ForResource(r.gvr)
		if err != nil {
			continue
		}
		indexer := informer.Informer().GetIndexer()
		if err := wait.PollUntilContextCancel(ctx, time.Millisecond, true, func(context.Context) (bool, error) {
			_, ok, _ := indexer.GetByKey(r.key)
			return ok, nil
		}); err != nil {
			return fmt.Errorf("the API server's %v informer has not seen %s: %w", r.typ, r.key, ctx.Err())
		}
	}
	return nil
}

// builtFieldManager is the field manager of gvr's subresource once the API
// endpoints are built (beside the bootstrap), nil if they are not or ctx
// ends first.
func (s *Server) builtFieldManager(ctx context.Context, gvr schema.GroupVersionResource, subresource string) *managedfields.FieldManager {
	select {
	case <-s.apiBuilt:
	case <-ctx.Done():
		return nil
	}
	if s.api == nil {
		return nil
	}
	return s.api.fieldManager(gvr, subresource)
}

// closeOnce closes ch unless it is closed; one goroutine closes it.
func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// statusStorage is the status subresource of gr.
func (s *Server) statusStorage(gr schema.GroupResource) rest.Updater {
	for _, g := range append([]*registry.Group{s.registry.Core}, s.registry.Groups...) {
		if g.Name != gr.Group {
			continue
		}
		for _, gv := range g.Versions {
			for _, ep := range gv.Endpoints {
				if ep.Resource == gr.Resource && ep.Subresource == "status" {
					if u, ok := ep.Storage.(rest.Updater); ok {
						return u
					}
				}
			}
		}
	}
	return nil
}

// createVersioned creates a versioned object in-process as a create by
// manager would: defaulted, converted to the internal version, its
// managedFields written by the endpoint's field manager, through the store.
// With statusManager, its status is then applied as statusManager's
// server-side apply of the status subresource would.
func (s *Server) createVersioned(ctx context.Context, gr schema.GroupResource, namespace string, obj runtime.Object, manager, statusManager string) error {
	gvks, _, err := legacyscheme.Scheme.ObjectKinds(obj)
	if err != nil {
		return err
	}
	legacyscheme.Scheme.Default(obj)
	internal, err := legacyscheme.Scheme.ConvertToVersion(obj, schema.GroupVersion{Group: gvks[0].Group, Version: runtime.APIVersionInternal})
	if err != nil {
		return err
	}
	store := s.registry.Stores[gr]
	if store == nil {
		return fmt.Errorf("unable to bootstrap %s: not served", gr)
	}
	// Kept from an earlier start (durable storage) or made by another API
	// server on the same etcd: left as it is, as kube-apiserver's
	// bootstrap controllers leave what exists.
	if a, err := meta.Accessor(internal); err == nil {
		if _, err := store.Get(requestContext(ctx, "get", gvks[0].Group, gvks[0].Version, gr.Resource, namespace), a.GetName(), &metav1.GetOptions{}); err == nil {
			return nil
		}
	}
	gvr := gvks[0].GroupVersion().WithResource(gr.Resource)
	toCreate, err := s.withManagedFields(ctx, gvks[0], gvr, internal, manager)
	if err != nil {
		return err
	}
	created, err := store.Create(requestContext(ctx, "create", gvks[0].Group, gvks[0].Version, gr.Resource, namespace), toCreate, nil, &metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unable to bootstrap %s %s: %w", gr, namespace, err)
	}
	if statusManager == "" {
		return nil
	}
	status := s.statusStorage(gr)
	if status == nil {
		return fmt.Errorf("unable to bootstrap %s: no status subresource", gr)
	}
	createdMeta, err := meta.Accessor(created)
	if err != nil {
		return err
	}
	name := createdMeta.GetName()
	// The status as given, applied to the object as created: the managed
	// fields that gives are the same at every start (bootstrapFields).
	key := bootstrapFieldsKey{kind: gvks[0], namespace: namespace, name: name, manager: statusManager, subresource: "status"}
	applied := created.DeepCopyObject()
	cached, ok := bootstrapFields.Load(key)
	var patch *unstructured.Unstructured
	var digest string
	if !ok {
		// The apply's managed fields follow from the patch (from obj)
		// and the object's managed fields as created.
		digest = bootstrapDigest(obj, withoutTimes(createdMeta.GetManagedFields()))
		if fields, found := generatedFields(key, digest); found {
			bootstrapFields.Store(key, fields)
			cached, ok = fields, true
		}
	}
	if ok && copyStatus(applied, internal) {
		appliedMeta, err := meta.Accessor(applied)
		if err != nil {
			return err
		}
		appliedMeta.SetManagedFields(freshManagedFields(cached.([]metav1.ManagedFieldsEntry)))
	} else {
		fm := s.builtFieldManager(ctx, gvr, "status")
		if fm == nil {
			return fmt.Errorf("unable to bootstrap the status of %s %s: no field manager", gr, name)
		}
		if patch == nil {
			if patch, err = statusPatch(obj, gvks[0], name); err != nil {
				return err
			}
		}
		if applied, err = fm.Apply(created, patch, statusManager, true); err != nil {
			return fmt.Errorf("unable to bootstrap the status of %s %s: %w", gr, name, err)
		}
		if appliedMeta, err := meta.Accessor(applied); err == nil {
			fields := copyManagedFields(appliedMeta.GetManagedFields())
			bootstrapFields.Store(key, fields)
			if digest != "" {
				computedFields(key, digest, fields)
			}
		}
	}
	if _, _, err := status.Update(requestContext(ctx, "update", gvks[0].Group, gvks[0].Version, gr.Resource, namespace), name,
		rest.DefaultUpdatedObjectInfo(applied), nil, nil, false, &metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("unable to bootstrap the status of %s %s: %w", gr, name, err)
	}
	return nil
}

// bootstrapFields keeps, for the process, the managedFields the field
// managers gave the bootstrap objects, so that the clusters an operator's
// suite starts one after another do not compute them again. A bootstrap
// object has the same fields at every start: some values differ (the
// Service's target port, the ServiceCIDR's range, a date), but no field and
// no key of a keyed list does, and managedFields record only those.
var bootstrapFields sync.Map // bootstrapFieldsKey -> []metav1.ManagedFieldsEntry

type bootstrapFieldsKey struct {
	kind                     schema.GroupVersionKind
	namespace, name, manager string
	// subresource is "status" for the managed fields after the status is
	// applied.
	subresource string
}

// withManagedFields is a copy of internal with the managedFields the create
// handler of kind's resource gives it when manager creates it: an Update of
// an empty object (computed once per process, see bootstrapFields).
func (s *Server) withManagedFields(ctx context.Context, kind schema.GroupVersionKind, gvr schema.GroupVersionResource, internal runtime.Object, manager string) (runtime.Object, error) {
	out := internal.DeepCopyObject()
	outMeta, err := meta.Accessor(out)
	if err != nil {
		return nil, err
	}
	key := bootstrapFieldsKey{kind: kind, namespace: outMeta.GetNamespace(), name: outMeta.GetName(), manager: manager}
	if cached, ok := bootstrapFields.Load(key); ok {
		outMeta.SetManagedFields(freshManagedFields(cached.([]metav1.ManagedFieldsEntry)))
		return out, nil
	}
	digest := bootstrapDigest(internal)
	if fields, ok := generatedFields(key, digest); ok {
		bootstrapFields.Store(key, fields)
		outMeta.SetManagedFields(freshManagedFields(fields))
		return out, nil
	}
	// Not computed yet in this process: the create handler's field
	// manager, once built.
	fm := s.builtFieldManager(ctx, gvr, "")
	if fm == nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return out, nil
	}
	live, err := legacyscheme.Scheme.New(kind)
	if err != nil {
		return nil, err
	}
	out = fm.UpdateNoErrors(live, out, manager)
	if outMeta, err = meta.Accessor(out); err != nil {
		return nil, err
	}
	if fields := copyManagedFields(outMeta.GetManagedFields()); len(fields) > 0 {
		bootstrapFields.Store(key, fields)
		computedFields(key, digest, fields)
	}
	return out, nil
}

// statusPatch is the apply configuration of obj's status (kind, named
// name), as a controller applies it.
func statusPatch(obj runtime.Object, kind schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
	versioned, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	// An apply configuration has no empty strings (the condition's reason
	// is unset in the controller's).
	patch := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": name}, "status": withoutEmptyStrings(versioned["status"])}}
	patch.SetGroupVersionKind(kind)
	return patch, nil
}

// bootstrapDigest identifies what a bootstrap object's managed fields are
// computed from: the field managers give the same fields for the same
// content. Times are left out (a condition's is the time of the start):
// their values are never keys, and only keys and the fields present make
// managed fields; whether a time is set is kept.
func bootstrapDigest(content ...any) string {
	var b []byte
	for _, c := range content {
		b = digestValue(b, reflect.ValueOf(c))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

var (
	timeType      = reflect.TypeFor[metav1.Time]()
	microTimeType = reflect.TypeFor[metav1.MicroTime]()
)

// digestValue appends v, its structure and its values, to b, which is then
// hashed in one call (a call per value, through hash.Hash, was half of the
// first bootstrap's digests).
func digestValue(b []byte, v reflect.Value) []byte {
	appendString := func(b []byte, s string) []byte {
		return append(binary.LittleEndian.AppendUint64(b, uint64(len(s))), s...)
	}
	if !v.IsValid() {
		return append(b, '0')
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, 'n')
		}
		b = append(b, 'p')
		b = digestValue(b, v.Elem())
	case reflect.Struct:
		t := v.Type()
		if t == timeType || t == microTimeType {
			return append(b, 't', byte('0'+btoi(v.Field(0).Interface().(time.Time).IsZero())))
		}
		b = append(b, '{')
		for i := range v.NumField() {
			b = appendString(b, t.Field(i).Name)
			b = digestValue(b, v.Field(i))
		}
		b = append(b, '}')
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return append(b, 'n')
		}
		b = append(b, '[')
		b = binary.LittleEndian.AppendUint64(b, uint64(v.Len()))
		for i := range v.Len() {
			b = digestValue(b, v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			return append(b, 'n')
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		b = append(b, 'm')
		b = binary.LittleEndian.AppendUint64(b, uint64(len(keys)))
		for _, k := range keys {
			b = digestValue(b, k)
			b = digestValue(b, v.MapIndex(k))
		}
	case reflect.String:
		b = append(b, 's')
		b = appendString(b, v.String())
	case reflect.Bool:
		b = append(b, 'b', byte('0'+btoi(v.Bool())))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b = append(b, 'i')
		b = binary.LittleEndian.AppendUint64(b, uint64(v.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		b = append(b, 'u')
		b = binary.LittleEndian.AppendUint64(b, v.Uint())
	case reflect.Float32, reflect.Float64:
		b = append(b, 'f')
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Float()))
	default:
		// Channels, functions: not in API objects.
		b = append(b, '?')
		b = appendString(b, v.Type().String())
	}
	return b
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// withoutTimes is a copy of fields without their times.
func withoutTimes(fields []metav1.ManagedFieldsEntry) []metav1.ManagedFieldsEntry {
	out := copyManagedFields(fields)
	for i := range out {
		out[i].Time = nil
	}
	return out
}

// generatedFields returns the managed fields zz_generated.bootstrapfields.go
// holds for key computed from content of digest: what the field managers
// gave the bootstrap objects of the default configuration, so that a
// process's first start does not compute them (a third of its bootstrap's
// CPU). TestGeneratedBootstrapFields keeps the file current.
func generatedFields(key bootstrapFieldsKey, digest string) ([]metav1.ManagedFieldsEntry, bool) {
	if hooks := bootstrapFieldsHooks.Load(); hooks != nil && hooks.computeAll {
		return nil, false
	}
	g, ok := generatedBootstrapIndex()[key]
	if !ok || g.digest != digest {
		return nil, false
	}
	fields := make([]metav1.ManagedFieldsEntry, len(g.fields))
	for i, f := range g.fields {
		fields[i] = metav1.ManagedFieldsEntry{Manager: f.manager, Operation: metav1.ManagedFieldsOperationType(f.operation), APIVersion: f.apiVersion,
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(f.fieldsV1)}, Subresource: f.subresource}
	}
	return fields, true
}

// generatedBootstrapIndex indexes generatedBootstrapFields by key.
var generatedBootstrapIndex = sync.OnceValue(func() map[bootstrapFieldsKey]*generatedBootstrapEntry {
	m := make(map[bootstrapFieldsKey]*generatedBootstrapEntry, len(generatedBootstrapFields))
	for i := range generatedBootstrapFields {
		g := &generatedBootstrapFields[i]
		m[bootstrapFieldsKey{kind: g.kind, namespace: g.namespace, name: g.name, manager: g.manager, subresource: g.subresource}] = g
	}
	return m
})

type generatedBootstrapEntry struct {
	kind                                          schema.GroupVersionKind
	namespace, name, manager, subresource, digest string
	fields                                        []generatedManagedField
}

type generatedManagedField struct {
	manager, operation, apiVersion, subresource, fieldsV1 string
}

// bootstrapFieldsHooks lets TestGeneratedBootstrapFields compute every
// object's managed fields and see them.
var bootstrapFieldsHooks atomic.Pointer[bootstrapFieldsHook]

type bootstrapFieldsHook struct {
	computeAll bool
	computed   func(key bootstrapFieldsKey, digest string, fields []metav1.ManagedFieldsEntry) // called from the bootstrap's goroutines
}

// computedFields tells the hook of fields computed for key.
func computedFields(key bootstrapFieldsKey, digest string, fields []metav1.ManagedFieldsEntry) {
	if hooks := bootstrapFieldsHooks.Load(); hooks != nil && hooks.computed != nil {
		hooks.computed(key, digest, fields)
	}
}

// copyManagedFields is a deep copy of fields, to keep in bootstrapFields.
func copyManagedFields(fields []metav1.ManagedFieldsEntry) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for _, f := range fields {
		out = append(out, *f.DeepCopy())
	}
	return out
}

// freshManagedFields is a copy of the managed fields kept in
// bootstrapFields, written now.
func freshManagedFields(cached []metav1.ManagedFieldsEntry) []metav1.ManagedFieldsEntry {
	now := metav1.NewTime(time.Now().UTC())
	fields := make([]metav1.ManagedFieldsEntry, len(cached))
	for i, f := range cached {
		f.DeepCopyInto(&fields[i])
		fields[i].Time = &now
	}
	return fields
}

// copyStatus sets to's Status field to from's, both pointers to the same
// API type (the status the bootstrap applies, onto the object as created);
// false if they have none.
func copyStatus(to, from runtime.Object) bool {
	t, f := reflect.ValueOf(to), reflect.ValueOf(from)
	if t.Kind() != reflect.Pointer || t.Type() != f.Type() {
		return false
	}
	ts, fs := t.Elem().FieldByName("Status"), f.Elem().FieldByName("Status")
	if !ts.IsValid() || !ts.CanSet() {
		return false
	}
	ts.Set(fs)
	return true
}

// withoutEmptyStrings is v without the map entries whose value is "", at any
// depth.
func withoutEmptyStrings(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if e != "" {
				out[k] = withoutEmptyStrings(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = withoutEmptyStrings(e)
		}
		return out
	}
	return v
}
