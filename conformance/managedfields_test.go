package conformance_test

import (
	"encoding/json"
	"sort"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
)

// The objects kube-apiserver creates at start carry the managedFields of
// their creation: `kubectl get --show-managed-fields` shows them, and a
// user's server-side apply to one of them (a ClusterRole, a FlowSchema)
// shares or takes fields from these managers, where an object without
// managedFields gets a "before-first-apply" manager instead.
var _ = Describe("bootstrap objects", func() {
	It("carry kube-apiserver's managedFields: its managers, operations and field sets", func(ctx SpecContext) {
		client, err := metadata.NewForConfig(target.Config)
		Expect(err).NotTo(HaveOccurred())
		// The managers of what kube-apiserver creates: its loopback client
		// and its API Priority and Fairness configuration producer. Other
		// managers (a controller manager's, other specs') are left out.
		bootstrap := map[string]bool{"kube-apiserver": true, "api-priority-and-fairness-config-producer-v1": true}
		// Its own configuration, not its behaviour: the front-proxy
		// (requestheader) keys depend on flags.
		skip := map[string]bool{"configmaps/kube-system/extension-apiserver-authentication": true}
		var lines []string
		for _, gvr := range []schema.GroupVersionResource{
			{Version: "v1", Resource: "namespaces"},
			{Version: "v1", Resource: "configmaps"},
			{Version: "v1", Resource: "services"},
			{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
			{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
			{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
			{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
			{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"},
			{Group: "flowcontrol.apiserver.k8s.io", Version: "v1", Resource: "prioritylevelconfigurations"},
			{Group: "flowcontrol.apiserver.k8s.io", Version: "v1", Resource: "flowschemas"},
			{Group: "networking.k8s.io", Version: "v1", Resource: "servicecidrs"},
		} {
			list, err := client.Resource(gvr).List(ctx, metav1.ListOptions{})
			Expect(err).NotTo(HaveOccurred(), gvr.String())
			for _, item := range list.Items {
				key := gvr.Resource + "/" + item.Namespace + "/" + item.Name
				if skip[key] {
					continue
				}
				for _, e := range item.ManagedFields {
					if !bootstrap[e.Manager] {
						continue
					}
					Expect(e.Time).NotTo(BeNil(), key)
					Expect(e.FieldsType).To(Equal("FieldsV1"), key)
					fields := "null"
					if e.FieldsV1 != nil {
						fields = string(e.FieldsV1.Raw)
					}
					line, err := json.Marshal([]any{key, e.Manager, e.Operation, e.Subresource, e.APIVersion, json.RawMessage(fields)})
					Expect(err).NotTo(HaveOccurred())
					lines = append(lines, string(line))
				}
			}
		}
		sort.Strings(lines)
		expectGolden("bootstrap-managedfields.jsonl", strings.Join(lines, "\n")+"\n")
	})
})
