package conformance_test

import (
	"encoding/json"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

var _ = Describe("API Priority and Fairness and request limits", func() {
	It("names the FlowSchema and priority level of every request, and writes the FlowSchemas' status", func(ctx SpecContext) {
		cs := kubernetes.NewForConfigOrDie(target.Config)
		fsList, err := cs.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		plList, err := cs.FlowcontrolV1().PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		flowSchemas := map[types.UID]flowcontrolv1.FlowSchema{}
		for _, fs := range fsList.Items {
			flowSchemas[fs.UID] = fs
		}
		levels := map[types.UID]flowcontrolv1.PriorityLevelConfiguration{}
		for _, pl := range plList.Items {
			levels[pl.UID] = pl
		}
		for _, tc := range []struct {
			path   string
			header map[string]string
			// flowSchema, when set, is the FlowSchema that must classify.
			flowSchema string
		}{
			{path: "/api/v1/namespaces/default"},
			{path: "/apis/apps/v1/deployments?limit=1"},
			{path: "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1"},
			{path: "/version"},
			{path: "/api/v1/namespaces/missing"},
			// The impersonated user is the one classified.
			{path: "/api/v1/namespaces/default", header: map[string]string{"Impersonate-User": "alice"}, flowSchema: "global-default"},
			{path: "/api/v1/nodes", header: map[string]string{"Impersonate-User": "system:node:n1", "Impersonate-Group": "system:nodes"}, flowSchema: "system-node-high"},
			{path: "/api/v1/namespaces/default", header: map[string]string{"Impersonate-User": "system:node:n1", "Impersonate-Group": "system:nodes"}, flowSchema: "system-nodes"},
		} {
			r := get(ctx, tc.path, tc.header)
			fs, ok := flowSchemas[types.UID(r.header.Get("X-Kubernetes-PF-FlowSchema-UID"))]
			Expect(ok).To(BeTrue(), "GET %s %v: X-Kubernetes-PF-FlowSchema-UID %q names no FlowSchema", tc.path, tc.header, r.header.Get("X-Kubernetes-PF-FlowSchema-UID"))
			pl, ok := levels[types.UID(r.header.Get("X-Kubernetes-PF-PriorityLevel-UID"))]
			Expect(ok).To(BeTrue(), "GET %s %v: X-Kubernetes-PF-PriorityLevel-UID %q names no PriorityLevelConfiguration", tc.path, tc.header, r.header.Get("X-Kubernetes-PF-PriorityLevel-UID"))
			Expect(fs.Spec.PriorityLevelConfiguration.Name).To(Equal(pl.Name), "GET %s %v: the FlowSchema's priority level", tc.path, tc.header)
			if tc.flowSchema != "" {
				Expect(fs.Name).To(Equal(tc.flowSchema), "GET %s %v", tc.path, tc.header)
			}
		}
		// The configuration controller writes each FlowSchema's Dangling
		// condition once it has digested the configuration.
		Eventually(func(g Gomega) {
			list, err := cs.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			for _, fs := range list.Items {
				g.Expect(fs.Status.Conditions).To(HaveLen(1), "FlowSchema %s", fs.Name)
				c := fs.Status.Conditions[0]
				g.Expect(c.Type).To(BeEquivalentTo(flowcontrolv1.FlowSchemaConditionDangling), "FlowSchema %s", fs.Name)
				g.Expect(c.Status).To(BeEquivalentTo(flowcontrolv1.ConditionFalse), "FlowSchema %s", fs.Name)
				g.Expect(c.Reason).To(Equal("Found"), "FlowSchema %s", fs.Name)
				g.Expect(c.Message).To(Equal(`This FlowSchema references the PriorityLevelConfiguration object named "`+fs.Spec.PriorityLevelConfiguration.Name+`" and it exists`), "FlowSchema %s", fs.Name)
				g.Expect(c.LastTransitionTime.IsZero()).To(BeFalse(), "FlowSchema %s", fs.Name)
				// Written by the controller's field manager, with server-side apply.
				var managers []string
				for _, m := range fs.ManagedFields {
					if m.Subresource == "status" {
						managers = append(managers, m.Manager+"/"+string(m.Operation))
					}
				}
				g.Expect(managers).To(ConsistOf("api-priority-and-fairness-config-consumer-v1/Apply"), "FlowSchema %s", fs.Name)
			}
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	})

	It("answers a timeout parameter that is not a duration with 400", func(ctx SpecContext) {
		r := get(ctx, "/api/v1/namespaces?timeout=soon", nil)
		Expect(r.code).To(Equal(http.StatusBadRequest))
		var st metav1.Status
		Expect(json.Unmarshal(r.body, &st)).To(Succeed(), "body %s", r.body)
		Expect(st.Reason).To(Equal(metav1.StatusReasonBadRequest))
		Expect(st.Message).To(Equal(`invalid timeout specified in the request URL - time: invalid duration "soon"`))
	})
})
