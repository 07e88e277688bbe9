package apiserver

import (
	"context"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	aggregatorclient "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/kubernetes/pkg/api/legacyscheme"

	kstransform "github.com/kubesim/kubesim/internal/transform"
)

// TestBootstrapManagedFields checks the managedFields of every bootstrap
// object of servers started one after another in a process, with other
// Service ranges and ports (the later ones take them from the process's
// cache, see bootstrapFields): each is what the create handler's field
// manager gives that server's object, a single Update by kube-apiserver
// (by APF's configuration producer for FlowSchemas and priority levels),
// then for those with a status manager (the FlowSchemas, the ServiceCIDR)
// its apply of the status.
// That they are kube-apiserver's own is checked against it by the
// conformance suite (testdata/golden/bootstrap-managedfields.jsonl).
func TestBootstrapManagedFields(t *testing.T) {
	ctx := context.Background()
	// The first server as a process's first: from zz_generated.bootstrapfields.go.
	bootstrapFields.Clear()
	for _, cidr := range []string{"10.96.0.0/16", "10.200.0.0/24", "172.20.0.0/16"} {
		cfg := Config{AnyPort: true}
		cfg.Services.ClusterIPRange = cidr
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
		for _, b := range append(s.bootstrapObjects(), s.apiServiceObjects()...) {
			gvks, _, err := legacyscheme.Scheme.ObjectKinds(b.obj)
			if err != nil {
				t.Fatal(err)
			}
			kind := gvks[0]
			legacyscheme.Scheme.Default(b.obj)
			internal, err := legacyscheme.Scheme.ConvertToVersion(b.obj, schema.GroupVersion{Group: kind.Group, Version: runtime.APIVersionInternal})
			if err != nil {
				t.Fatal(err)
			}
			name := meta.NewAccessor()
			objName, _ := name.Name(internal)
			stored, err := s.registry.Stores[b.resource].Get(requestContext(ctx, "get", kind.Group, kind.Version, b.resource.Resource, b.namespace), objName, &metav1.GetOptions{})
			if err != nil {
				t.Fatalf("%s %s/%s: %v", b.resource, b.namespace, objName, err)
			}
			manager := b.manager
			if manager == "" {
				manager = loopbackManager
			}
			live, err := legacyscheme.Scheme.New(kind)
			if err != nil {
				t.Fatal(err)
			}
			gvr := kind.GroupVersion().WithResource(b.resource.Resource)
			want := s.api.fieldManager(gvr, "").UpdateNoErrors(live, internal, manager)
			if wantFields := managedFieldsOf(t, want, false); len(wantFields) != 1 || wantFields[0].Manager != manager || wantFields[0].Operation != metav1.ManagedFieldsOperationUpdate {
				t.Fatalf("%s %s: the field manager gives %+v", b.resource, objName, wantFields)
			}
			if b.statusManager != "" {
				// Then the status applied, as its controller applies it.
				patch, err := statusPatch(b.obj, kind, objName)
				if err != nil {
					t.Fatal(err)
				}
				if want, err = s.api.fieldManager(gvr, "status").Apply(want, patch, b.statusManager, true); err != nil {
					t.Fatal(err)
				}
				if wantFields := managedFieldsOf(t, want, false); len(wantFields) != 2 || wantFields[0].Manager != b.statusManager || wantFields[0].Operation != metav1.ManagedFieldsOperationApply || wantFields[0].Subresource != "status" {
					t.Fatalf("%s %s: the field manager gives %+v", b.resource, objName, wantFields)
				}
			}
			got, wantFields := managedFieldsOf(t, stored, true), managedFieldsOf(t, want, false)
			if !equality.Semantic.DeepEqual(got, wantFields) {
				t.Errorf("%s %s/%s (ServiceCIDR %s): managedFields\n%+v\nwant\n%+v", b.resource, b.namespace, objName, cidr, got, wantFields)
			}
		}
	}
}

// managedFieldsOf is obj's managedFields without their times, each of
// which must be set (timed), or may be unset (the field manager, called
// directly, does not always set them).
func managedFieldsOf(t *testing.T, obj runtime.Object, timed bool) []metav1.ManagedFieldsEntry {
	t.Helper()
	a, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	var out []metav1.ManagedFieldsEntry
	for _, f := range a.GetManagedFields() {
		if timed && f.Time == nil {
			t.Errorf("%s: a managedFields entry without a time: %+v", a.GetName(), f)
		}
		f.Time = nil
		out = append(out, f)
	}
	return out
}

// TestBootstrapLeavesControllersNothingToWrite: the FlowSchemas come with
// the status API Priority and Fairness's configuration consumer writes,
// and the APIServices as the aggregator's autoregister controller creates
// them, so neither changes them once the server runs. The consumer has
// digested the configuration once it has written the status of a
// FlowSchema created after the server was ready (one that names no
// priority level: Dangling); the bootstrapped ones are then as they were.
func TestBootstrapLeavesControllersNothingToWrite(t *testing.T) {
	s, _ := startServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(s.RESTConfig())
	versions := func() map[string]string {
		out := map[string]string{}
		fss, err := cs.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, fs := range fss.Items {
			out["flowschema "+fs.Name] = fs.ResourceVersion
		}
		svcs, err := aggregatorclient.NewForConfigOrDie(s.RESTConfig()).ApiregistrationV1().APIServices().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range svcs.Items {
			out["apiservice "+svc.Name] = svc.ResourceVersion
		}
		return out
	}
	atReady := versions()
	fss, err := cs.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, fs := range fss.Items {
		if len(fs.Status.Conditions) != 1 || fs.Status.Conditions[0].Type != flowcontrolv1.FlowSchemaConditionDangling || fs.Status.Conditions[0].Status != flowcontrolv1.ConditionFalse {
			t.Errorf("FlowSchema %s at ready: conditions %+v, want Dangling False", fs.Name, fs.Status.Conditions)
		}
	}
	if _, err := cs.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "probe"},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "no-such-level"},
			MatchingPrecedence:         9000,
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := cs.FlowcontrolV1().FlowSchemas().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=probe"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		fs, ok := ev.Object.(*flowcontrolv1.FlowSchema)
		if ok && len(fs.Status.Conditions) == 1 && fs.Status.Conditions[0].Status == flowcontrolv1.ConditionTrue {
			break
		}
	}
	after := versions()
	delete(after, "flowschema probe")
	for name, rv := range atReady {
		if after[name] != rv {
			t.Errorf("%s: resourceVersion %s at ready, %q after", name, rv, after[name])
		}
	}
	for name, rv := range after {
		if _, ok := atReady[name]; !ok {
			t.Errorf("%s: created after ready (resourceVersion %s)", name, rv)
		}
	}
}

// TestReadyInformersHoldBootstrap checks that once a server is ready, each
// of its informers holds every bootstrap object of its type: they start
// before the bootstrap ends (Start), and a list from before an object was
// created leaves it to the watch (waitBootstrapSeen). The RBAC authorizer
// reads the policy through them.
func TestReadyInformersHoldBootstrap(t *testing.T) {
	// The RoleBindings are created after the informers have listed, and
	// the informer takes its time over each: a server that waited only for
	// its informers' lists would be ready without them.
	slow := func(b bootstrapObject) {
		if b.resource.Resource == "rolebindings" {
			time.Sleep(5 * time.Millisecond)
		}
	}
	bootstrapObjectHook.Store(&slow)
	defer bootstrapObjectHook.Store(nil)
	transform := func(obj any) (any, error) {
		if _, ok := obj.(*rbacv1.RoleBinding); ok {
			time.Sleep(20 * time.Millisecond)
		}
		return kstransform.DropManagedFields(obj)
	}
	for range 3 {
		s, stop := startServerWith(t, Config{AnyPort: true, InformerTransform: transform})
		started := s.informers.WaitForCacheSync(nil)
		checked := map[reflect.Type]int{}
		for _, b := range s.bootstrapObjects() {
			ref, err := newBootstrapRef(b)
			if err != nil {
				t.Fatal(err)
			}
			if !started[ref.typ] {
				continue
			}
			informer, err := s.informers.ForResource(ref.gvr)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := informer.Informer().GetIndexer().GetByKey(ref.key); !ok {
				t.Errorf("ready, and the %v informer does not hold %s", ref.typ, ref.key)
			}
			checked[ref.typ]++
		}
		for _, typ := range []reflect.Type{reflect.TypeFor[*rbacv1.ClusterRole](), reflect.TypeFor[*rbacv1.RoleBinding](), reflect.TypeFor[*corev1.Namespace]()} {
			if checked[typ] == 0 {
				t.Errorf("no %v checked", typ)
			}
		}
		stop()
	}
}
