package registry

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/rest"
	apistorage "k8s.io/apiserver/pkg/storage"
	podutil "k8s.io/kubernetes/pkg/api/pod"
	"k8s.io/kubernetes/pkg/apis/apps"
	"k8s.io/kubernetes/pkg/apis/autoscaling"
	autoscalingvalidation "k8s.io/kubernetes/pkg/apis/autoscaling/validation"
	api "k8s.io/kubernetes/pkg/apis/core"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// StrategySubresource updates the main object under another strategy:
// status, namespaces/finalize, certificatesigningrequests/approval,
// pods/ephemeralcontainers and pods/resize are all this.
type StrategySubresource struct {
	store    *Store
	strategy rest.RESTUpdateStrategy
}

var (
	_ rest.Getter  = (*StrategySubresource)(nil)
	_ rest.Updater = (*StrategySubresource)(nil)
	_ rest.Patcher = (*StrategySubresource)(nil)
)

// NewStrategySubresource returns a subresource of store updated with strategy.
func NewStrategySubresource(store *Store, strategy rest.RESTUpdateStrategy) *StrategySubresource {
	return &StrategySubresource{store: store, strategy: strategy}
}

// New implements rest.Storage.
func (r *StrategySubresource) New() runtime.Object { return r.store.New() }

// Destroy implements rest.Storage.
func (r *StrategySubresource) Destroy() {}

// Get implements rest.Getter.
func (r *StrategySubresource) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, options)
}

// Update implements rest.Updater. A subresource never creates its object.
func (r *StrategySubresource) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.store.update(ctx, name, objInfo, createValidation, updateValidation, false, options, r.strategy)
}

// scaler reads and writes the replicas of one kind of scalable object.
type scaler struct {
	get func(obj runtime.Object) (*autoscaling.Scale, error)
	set func(obj runtime.Object, replicas int32)
}

func scaleMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion, CreationTimestamp: m.CreationTimestamp}
}

func labelSelectorScale(m metav1.ObjectMeta, spec, status int32, sel *metav1.LabelSelector) (*autoscaling.Scale, error) {
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	return &autoscaling.Scale{ObjectMeta: scaleMeta(m), Spec: autoscaling.ScaleSpec{Replicas: spec}, Status: autoscaling.ScaleStatus{Replicas: status, Selector: selector.String()}}, nil
}

var scalers = map[schema.GroupResource]scaler{
	{Group: "apps", Resource: "deployments"}: {
		get: func(o runtime.Object) (*autoscaling.Scale, error) {
			d := o.(*apps.Deployment)
			return labelSelectorScale(d.ObjectMeta, d.Spec.Replicas, d.Status.Replicas, d.Spec.Selector)
		},
		set: func(o runtime.Object, n int32) { o.(*apps.Deployment).Spec.Replicas = n },
	},
	{Group: "apps", Resource: "replicasets"}: {
		get: func(o runtime.Object) (*autoscaling.Scale, error) {
			d := o.(*apps.ReplicaSet)
			return labelSelectorScale(d.ObjectMeta, d.Spec.Replicas, d.Status.Replicas, d.Spec.Selector)
		},
		set: func(o runtime.Object, n int32) { o.(*apps.ReplicaSet).Spec.Replicas = n },
	},
	{Group: "apps", Resource: "statefulsets"}: {
		get: func(o runtime.Object) (*autoscaling.Scale, error) {
			d := o.(*apps.StatefulSet)
			return labelSelectorScale(d.ObjectMeta, d.Spec.Replicas, d.Status.Replicas, d.Spec.Selector)
		},
		set: func(o runtime.Object, n int32) { o.(*apps.StatefulSet).Spec.Replicas = n },
	},
	{Group: "", Resource: "replicationcontrollers"}: {
		get: func(o runtime.Object) (*autoscaling.Scale, error) {
			rc := o.(*api.ReplicationController)
			var replicas int32
			if rc.Spec.Replicas != nil {
				replicas = *rc.Spec.Replicas
			}
			return &autoscaling.Scale{ObjectMeta: scaleMeta(rc.ObjectMeta), Spec: autoscaling.ScaleSpec{Replicas: replicas},
				Status: autoscaling.ScaleStatus{Replicas: rc.Status.Replicas, Selector: labels.SelectorFromSet(rc.Spec.Selector).String()}}, nil
		},
		set: func(o runtime.Object, n int32) { o.(*api.ReplicationController).Spec.Replicas = &n },
	},
}

// ScaleSubresource serves <resource>/scale as an autoscaling/v1 Scale.
type ScaleSubresource struct {
	store  *Store
	scaler scaler
}

var (
	_ rest.Patcher                  = (*ScaleSubresource)(nil)
	_ rest.GroupVersionKindProvider = (*ScaleSubresource)(nil)
)

// New implements rest.Storage.
func (r *ScaleSubresource) New() runtime.Object { return &autoscaling.Scale{} }

// Destroy implements rest.Storage.
func (r *ScaleSubresource) Destroy() {}

// GroupVersionKind implements rest.GroupVersionKindProvider.
func (r *ScaleSubresource) GroupVersionKind(schema.GroupVersion) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
}

// Get implements rest.Getter.
func (r *ScaleSubresource) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	obj, err := r.store.Get(ctx, name, options)
	if err != nil {
		return nil, err
	}
	scale, err := r.scaler.get(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%v", err))
	}
	return scale, nil
}

// Update implements rest.Updater.
func (r *ScaleSubresource) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	info := &scaleUpdate{name: name, req: objInfo, scaler: r.scaler}
	obj, _, err := r.store.update(ctx, name, info, nil, func(ctx context.Context, obj, old runtime.Object) error {
		if updateValidation == nil {
			return nil
		}
		newScale, err := r.scaler.get(obj)
		if err != nil {
			return err
		}
		oldScale, err := r.scaler.get(old)
		if err != nil {
			return err
		}
		return updateValidation(ctx, newScale, oldScale)
	}, false, options, r.store.cfg.Strategy)
	if err != nil {
		return nil, false, err
	}
	scale, err := r.scaler.get(obj)
	if err != nil {
		return nil, false, apierrors.NewBadRequest(fmt.Sprintf("%v", err))
	}
	return scale, false, nil
}

// scaleUpdate turns the old object into the old Scale, lets the request
// change it, and carries replicas and resourceVersion back to the object.
type scaleUpdate struct {
	name   string
	req    rest.UpdatedObjectInfo
	scaler scaler
}

func (i *scaleUpdate) Preconditions() *metav1.Preconditions { return i.req.Preconditions() }

func (i *scaleUpdate) UpdatedObject(ctx context.Context, oldObj runtime.Object) (runtime.Object, error) {
	oldScale, err := i.scaler.get(oldObj)
	if err != nil {
		return nil, err
	}
	obj, err := i.req.UpdatedObject(ctx, oldScale)
	if err != nil {
		return nil, err
	}
	scale, ok := obj.(*autoscaling.Scale)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("expected input object type to be Scale, but %T", obj))
	}
	if errs := autoscalingvalidation.ValidateScale(scale); len(errs) > 0 {
		return nil, apierrors.NewInvalid(autoscaling.Kind("Scale"), i.name, errs)
	}
	out := oldObj.DeepCopyObject()
	i.scaler.set(out, scale.Spec.Replicas)
	if scale.ResourceVersion != "" {
		if err := setResourceVersion(out, scale.ResourceVersion); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// BindingSubresource serves pods/binding (and the legacy bindings resource).
type BindingSubresource struct {
	pods *Store
}

var _ rest.NamedCreater = (*BindingSubresource)(nil)

// New implements rest.Storage.
func (r *BindingSubresource) New() runtime.Object { return &api.Binding{} }

// Destroy implements rest.Storage.
func (r *BindingSubresource) Destroy() {}

// PreserveRequestObjectMetaSystemFieldsOnSubresourceCreate implements
// rest.SubresourceObjectMetaPreserver, as upstream's BindingREST does.
func (r *BindingSubresource) PreserveRequestObjectMetaSystemFieldsOnSubresourceCreate() bool {
	return true
}

// Create implements rest.NamedCreater: it binds the pod to the target node.
func (r *BindingSubresource) Create(ctx context.Context, name string, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	binding, ok := obj.(*api.Binding)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a Binding object: %#v", obj))
	}
	if name != binding.Name {
		return nil, apierrors.NewBadRequest("name in URL does not match name in Binding object")
	}
	if errs := corevalidation.ValidatePodBinding(binding); len(errs) != 0 {
		return nil, errs.ToAggregate()
	}
	if createValidation != nil {
		if err := createValidation(ctx, binding.DeepCopyObject()); err != nil {
			return nil, err
		}
	}
	var pre *apistorage.Preconditions
	if binding.UID != "" || binding.ResourceVersion != "" {
		pre = &apistorage.Preconditions{}
		if binding.UID != "" {
			pre.UID = &binding.UID
		}
		if binding.ResourceVersion != "" {
			pre.ResourceVersion = &binding.ResourceVersion
		}
	}
	// Binding writes bypass the pod strategy, as upstream's do.
	_, err := r.pods.guaranteedUpdate(ctx, name, pre, isDryRun(options.DryRun), func(existing runtime.Object) (runtime.Object, error) {
		pod := existing.(*api.Pod)
		if pod.DeletionTimestamp != nil {
			return nil, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name)
		}
		if pod.Spec.NodeName != "" {
			return nil, fmt.Errorf("pod %v is already assigned to node %q", pod.Name, pod.Spec.NodeName)
		}
		if len(pod.Spec.SchedulingGates) != 0 {
			return nil, fmt.Errorf("pod %v has non-empty .spec.schedulingGates", pod.Name)
		}
		pod.Spec.NodeName = binding.Target.Name
		pod.Status.NominatedNodeName = ""
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		for k, v := range binding.Annotations {
			pod.Annotations[k] = v
		}
		podutil.DropInitContainerAnnotations(pod.Annotations)
		if len(binding.Labels) > 0 && pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		for k, v := range binding.Labels {
			pod.Labels[k] = v
		}
		podutil.UpdatePodCondition(&pod.Status, &api.PodCondition{Type: api.PodScheduled, Status: api.ConditionTrue})
		return pod, nil
	})
	if err != nil {
		// As upstream's assignPod: anything but an API error is a conflict.
		if _, ok := err.(apierrors.APIStatus); !ok {
			err = apierrors.NewConflict(api.Resource("pods/binding"), name, err)
		}
		return nil, err
	}
	return &metav1.Status{Status: metav1.StatusSuccess}, nil
}

// LegacyBinding serves the core v1 bindings resource: POST a Binding.
type LegacyBinding struct {
	*BindingSubresource
}

var _ rest.Creater = (*LegacyBinding)(nil)

// Create implements rest.Creater.
func (r *LegacyBinding) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	b, ok := obj.(*api.Binding)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a Binding object: %T", obj))
	}
	return r.BindingSubresource.Create(ctx, b.Name, obj, createValidation, options)
}

// NamespaceScoped implements rest.Scoper: bindings live in namespaces.
func (r *LegacyBinding) NamespaceScoped() bool { return true }

// GetSingularName implements rest.SingularNameProvider.
func (r *LegacyBinding) GetSingularName() string { return "binding" }

// updateOnlySubresource is a subresource that is only updated (PUT), as
// namespaces/finalize: no get, no patch.
type updateOnlySubresource struct {
	sub *StrategySubresource
}

var _ rest.Updater = (*updateOnlySubresource)(nil)

func (r *updateOnlySubresource) New() runtime.Object { return r.sub.New() }
func (r *updateOnlySubresource) Destroy()            {}

// Update implements rest.Updater.
func (r *updateOnlySubresource) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.sub.Update(ctx, name, objInfo, createValidation, updateValidation, forceAllowCreate, options)
}

// GetResetFields implements rest.ResetFieldsStrategy with the
// subresource strategy's reset fields (for status, everything but status).
func (r *StrategySubresource) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	if rf, ok := r.strategy.(rest.ResetFieldsStrategy); ok {
		return rf.GetResetFields()
	}
	return nil
}

// GetResetFields implements rest.ResetFieldsStrategy.
func (r *updateOnlySubresource) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.sub.GetResetFields()
}
