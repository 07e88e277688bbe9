package conformance_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/kubesim/kubesim/conformance/framework"
)

// kubectl runs stock kubectl and expects it to succeed.
func kubectl(ctx SpecContext, args ...string) string {
	GinkgoHelper()
	r := target.Kubectl(ctx, "", args...)
	Expect(r.Err).NotTo(HaveOccurred(), "kubectl %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Stdout, r.Stderr)
	return r.Stdout
}

// kubectlIn runs kubectl with stdin and expects it to succeed.
func kubectlIn(ctx SpecContext, stdin string, args ...string) string {
	GinkgoHelper()
	r := target.Kubectl(ctx, stdin, args...)
	Expect(r.Err).NotTo(HaveOccurred(), "kubectl %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Stdout, r.Stderr)
	return r.Stdout
}

// manifestDocs counts the objects in the GA manifest set.
func manifestDocs() int {
	GinkgoHelper()
	entries, err := os.ReadDir(testdata("manifests", "ga"))
	Expect(err).NotTo(HaveOccurred())
	n := 0
	for _, e := range entries {
		b, err := os.ReadFile(testdata("manifests", "ga", e.Name()))
		Expect(err).NotTo(HaveOccurred())
		n += strings.Count(string(b), "\n---\n") + 1
	}
	return n
}

var _ = Describe("kubectl", Ordered, func() {
	const ns = "conformance-ga"
	manifests := testdata("manifests", "ga")

	BeforeAll(func(ctx SpecContext) {
		out := kubectl(ctx, "apply", "-f", manifests)
		Expect(strings.Count(out, " created\n")).To(Equal(manifestDocs()), out)
	})

	It("gets every applied object back, in every output format", func(ctx SpecContext) {
		names := strings.Fields(kubectl(ctx, "get", "-f", manifests, "-o", "name"))
		Expect(names).To(HaveLen(manifestDocs()))
		Expect(names).To(ContainElements("configmap/app-config", "deployment.apps/web", "event.events.k8s.io/hello.2", "certificatesigningrequest.certificates.k8s.io/conformance-user"))

		var cm map[string]any
		Expect(json.Unmarshal([]byte(kubectl(ctx, "-n", ns, "get", "configmap", "app-config", "-o", "json")), &cm)).To(Succeed())
		Expect(cm).To(HaveKeyWithValue("data", HaveKeyWithValue("color", "blue")))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "app-config", "-o", "yaml")).To(ContainSubstring("color: blue"))
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")).To(Equal("registry.k8s.io/pause:3.10"))
		// Defaults come from upstream defaulting.
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.strategy.type} {.spec.revisionHistoryLimit} {.spec.template.spec.restartPolicy}")).To(Equal("RollingUpdate 10 Always"))
		Expect(kubectl(ctx, "-n", ns, "get", "service", "web-nodeport", "-o", "jsonpath={.spec.ports[0].nodePort}")).To(MatchRegexp(`^3[0-2][0-9]{3}$`))
		Expect(kubectl(ctx, "-n", ns, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")).To(MatchRegexp(`^\d+\.\d+\.\d+\.\d+$`))
	})

	It("reports an unchanged object as unchanged on re-apply", func(ctx SpecContext) {
		Expect(kubectl(ctx, "apply", "-f", testdata("manifests", "ga", "00-namespace.yaml"))).To(ContainSubstring("namespace/conformance-ga unchanged"))
		Expect(kubectl(ctx, "apply", "-f", manifests)).To(ContainSubstring("configmap/app-config unchanged"))
	})

	It("lists with label and field selectors", func(ctx SpecContext) {
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=web", "-o", "name")).To(Equal("configmap/app-config\n"))
		Expect(kubectl(ctx, "get", "pods", "-A", "--field-selector", "status.phase=Pending,metadata.namespace="+ns, "-o", "name")).To(Equal("pod/standalone\n"))
		Expect(kubectl(ctx, "get", "pods", "-A", "--field-selector", "spec.nodeName=nowhere", "-o", "name")).To(BeEmpty())
		r := target.Kubectl(ctx, "", "get", "pods", "--field-selector", "spec.noSuchField=x")
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring(`field label not supported: spec.noSuchField`))
	})

	It("describes objects", func(ctx SpecContext) {
		Expect(kubectl(ctx, "-n", ns, "describe", "deployment", "web")).To(SatisfyAll(ContainSubstring("Name:"), ContainSubstring("Replicas:"), ContainSubstring("StrategyType:")))
		Expect(kubectl(ctx, "-n", ns, "describe", "pod", "standalone")).To(SatisfyAll(ContainSubstring("Status:"), ContainSubstring("QoS Class:")))
		Expect(kubectl(ctx, "describe", "namespace", ns)).To(ContainSubstring("Status:"))
		Expect(kubectl(ctx, "-n", ns, "describe", "service", "web")).To(ContainSubstring("IP:"))
	})

	It("labels and annotates", func(ctx SpecContext) {
		kubectl(ctx, "-n", ns, "label", "configmap", "app-config", "tier=front")
		kubectl(ctx, "-n", ns, "annotate", "configmap", "app-config", "owner=team-a")
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "app-config", "-o", `jsonpath={.metadata.labels.tier} {.metadata.annotations.owner}`)).To(Equal("front team-a"))
		kubectl(ctx, "-n", ns, "label", "configmap", "app-config", "tier-")
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "app-config", "-o", `jsonpath={.metadata.labels}`)).NotTo(ContainSubstring("tier"))
	})

	It("scales every scalable kind through its scale subresource", func(ctx SpecContext) {
		for _, kind := range []string{"deployment/web", "replicaset/bare", "statefulset/db", "replicationcontroller/legacy"} {
			kubectl(ctx, "-n", ns, "scale", kind, "--replicas=3")
			Expect(kubectl(ctx, "-n", ns, "get", kind, "-o", "jsonpath={.spec.replicas}")).To(Equal("3"), kind)
		}
		// A stale precondition is refused.
		r := target.Kubectl(ctx, "", "-n", ns, "scale", "deployment/web", "--replicas=5", "--current-replicas=1")
		Expect(r.Err).To(HaveOccurred())
		Expect(kubectl(ctx, "-n", ns, "get", "deployment/web", "-o", "jsonpath={.spec.replicas}")).To(Equal("3"))
	})

	It("patches with JSON, merge and strategic merge patches", func(ctx SpecContext) {
		kubectl(ctx, "-n", ns, "patch", "configmap", "app-config", "--type=json", "-p", `[{"op":"add","path":"/data/size","value":"large"}]`)
		kubectl(ctx, "-n", ns, "patch", "configmap", "app-config", "--type=merge", "-p", `{"data":{"color":"green"}}`)
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "app-config", "-o", "jsonpath={.data.color} {.data.size}")).To(Equal("green large"))
		generation := kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.metadata.generation}")
		kubectl(ctx, "-n", ns, "patch", "deployment", "web", "--type=strategic", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.k8s.io/pause:3.9"}]}}}}`)
		var before int
		fmt.Sscan(generation, &before)
		// The strategic patch merges into the container list by name, and a
		// spec change bumps the generation by one.
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[*].image} {.metadata.generation}")).To(Equal(fmt.Sprintf("registry.k8s.io/pause:3.9 %d", before+1)))
		// A label change does not (annotations do for Deployments: they are
		// copied to ReplicaSets).
		kubectl(ctx, "-n", ns, "label", "deployment", "web", "touched=yes")
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.metadata.generation}")).To(Equal(fmt.Sprint(before + 1)))
		// A patch that does not apply is refused and changes nothing.
		rv := kubectl(ctx, "-n", ns, "get", "configmap", "app-config", "-o", "jsonpath={.metadata.resourceVersion}")
		r := target.Kubectl(ctx, "", "-n", ns, "patch", "configmap", "app-config", "--type=json", "-p", `[{"op":"remove","path":"/data/missing"}]`)
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring("the server rejected our request due to an error in our request"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "app-config", "-o", "jsonpath={.metadata.resourceVersion}")).To(Equal(rv))
	})

	It("creates namespaces, configmaps and secrets imperatively", func(ctx SpecContext) {
		kubectl(ctx, "create", "namespace", "conformance-imperative")
		kubectl(ctx, "-n", "conformance-imperative", "create", "configmap", "settings", "--from-literal=a=1", "--from-literal=b=2")
		kubectl(ctx, "-n", "conformance-imperative", "create", "secret", "generic", "token", "--from-literal=token=s3cr3t")
		Expect(kubectl(ctx, "-n", "conformance-imperative", "get", "configmap", "settings", "-o", "jsonpath={.data.a}{.data.b}")).To(Equal("12"))
		Expect(kubectl(ctx, "-n", "conformance-imperative", "get", "secret", "token", "-o", "jsonpath={.data.token}")).To(Equal("czNjcjN0"))
		r := target.Kubectl(ctx, "", "create", "namespace", "conformance-imperative")
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring(`namespaces "conformance-imperative" already exists`))
		r = target.Kubectl(ctx, "", "-n", "no-such-namespace", "create", "configmap", "x")
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring(`namespaces "no-such-namespace" not found`))
	})

	It("waits for a jsonpath condition", func(ctx SpecContext) {
		out := &framework.SafeBuffer{}
		wait, err := target.KubectlStream(ctx, out, "-n", ns, "wait", "configmap/app-config", "--for=jsonpath={.data.ready}=yes", "--timeout=60s")
		Expect(err).NotTo(HaveOccurred())
		done := make(chan error, 1)
		go func() { done <- wait.Wait() }()
		Consistently(done).WithTimeout(500*time.Millisecond).ShouldNot(Receive(), "kubectl wait returned before the condition held: %s", out)
		kubectl(ctx, "-n", ns, "patch", "configmap", "app-config", "--type=merge", "-p", `{"data":{"ready":"yes"}}`)
		Eventually(done).WithTimeout(60*time.Second).Should(Receive(BeNil()), "kubectl wait: %s", out)
		Expect(out.String()).To(ContainSubstring("condition met"))
	})

	It("watches with get -w and sees a later change", func(ctx SpecContext) {
		kubectl(ctx, "-n", ns, "patch", "configmap", "app-config", "--type=merge", "-p", `{"data":{"color":"amber"}}`)
		out := &framework.SafeBuffer{}
		cmd, err := target.KubectlStream(ctx, out, "-n", ns, "get", "configmap", "app-config", "-w", "-o", "jsonpath={.data.color}{\"\\n\"}")
		Expect(err).NotTo(HaveOccurred())
		defer cmd.Process.Kill()
		Eventually(out.String).WithTimeout(20 * time.Second).Should(ContainSubstring("amber"))
		kubectl(ctx, "-n", ns, "patch", "configmap", "app-config", "--type=merge", "-p", `{"data":{"color":"red"}}`)
		Eventually(out.String).WithTimeout(20 * time.Second).Should(ContainSubstring("red"))
	})

	It("keeps an object with finalizers until they are removed", func(ctx SpecContext) {
		kubectlIn(ctx, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"guarded","namespace":"`+ns+`","finalizers":["kubesim.io/guard"]}}`, "create", "-f", "-")
		kubectl(ctx, "-n", ns, "delete", "configmap", "guarded", "--wait=false")
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "guarded", "-o", "jsonpath={.metadata.deletionTimestamp}")).NotTo(BeEmpty())
		// Deleting again changes nothing; the object stays.
		kubectl(ctx, "-n", ns, "delete", "configmap", "guarded", "--wait=false")
		kubectl(ctx, "-n", ns, "patch", "configmap", "guarded", "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
		r := target.Kubectl(ctx, "", "-n", ns, "get", "configmap", "guarded")
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring(`configmaps "guarded" not found`))
	})

	It("deletes without finalizers at once", func(ctx SpecContext) {
		kubectl(ctx, "-n", ns, "create", "configmap", "short-lived")
		Expect(kubectl(ctx, "-n", ns, "delete", "configmap", "short-lived")).To(ContainSubstring(`configmap "short-lived" deleted`))
		r := target.Kubectl(ctx, "", "-n", ns, "delete", "configmap", "short-lived")
		Expect(r.Err).To(HaveOccurred())
		Expect(r.Stderr).To(ContainSubstring(`configmaps "short-lived" not found`))
	})

	It("lists the API resources and versions kube-apiserver serves", func(ctx SpecContext) {
		expectGolden("api-resources.txt", kubectl(ctx, "api-resources"))
		expectGolden("api-versions.txt", kubectl(ctx, "api-versions"))
	})

	It("reports the pinned Kubernetes version", func(ctx SpecContext) {
		var v map[string]any
		Expect(json.Unmarshal([]byte(kubectl(ctx, "version", "-o", "json")), &v)).To(Succeed())
		Expect(v).To(HaveKeyWithValue("serverVersion", HaveKeyWithValue("gitVersion", "v1.37.2")))
	})

	It("deletes the manifest set", func(ctx SpecContext) {
		out := kubectl(ctx, "delete", "-f", manifests, "--wait=false")
		Expect(strings.Count(out, " deleted")).To(Equal(manifestDocs()), out)
		r := target.Kubectl(ctx, "", "-n", ns, "get", "configmap", "app-config")
		Expect(r.Err).To(HaveOccurred(), fmt.Sprint(r))
	})
})
