// Package controller is the example operator's reconciler.
package controller

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	webappv1 "github.com/kubesim/kubesim/testdata/operator/api/v1"
)

// WebsiteReconciler runs each Website as a Deployment and a Service that
// it owns, and reports the Deployment's available replicas.
type WebsiteReconciler struct {
	client.Client
	Scheme *runtime.Scheme
}

// Reconcile implements reconcile.Reconciler.
func (r *WebsiteReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var site webappv1.Website
	if err := r.Get(ctx, req.NamespacedName, &site); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !site.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the garbage collector removes what it owns
	}
	labels := map[string]string{"app.kubernetes.io/name": "website", "app.kubernetes.io/instance": site.Name}
	port := site.Spec.Port
	if port == 0 {
		port = 8080
	}

	deployment := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: site.Name, Namespace: site.Namespace}}
	if _, err := controllerutil.CreateOrUpdate(ctx, r.Client, deployment, func() error {
		deployment.Spec.Replicas = site.Spec.Replicas
		if deployment.Spec.Selector == nil {
			deployment.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels}
		}
		deployment.Spec.Template.Labels = labels
		if len(deployment.Spec.Template.Spec.Containers) == 0 {
			deployment.Spec.Template.Spec.Containers = []corev1.Container{{Name: "web"}}
		}
		c := &deployment.Spec.Template.Spec.Containers[0]
		c.Image = site.Spec.Image
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}}
		return controllerutil.SetControllerReference(&site, deployment, r.Scheme)
	}); err != nil {
		return ctrl.Result{}, fmt.Errorf("unable to reconcile the Deployment: %w", err)
	}

	service := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: site.Name, Namespace: site.Namespace}}
	if _, err := controllerutil.CreateOrUpdate(ctx, r.Client, service, func() error {
		service.Spec.Selector = labels
		service.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(port), Protocol: corev1.ProtocolTCP}}
		return controllerutil.SetControllerReference(&site, service, r.Scheme)
	}); err != nil {
		return ctrl.Result{}, fmt.Errorf("unable to reconcile the Service: %w", err)
	}

	available := metav1.Condition{Type: "Available", Status: metav1.ConditionFalse, Reason: "Progressing", Message: "waiting for the Deployment's pods", ObservedGeneration: site.Generation}
	want := int32(1)
	if site.Spec.Replicas != nil {
		want = *site.Spec.Replicas
	}
	if deployment.Status.AvailableReplicas >= want {
		available.Status, available.Reason, available.Message = metav1.ConditionTrue, "DeploymentAvailable", "every replica is available"
	}
	before := site.Status.DeepCopy()
	site.Status.AvailableReplicas = deployment.Status.AvailableReplicas
	meta.SetStatusCondition(&site.Status.Conditions, available)
	if before.AvailableReplicas != site.Status.AvailableReplicas || !conditionsEqual(before.Conditions, site.Status.Conditions) {
		if err := r.Status().Update(ctx, &site); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	return ctrl.Result{}, nil
}

func conditionsEqual(a, b []metav1.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Status != b[i].Status || a[i].Reason != b[i].Reason || a[i].ObservedGeneration != b[i].ObservedGeneration {
			return false
		}
	}
	return true
}

// SetupWithManager registers the reconciler: it watches Websites and the
// Deployments and Services they own.
func (r *WebsiteReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&webappv1.Website{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Complete(r)
}
