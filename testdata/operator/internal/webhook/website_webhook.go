// Package webhook is the example operator's defaulting and validating
// webhook.
package webhook

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	webappv1 "github.com/kubesim/kubesim/testdata/operator/api/v1"
)

// MaxReplicas is the most replicas a Website may ask for.
const MaxReplicas = 10

// WebsiteDefaulter defaults replicas (1) and port (8080).
type WebsiteDefaulter struct{}

// Default implements admission.Defaulter.
func (WebsiteDefaulter) Default(_ context.Context, site *webappv1.Website) error {
	if site.Spec.Replicas == nil {
		site.Spec.Replicas = ptr.To[int32](1)
	}
	if site.Spec.Port == 0 {
		site.Spec.Port = 8080
	}
	return nil
}

// WebsiteValidator refuses more than MaxReplicas replicas.
type WebsiteValidator struct{}

func validate(site *webappv1.Website) error {
	var errs field.ErrorList
	if r := site.Spec.Replicas; r != nil && *r > MaxReplicas {
		errs = append(errs, field.Invalid(field.NewPath("spec", "replicas"), *r, "must be at most 10"))
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(webappv1.GroupVersion.WithKind("Website").GroupKind(), site.Name, errs)
}

// ValidateCreate implements admission.Validator.
func (WebsiteValidator) ValidateCreate(_ context.Context, site *webappv1.Website) (admission.Warnings, error) {
	return nil, validate(site)
}

// ValidateUpdate implements admission.Validator.
func (WebsiteValidator) ValidateUpdate(_ context.Context, _, site *webappv1.Website) (admission.Warnings, error) {
	return nil, validate(site)
}

// ValidateDelete implements admission.Validator.
func (WebsiteValidator) ValidateDelete(context.Context, *webappv1.Website) (admission.Warnings, error) {
	return nil, nil
}

// SetupWebsiteWebhookWithManager registers both webhooks, at
// /mutate-webapp-kubesim-io-v1-website and
// /validate-webapp-kubesim-io-v1-website.
func SetupWebsiteWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &webappv1.Website{}).
		WithDefaulter(WebsiteDefaulter{}).
		WithValidator(WebsiteValidator{}).
		Complete()
}
