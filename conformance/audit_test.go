package conformance_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// The suite's kubesim and the reference peer run with the audit policy of
// testdata/audit/policy.yaml: the requests of the service account
// audit/metadata are recorded at Metadata level, those of
// audit/requestresponse at RequestResponse level, nobody else's.
var _ = Describe("Audit", func() {
	It("records a kubectl apply, a second apply and a delete as kube-apiserver does, at Metadata and at RequestResponse level", func(ctx SpecContext) {
		Expect(target.AuditLog).NotTo(BeEmpty(), "the target has no audit log")
		cs := target.Clientset()
		const ns = "audit"
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		// Not the aggregated ClusterRole edit: without kube-controller-manager
		// (the API suite's servers run none) it has no rules.
		_, err = cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "configmaps"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}}},
		}, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		for _, level := range []string{"metadata", "requestresponse"} {
			By("kubectl as the service account audit/" + level)
			_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: level}}, metav1.CreateOptions{})
			if !apierrors.IsAlreadyExists(err) {
				Expect(err).NotTo(HaveOccurred())
			}
			_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: level},
				RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "configmaps"},
				Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: level, Namespace: ns}},
			}, metav1.CreateOptions{})
			if !apierrors.IsAlreadyExists(err) {
				Expect(err).NotTo(HaveOccurred())
			}
			// The authorizer has the binding (its informers lag the write).
			Eventually(func(g Gomega) {
				sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
					User:               "system:serviceaccount:" + ns + ":" + level,
					Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
					ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "delete", Resource: "configmaps"},
				}}, metav1.CreateOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(sar.Status.Allowed).To(BeTrue())
			}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
			tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, level, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			as := *target
			as.Kubeconfig = tokenKubeconfig(tr.Status.Token)

			// A name of this run's own: the reference peer's log holds
			// earlier runs' events.
			name := "cm-" + rand.String(8)
			manifest := func(v string) string {
				return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: " + ns + "\ndata:\n  v: \"" + v + "\"\n"
			}
			for _, step := range []struct {
				stdin string
				args  []string
			}{
				{manifest("1"), []string{"apply", "-f", "-"}},
				{manifest("2"), []string{"apply", "-f", "-"}},
				{"", []string{"delete", "configmap", name, "-n", ns, "--wait=false"}},
			} {
				r := as.Kubectl(ctx, step.stdin, step.args...)
				Expect(r.Err).NotTo(HaveOccurred(), "kubectl %v: %s", step.args, r.Stderr)
			}

			// Five requests: GET (404) and POST; GET and PATCH; DELETE, each
			// recorded at its two stages. The last stage of a request may be
			// written just after its response.
			var events []map[string]any
			Eventually(func(g Gomega) {
				events = auditEvents(g, target.AuditLog, name)
				g.Expect(events).To(HaveLen(10))
			}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
			b, err := json.MarshalIndent(events, "", "  ")
			Expect(err).NotTo(HaveOccurred())
			expectGolden("audit-kubectl-"+level+".json", strings.ReplaceAll(string(b), name, "NAME")+"\n")
		}
	})
})

// tokenKubeconfig writes a kubeconfig for the target's server with a bearer
// token and returns its path.
func tokenKubeconfig(token string) string {
	ca := target.Config.TLSClientConfig.CAData
	if len(ca) == 0 && target.Config.TLSClientConfig.CAFile != "" {
		var err error
		ca, err = os.ReadFile(target.Config.TLSClientConfig.CAFile)
		Expect(err).NotTo(HaveOccurred())
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: target.Config.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "c"
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())
	return path
}

// auditEvents reads the audit log's events of the requests on the object
// called name (those whose events name it at some stage: a create's first
// stage does not), ordered as received, with what differs from one run or
// server to the next replaced: identifiers, times, resource versions, the
// user agent, addresses, and the latency annotations kube-apiserver adds to
// a slow request's event.
func auditEvents(g Gomega, path, name string) []map[string]any {
	data, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred())
	var all []map[string]any
	ours := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue // a line being written
		}
		if ref, ok := ev["objectRef"].(map[string]any); ok && ref["name"] == name {
			ours[ev["auditID"].(string)] = true
		}
		all = append(all, ev)
	}
	var events []map[string]any
	for _, ev := range all {
		if ours[ev["auditID"].(string)] {
			events = append(events, ev)
		}
	}
	stages := map[any]int{"RequestReceived": 0, "ResponseStarted": 1, "ResponseComplete": 2, "Panic": 3}
	sort.SliceStable(events, func(i, j int) bool {
		a, b := events[i], events[j]
		if a["requestReceivedTimestamp"] != b["requestReceivedTimestamp"] {
			return a["requestReceivedTimestamp"].(string) < b["requestReceivedTimestamp"].(string)
		}
		return stages[a["stage"]] < stages[b["stage"]]
	})
	for _, ev := range events {
		for _, k := range []string{"auditID", "requestReceivedTimestamp", "stageTimestamp", "sourceIPs", "userAgent"} {
			delete(ev, k)
		}
		if ann, ok := ev["annotations"].(map[string]any); ok {
			for k := range ann {
				if strings.HasPrefix(k, "apiserver.latency.k8s.io/") {
					delete(ann, k)
				}
			}
			if len(ann) == 0 {
				delete(ev, "annotations")
			}
		}
		maskVarying(ev)
	}
	return events
}

// maskVarying replaces, at any depth, the values that differ between runs.
func maskVarying(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			switch k {
			case "uid", "resourceVersion", "creationTimestamp", "time", "authentication.kubernetes.io/credential-id":
				v[k] = "MASKED"
			default:
				maskVarying(x)
			}
		}
	case []any:
		for _, x := range v {
			maskVarying(x)
		}
	}
}
