package conformance_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/conformance/framework"
)

// overloadTarget is a server started with --max-requests-inflight 20 and
// --request-timeout 8s (a queued request waits 2 s at most; kube-apiserver's
// other defaults): a kubesim of the spec's own, or, against the reference,
// the kube-apiserver of KUBESIM_REFERENCE_LIMITED_KUBECONFIG
// (hack/reference-peer.sh with API_PORT, REFERENCE_DIR and
// KUBE_APISERVER_FLAGS="--max-requests-inflight 20 --request-timeout 8s",
// on the peer's etcd).
func overloadTarget(ctx SpecContext) *rest.Config {
	if !target.IsKubesim() {
		kc := os.Getenv("KUBESIM_REFERENCE_LIMITED_KUBECONFIG")
		if kc == "" {
			Skip("against the reference, needs KUBESIM_REFERENCE_LIMITED_KUBECONFIG: a kube-apiserver with --max-requests-inflight 20")
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", kc)
		Expect(err).NotTo(HaveOccurred())
		cfg.QPS, cfg.Burst = -1, -1
		return cfg
	}
	t, err := framework.StartKubesim(ctx, "--max-requests-inflight", "20", "--request-timeout", "8s", "--controller-manager=false", "--scheduler=false")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(t.Stop(30 * time.Second)).To(Succeed()) })
	return t.Config
}

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

	It("answers some of 100 parallel unlimited lists 429 with Retry-After under --max-requests-inflight 20, with the PF headers on every answer", func(ctx SpecContext) {
		// A kubesim of its own with kube-apiserver's flag, or for the
		// reference a kube-apiserver started with it (see overloadTarget).
		cfg := overloadTarget(ctx)
		cs := kubernetes.NewForConfigOrDie(cfg)
		ns := "overload-" + rand.String(5)
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// 2,000 ConfigMaps of 4 KiB: a list of 8 MiB, more than the client's
		// HTTP/2 stream window (4 MiB), so a list the client does not read
		// holds its seat.
		value := strings.Repeat("x", 4096)
		var wg sync.WaitGroup
		errs := make(chan error, 2000)
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer GinkgoRecover()
				for i := w; i < 2000; i += 16 {
					_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"v": value}}, metav1.CreateOptions{})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			Expect(err).NotTo(HaveOccurred())
		}
		// A user of the global-default level, allowed to list ConfigMaps
		// (by a role of the spec's own: the aggregated ClusterRole view has
		// no rules without kube-controller-manager).
		_, err = cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "lister"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list"}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "lister"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "lister"},
			Subjects:   []rbacv1.Subject{{Kind: "User", Name: ns}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			Expect(cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})).To(Succeed())
		})
		// The lister's own priority level, which neither borrows nor lends
		// seats (so the level's limit does not move with the other levels'
		// demand, adjusted every 10 s), with one queue of 10.
		_, err = cs.FlowcontrolV1().PriorityLevelConfigurations().Create(ctx, &flowcontrolv1.PriorityLevelConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: ns},
			Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
				Type: flowcontrolv1.PriorityLevelEnablementLimited,
				Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
					NominalConcurrencyShares: ptr.To[int32](5),
					LendablePercent:          ptr.To[int32](0),
					BorrowingLimitPercent:    ptr.To[int32](0),
					LimitResponse: flowcontrolv1.LimitResponse{
						Type:    flowcontrolv1.LimitResponseTypeQueue,
						Queuing: &flowcontrolv1.QueuingConfiguration{Queues: 1, HandSize: 1, QueueLengthLimit: 10},
					},
				},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		fs, err := cs.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
			ObjectMeta: metav1.ObjectMeta{Name: ns},
			Spec: flowcontrolv1.FlowSchemaSpec{
				PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: ns},
				MatchingPrecedence:         500,
				DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
				Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
					Subjects:      []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: ns}}},
					ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}}},
				}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			Expect(cs.FlowcontrolV1().FlowSchemas().Delete(ctx, ns, metav1.DeleteOptions{})).To(Succeed())
			Expect(cs.FlowcontrolV1().PriorityLevelConfigurations().Delete(ctx, ns, metav1.DeleteOptions{})).To(Succeed())
		})
		listerCfg := rest.CopyConfig(cfg)
		listerCfg.Impersonate = rest.ImpersonationConfig{UserName: ns, Groups: []string{"system:authenticated"}}
		// Uncompressed: compressed, the lists of repeated bytes would fit
		// the stream's window, and their handlers finish unread.
		listerCfg.DisableCompression = true
		// Every request the same flow's: the APF filter answers them
		// itself, not client-go, which would retry a 429.
		client, err := rest.HTTPClientFor(listerCfg)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			// RBAC's informers have the binding, API Priority and
			// Fairness's configuration controller the FlowSchema.
			r, err := client.Get(listerCfg.Host + "/api/v1/namespaces/" + ns + "/configmaps?limit=1")
			g.Expect(err).NotTo(HaveOccurred())
			r.Body.Close()
			g.Expect(r.StatusCode).To(Equal(http.StatusOK))
			g.Expect(r.Header.Get("X-Kubernetes-PF-FlowSchema-UID")).To(Equal(string(fs.UID)))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		// The 100 lists are sent at once; none is read until every one has
		// its answer's headers. So the lists that got seats keep them, the
		// queue takes 10 more, and the others are answered 429 at once;
		// the queued ones once they have waited their most (a quarter of
		// --request-timeout), however fast the machine.
		type answer struct {
			code  int
			retry string
			pf    [2]string
			body  int64
			err   error
		}
		answers := make([]answer, 100)
		var headers, done sync.WaitGroup
		headers.Add(100)
		done.Add(100)
		allHeaders := make(chan struct{})
		for i := range answers {
			go func() {
				defer done.Done()
				resp, err := client.Get(listerCfg.Host + "/api/v1/namespaces/" + ns + "/configmaps")
				headers.Done()
				if err != nil {
					answers[i].err = err
					return
				}
				defer resp.Body.Close()
				answers[i] = answer{code: resp.StatusCode, retry: resp.Header.Get("Retry-After"),
					pf: [2]string{resp.Header.Get("X-Kubernetes-PF-FlowSchema-UID"), resp.Header.Get("X-Kubernetes-PF-PriorityLevel-UID")}}
				<-allHeaders
				answers[i].body, answers[i].err = io.Copy(io.Discard, resp.Body)
			}()
		}
		headers.Wait()
		close(allHeaders)
		done.Wait()
		codes := map[int]int{}
		for _, a := range answers {
			Expect(a.err).NotTo(HaveOccurred())
			codes[a.code]++
			Expect(a.pf[0]).NotTo(BeEmpty(), "an answer %d without X-Kubernetes-PF-FlowSchema-UID", a.code)
			Expect(a.pf[1]).NotTo(BeEmpty(), "an answer %d without X-Kubernetes-PF-PriorityLevel-UID", a.code)
			switch a.code {
			case http.StatusOK:
				Expect(a.body).To(BeNumerically(">", 2000*4096), "a list's body")
			case http.StatusTooManyRequests:
				Expect(a.retry).NotTo(BeEmpty(), "a 429 without Retry-After")
			default:
				Fail(fmt.Sprintf("a list answered %d", a.code))
			}
		}
		GinkgoWriter.Printf("answers: %v\n", codes)
		Expect(codes[http.StatusTooManyRequests]).To(BeNumerically(">", 0), "answers %v", codes)
		Expect(codes[http.StatusOK]).To(BeNumerically(">", 0), "answers %v", codes)
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
