package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WebsiteSpec is the desired state of a Website.
type WebsiteSpec struct {
	// Image is the container image serving the site.
	Image string `json:"image"`
	// Replicas is how many pods serve it. Defaulted to 1 by the webhook.
	Replicas *int32 `json:"replicas,omitempty"`
	// Port is the port the image listens on. Defaulted to 8080.
	Port int32 `json:"port,omitempty"`
}

// WebsiteStatus is the observed state of a Website.
type WebsiteStatus struct {
	// AvailableReplicas counts the available pods of its Deployment.
	AvailableReplicas int32 `json:"availableReplicas,omitempty"`
	// Conditions: Available.
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Website is a web site served by a Deployment and a Service.
type Website struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WebsiteSpec   `json:"spec,omitempty"`
	Status WebsiteStatus `json:"status,omitempty"`
}

// WebsiteList is a list of Websites.
type WebsiteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Website `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Website{}, &WebsiteList{})
}
