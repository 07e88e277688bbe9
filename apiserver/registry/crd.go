package registry

import (
	"context"
	"fmt"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresourcedefinition"
	crdtable "k8s.io/apiextensions-apiserver/pkg/registry/customresourcedefinition/tableconvertor"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/rest"
	apistorage "k8s.io/apiserver/pkg/storage"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
)

// crds is the resource of CustomResourceDefinitions.
var crds = schema.GroupResource{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}

// crdStrategy is apiextensions-apiserver's strategy for CRDs.
var crdStrategy = customresourcedefinition.NewStrategy(legacyscheme.Scheme)

// crdStore deletes CustomResourceDefinitions as apiextensions-apiserver
// does: the first delete marks the CRD Terminating and adds the
// customresourcecleanup finalizer, which the CRD finalizer removes once
// every custom resource is gone.
type crdStore struct {
	*Store
}

var _ rest.StandardStorage = (*crdStore)(nil)

// Delete implements rest.GracefulDeleter.
func (r *crdStore) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	obj, err := r.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, false, err
	}
	crd := obj.(*apiextensions.CustomResourceDefinition)
	// Always with a UID precondition.
	if options == nil {
		options = metav1.NewDeleteOptions(0)
	}
	if options.Preconditions == nil {
		options.Preconditions = &metav1.Preconditions{}
	}
	if options.Preconditions.UID == nil {
		options.Preconditions.UID = &crd.UID
	} else if *options.Preconditions.UID != crd.UID {
		return nil, false, apierrors.NewConflict(crds, name,
			fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", *options.Preconditions.UID, crd.UID))
	}
	if options.Preconditions.ResourceVersion != nil && *options.Preconditions.ResourceVersion != crd.ResourceVersion {
		return nil, false, apierrors.NewConflict(crds, name,
			fmt.Errorf("precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *options.Preconditions.ResourceVersion, crd.ResourceVersion))
	}
	if !crd.DeletionTimestamp.IsZero() {
		return r.Store.Delete(ctx, name, deleteValidation, options)
	}
	pre := &apistorage.Preconditions{UID: options.Preconditions.UID, ResourceVersion: options.Preconditions.ResourceVersion}
	out, err := r.guaranteedUpdate(ctx, name, pre, isDryRun(options.DryRun), func(existing runtime.Object) (runtime.Object, error) {
		existingCRD := existing.(*apiextensions.CustomResourceDefinition)
		if deleteValidation != nil {
			if err := deleteValidation(ctx, existingCRD); err != nil {
				return nil, err
			}
		}
		if existingCRD.DeletionTimestamp.IsZero() {
			now := metav1.NewTime(r.cfg.Clock.Now())
			existingCRD.DeletionTimestamp = &now
		}
		if !apiextensions.CRDHasFinalizer(existingCRD, apiextensions.CustomResourceCleanupFinalizer) {
			existingCRD.Finalizers = append(existingCRD.Finalizers, apiextensions.CustomResourceCleanupFinalizer)
		}
		apiextensions.SetCRDCondition(existingCRD, apiextensions.CustomResourceDefinitionCondition{
			Type:    apiextensions.Terminating,
			Status:  apiextensions.ConditionTrue,
			Reason:  "InstanceDeletionPending",
			Message: "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
		})
		return existingCRD, nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// crdTable prints CRDs as apiextensions-apiserver does (NAME, CREATED AT).
var crdTable = crdtable.New()
