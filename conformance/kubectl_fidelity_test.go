package conformance_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/conformance/framework"
)

// The kubectl fidelity specs run the workflows users rely on with two
// kubectl binaries: the stock kubectl on PATH (KUBECTL) and the kubectl of
// the pinned Kubernetes version (KUBECTL_PIN, `make kubectl-pin`). Each
// binary gets its own namespaces; the few cluster-wide things the specs
// create (a Node, ClusterIPs, NodePorts) carry the binary's tag, which the
// golden tables mask so that both binaries compare with the same files.
var (
	_ = kubectlFidelitySpecs("stock kubectl (KUBECTL)", "171", func() (string, string) {
		return framework.KubectlBinary(), ""
	})
	_ = kubectlFidelitySpecs("pinned kubectl (KUBECTL_PIN)", "172", func() (string, string) {
		if b := framework.PinnedKubectlBinary(); b != "" {
			return b, ""
		}
		return "", "KUBECTL_PIN is not set: run `make kubectl-pin` and set KUBECTL_PIN=$PWD/bin/kubectl-pin to run the kubectl fidelity specs with the kubectl of the pinned Kubernetes version"
	})
)

// fidelityKubectl runs one kubectl binary against the target.
type fidelityKubectl struct {
	bin string
	// version is the client's major.minor, e.g. "1.32".
	version string
	// env makes every run start like a fresh user's: its own discovery and
	// OpenAPI cache, no kuberc preferences, the default diff program.
	env []string
}

func newFidelityKubectl(ctx SpecContext, bin string) *fidelityKubectl {
	GinkgoHelper()
	return &fidelityKubectl{
		bin:     bin,
		version: kubectlClientVersion(ctx, bin),
		env:     []string{"KUBECACHEDIR=" + GinkgoT().TempDir(), "KUBECTL_KUBERC=false", "KUBECTL_EXTERNAL_DIFF="},
	}
}

// run runs kubectl with stdin (optional) and returns what it printed.
func (k *fidelityKubectl) run(ctx SpecContext, stdin string, args ...string) framework.KubectlResult {
	return target.KubectlWith(ctx, framework.KubectlOptions{Binary: k.bin, Stdin: stdin, Env: k.env}, args...)
}

// runEnv runs kubectl with extra environment variables.
func (k *fidelityKubectl) runEnv(ctx SpecContext, env []string, args ...string) framework.KubectlResult {
	return target.KubectlWith(ctx, framework.KubectlOptions{Binary: k.bin, Env: append(slices.Clip(k.env), env...)}, args...)
}

// ok runs kubectl, expects it to succeed and returns its stdout.
func (k *fidelityKubectl) ok(ctx SpecContext, args ...string) string {
	GinkgoHelper()
	return k.okIn(ctx, "", args...)
}

// okIn runs kubectl with stdin, expects it to succeed and returns its stdout.
func (k *fidelityKubectl) okIn(ctx SpecContext, stdin string, args ...string) string {
	GinkgoHelper()
	r := k.run(ctx, stdin, args...)
	Expect(r.Err).NotTo(HaveOccurred(), "%s %s\nstdout: %s\nstderr: %s", k.bin, strings.Join(args, " "), r.Stdout, r.Stderr)
	return r.Stdout
}

// getJSON runs `kubectl get -o json` into obj.
func (k *fidelityKubectl) getJSON(ctx SpecContext, obj any, args ...string) {
	GinkgoHelper()
	out := k.ok(ctx, append(append([]string{"get"}, args...), "-o", "json")...)
	Expect(json.Unmarshal([]byte(out), obj)).To(Succeed(), out)
}

var kubectlVersions sync.Map // binary → major.minor

// kubectlClientVersion returns the major.minor kubectl bin reports.
func kubectlClientVersion(ctx SpecContext, bin string) string {
	GinkgoHelper()
	if v, ok := kubectlVersions.Load(bin); ok {
		return v.(string)
	}
	r := target.KubectlWith(ctx, framework.KubectlOptions{Binary: bin}, "version", "--client", "-o", "json")
	Expect(r.Err).NotTo(HaveOccurred(), "%s version: %s", bin, r.Stderr)
	var v struct {
		ClientVersion struct{ Major, Minor string } `json:"clientVersion"`
	}
	Expect(json.Unmarshal([]byte(r.Stdout), &v)).To(Succeed(), r.Stdout)
	mm := v.ClientVersion.Major + "." + strings.TrimSuffix(v.ClientVersion.Minor, "+")
	kubectlVersions.Store(bin, mm)
	return mm
}

// kubectlGoldenWritten is what -update wrote in this run, per golden file.
var kubectlGoldenWritten sync.Map

// expectKubectlGolden compares kubectl's output with
// testdata/golden/kubectl/name.txt, or with name.<major.minor>.txt when
// that file exists (kubectl versions that print differently keep one file
// each), or rewrites the file with -update.
func expectKubectlGolden(name, version, got string) {
	GinkgoHelper()
	path := testdata("golden", "kubectl", name+".txt")
	perVersion := testdata("golden", "kubectl", name+"."+version+".txt")
	if _, err := os.Stat(perVersion); err == nil {
		path = perVersion
	}
	if *update {
		if prev, loaded := kubectlGoldenWritten.LoadOrStore(path, got); loaded && prev.(string) != got {
			Fail(fmt.Sprintf("kubectl %s prints %s differently from another kubectl of this run: create %s.<major.minor>.txt for each version and rerun with -update\n--- other kubectl:\n%s\n--- kubectl %s:\n%s",
				version, path, strings.TrimSuffix(path, ".txt"), prev, version, got))
		}
		Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
		Expect(os.WriteFile(path, []byte(got), 0o644)).To(Succeed())
		return
	}
	want, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred(), "golden file %s (run with -update against the reference to create it)", path)
	if got != string(want) {
		// diff exits 1 when the inputs differ.
		diff := exec.Command("diff", "-u", "--label", path, "--label", "kubectl "+version, path, "-")
		diff.Stdin = strings.NewReader(got)
		out, _ := diff.CombinedOutput()
		Fail(fmt.Sprintf("kubectl %s output differs from %s:\n%s", version, path, out))
	}
}

var (
	kubectlTableAge     = regexp.MustCompile(`^(\d+[smhdy])+$`)
	kubectlTableAgo     = regexp.MustCompile(`\((\d+[smhdy])+ ago\)`)
	kubectlTableUID     = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	kubectlTableHeading = regexp.MustCompile(`\S+( \S+)*`)
)

// maskKubectlTable makes a `kubectl get` table deterministic: the binary's tag
// becomes NNN, ages and durations <age>, UIDs <uid>. Columns are cut where
// the header's columns start (cells may be empty) and realigned the way
// kubectl aligns them, since masking changes widths.
func maskKubectlTable(out, tag string) string {
	GinkgoHelper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	Expect(len(lines)).To(BeNumerically(">", 1), "a table with rows:\n%s", out)
	cols := kubectlTableHeading.FindAllStringIndex(lines[0], -1)
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 6, 4, 3, ' ', 0)
	for _, line := range lines {
		cells := make([]string, len(cols))
		for i, c := range cols {
			start, end := c[0], len(line)
			if i+1 < len(cols) {
				end = min(cols[i+1][0], len(line))
			}
			Expect(start == 0 || start >= len(line) || line[start-1] == ' ').To(BeTrue(), "column %d does not start at offset %d in %q:\n%s", i, start, line, out)
			if start < end {
				cells[i] = strings.TrimSpace(line[start:end])
			}
		}
		for i, c := range cols {
			cell := kubectlTableUID.ReplaceAllString(cells[i], "<uid>")
			switch lines[0][c[0]:c[1]] {
			case "AGE", "DURATION", "LAST SEEN", "FIRST SEEN":
				cell = kubectlTableAge.ReplaceAllString(cell, "<age>")
			case "RESTARTS":
				cell = kubectlTableAgo.ReplaceAllString(cell, "(<age> ago)")
			}
			// Last: a UID or an age may contain the tag.
			cells[i] = strings.ReplaceAll(cell, tag, "NNN")
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	Expect(w.Flush()).To(Succeed())
	return b.String()
}

// fidelityDeploymentYAML is a Deployment manifest named name with app=name
// as its selector, one container "app", labels and env for it, and extraSpec
// (indented lines) at the top of its spec.
func fidelityDeploymentYAML(name string, labels, env map[string]string, extraSpec string) string {
	var l, e strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		fmt.Fprintf(&l, "    %s: %q\n", k, labels[k])
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(&e, "        - name: %s\n          value: %q\n", k, env[k])
	}
	envBlock := ""
	if len(env) > 0 {
		envBlock = "        env:\n" + e.String()
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  labels:
%[2]sspec:
%[4]s  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      containers:
      - name: app
        image: registry.k8s.io/pause:3.10
%[3]s`, name, l.String(), envBlock, extraSpec)
}

// kubectlFidelitySpecs registers the specs for the kubectl that binary
// returns (or the reason to skip them). tag names the binary's namespaces
// and cluster-wide objects; it must be three digits.
func kubectlFidelitySpecs(name, tag string, binary func() (bin, skip string)) bool {
	return Describe("kubectl fidelity with "+name, func() {
		var k *fidelityKubectl

		BeforeEach(func(ctx SpecContext) {
			bin, skip := binary()
			if skip != "" {
				Skip(skip)
			}
			k = newFidelityKubectl(ctx, bin)
		})

		// namespace creates this binary's namespace for one spec.
		namespace := func(ctx SpecContext, spec string) string {
			GinkgoHelper()
			ns := "kubectl-fidelity-" + tag + "-" + spec
			newNamespace(ctx, ns)
			return ns
		}

		It("merges a re-applied manifest three-way and keeps fields set out of band", func(ctx SpecContext) {
			ns := namespace(ctx, "apply")
			v1 := fidelityDeploymentYAML("web", map[string]string{"app": "web", "tier": "frontend"}, map[string]string{"MODE": "blue"}, "")
			Expect(k.okIn(ctx, v1, "-n", ns, "apply", "-f", "-")).To(Equal("deployment.apps/web created\n"))
			// Out of band: replicas and an annotation the manifest does not set.
			Expect(k.ok(ctx, "-n", ns, "scale", "deployment/web", "--replicas=3")).To(Equal("deployment.apps/web scaled\n"))
			k.ok(ctx, "-n", ns, "patch", "deployment", "web", "--type=merge", "-p", `{"metadata":{"annotations":{"team":"platform"}}}`)

			v2 := fidelityDeploymentYAML("web", map[string]string{"app": "web", "track": "stable"}, map[string]string{"LEVEL": "debug"}, "")
			Expect(k.okIn(ctx, v2, "-n", ns, "apply", "-f", "-")).To(Equal("deployment.apps/web configured\n"))

			var d appsv1.Deployment
			k.getJSON(ctx, &d, "-n", ns, "deployment", "web")
			Expect(d.Labels).To(Equal(map[string]string{"app": "web", "track": "stable"}), "the label removed from the manifest is removed")
			Expect(d.Spec.Template.Spec.Containers).To(HaveLen(1))
			Expect(d.Spec.Template.Spec.Containers[0].Env).To(Equal([]corev1.EnvVar{{Name: "LEVEL", Value: "debug"}}), "the env var removed from the manifest is removed")
			Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(3))), "replicas set by kubectl scale survive")
			Expect(d.Annotations).To(HaveKeyWithValue("team", "platform"), "an annotation set by kubectl patch survives")

			var last appsv1.Deployment
			Expect(d.Annotations).To(HaveKey(corev1.LastAppliedConfigAnnotation))
			Expect(json.Unmarshal([]byte(d.Annotations[corev1.LastAppliedConfigAnnotation]), &last)).To(Succeed())
			Expect(last.Labels).To(Equal(map[string]string{"app": "web", "track": "stable"}))
			Expect(last.Spec.Template.Spec.Containers[0].Env).To(Equal([]corev1.EnvVar{{Name: "LEVEL", Value: "debug"}}))
			Expect(last.Spec.Replicas).To(BeNil())
			Expect(last.Annotations).NotTo(HaveKey("team"))

			// Applying the same manifest again changes nothing.
			Expect(k.okIn(ctx, v2, "-n", ns, "apply", "-f", "-")).To(Equal("deployment.apps/web unchanged\n"))
		})

		It("refuses a server-side apply that conflicts until forced, then hands the field over", func(ctx SpecContext) {
			ns := namespace(ctx, "ssa")
			a := fidelityDeploymentYAML("web", map[string]string{"app": "web"}, nil, "  replicas: 2\n")
			Expect(k.okIn(ctx, a, "-n", ns, "apply", "--server-side", "-f", "-")).To(Equal("deployment.apps/web serverside-applied\n"))
			b := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n"

			r := k.run(ctx, b, "-n", ns, "apply", "--server-side", "--field-manager=other", "-f", "-")
			Expect(r.ExitCode()).NotTo(BeZero(), "a conflicting apply fails: %+v", r)
			Expect(r.Stderr).To(ContainSubstring(`conflict with "kubectl"`))
			Expect(r.Stderr).To(ContainSubstring(".spec.replicas"))
			Expect(k.ok(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}")).To(Equal("2"))

			Expect(k.okIn(ctx, b, "-n", ns, "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-")).To(Equal("deployment.apps/web serverside-applied\n"))
			var d appsv1.Deployment
			k.getJSON(ctx, &d, "-n", ns, "deployment", "web", "--show-managed-fields")
			Expect(*d.Spec.Replicas).To(Equal(int32(3)))
			owners := map[string]string{}
			for _, f := range d.ManagedFields {
				Expect(f.FieldsV1).NotTo(BeNil(), "%+v", f)
				owners[f.Manager+"/"+string(f.Operation)] = string(f.FieldsV1.Raw)
			}
			Expect(owners).To(HaveKeyWithValue("other/Apply", ContainSubstring(`"f:replicas"`)), "the forced manager owns .spec.replicas")
			Expect(owners).To(HaveKeyWithValue("kubectl/Apply", SatisfyAll(Not(ContainSubstring(`"f:replicas"`)), ContainSubstring(`"f:template"`))), "the first manager lost .spec.replicas only")
		})

		It("diffs a manifest against the live object", func(ctx SpecContext) {
			ns := namespace(ctx, "diff")
			path := filepath.Join(GinkgoT().TempDir(), "web.yaml")
			manifest := fidelityDeploymentYAML("web", map[string]string{"app": "web"}, nil, "")
			Expect(os.WriteFile(path, []byte(manifest), 0o644)).To(Succeed())
			k.ok(ctx, "-n", ns, "apply", "-f", path)

			r := k.run(ctx, "", "-n", ns, "diff", "-f", path)
			Expect(r.ExitCode()).To(BeZero(), "an unchanged manifest: %+v", r)
			Expect(r.Stdout).To(BeEmpty())

			Expect(os.WriteFile(path, []byte(strings.Replace(manifest, "pause:3.10", "pause:3.9", 1)), 0o644)).To(Succeed())
			r = k.run(ctx, "", "-n", ns, "diff", "-f", path)
			Expect(r.ExitCode()).To(Equal(1), "a changed manifest: %+v", r)
			Expect(r.Stdout).To(MatchRegexp(`(?m)^--- \S+`))
			Expect(r.Stdout).To(MatchRegexp(`(?m)^\+\+\+ \S+`))
			Expect(r.Stdout).To(MatchRegexp(`(?m)^-\s+- image: registry\.k8s\.io/pause:3\.10$`))
			Expect(r.Stdout).To(MatchRegexp(`(?m)^\+\s+- image: registry\.k8s\.io/pause:3\.9$`))
			// The dry run bumps the generation of a spec change.
			Expect(r.Stdout).To(MatchRegexp(`(?m)^-  generation: 1$`))
			Expect(r.Stdout).To(MatchRegexp(`(?m)^\+  generation: 2$`))
			// Nothing changed for real.
			Expect(k.ok(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.metadata.generation} {.spec.template.spec.containers[0].image}")).To(Equal("1 registry.k8s.io/pause:3.10"))
		})

		It("edits an object with KUBE_EDITOR", func(ctx SpecContext) {
			ns := namespace(ctx, "edit")
			k.ok(ctx, "-n", ns, "create", "configmap", "settings", "--from-literal=color=blue", "--from-literal=size=large")
			editor := filepath.Join(GinkgoT().TempDir(), "editor.sh")
			Expect(os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/color: blue/color: green/' \"$1\"\n"), 0o755)).To(Succeed())

			r := k.runEnv(ctx, []string{"KUBE_EDITOR=" + editor}, "-n", ns, "edit", "configmap", "settings")
			Expect(r.Err).NotTo(HaveOccurred(), "%+v", r)
			Expect(r.Stdout).To(Equal("configmap/settings edited\n"))
			Expect(k.ok(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.data.color} {.data.size}")).To(Equal("green large"))

			// An editor that changes nothing cancels the edit.
			rv := k.ok(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.metadata.resourceVersion}")
			r = k.runEnv(ctx, []string{"KUBE_EDITOR=true"}, "-n", ns, "edit", "configmap", "settings")
			Expect(r.Err).NotTo(HaveOccurred(), "%+v", r)
			Expect(r.Stdout + r.Stderr).To(ContainSubstring("Edit cancelled, no changes made."))
			Expect(k.ok(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.metadata.resourceVersion}")).To(Equal(rv))
		})

		It("merges strategic merge patches into lists by key and deletes elements with $patch: delete", func(ctx SpecContext) {
			ns := namespace(ctx, "patch")
			manifest := fidelityDeploymentYAML("web", map[string]string{"app": "web"}, map[string]string{"OLD": "1"}, "") +
				"      - name: sidecar\n        image: registry.k8s.io/pause:3.9\n        env:\n        - name: SIDE\n          value: \"1\"\n"
			k.okIn(ctx, manifest, "-n", ns, "apply", "-f", "-")
			var before appsv1.Deployment
			k.getJSON(ctx, &before, "-n", ns, "deployment", "web")
			Expect(before.Spec.Template.Spec.Containers).To(HaveLen(2))

			Expect(k.ok(ctx, "-n", ns, "patch", "deployment", "web", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"NEW","value":"2"}]}]}}}}`)).To(Equal("deployment.apps/web patched\n"))
			var after appsv1.Deployment
			k.getJSON(ctx, &after, "-n", ns, "deployment", "web")
			Expect(after.Spec.Template.Spec.Containers).To(HaveLen(2))
			Expect(after.Spec.Template.Spec.Containers[0].Name).To(Equal("app"))
			// Without $setElementOrder, the patch's elements come first.
			Expect(after.Spec.Template.Spec.Containers[0].Env).To(Equal([]corev1.EnvVar{{Name: "NEW", Value: "2"}, {Name: "OLD", Value: "1"}}))
			Expect(after.Spec.Template.Spec.Containers[1]).To(Equal(before.Spec.Template.Spec.Containers[1]), "the other container is untouched")

			k.ok(ctx, "-n", ns, "patch", "deployment", "web", "--type=strategic", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"OLD","$patch":"delete"}]}]}}}}`)
			k.ok(ctx, "-n", ns, "patch", "deployment", "web", "--type=strategic", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}`)
			k.getJSON(ctx, &after, "-n", ns, "deployment", "web")
			Expect(after.Spec.Template.Spec.Containers).To(HaveLen(1))
			Expect(after.Spec.Template.Spec.Containers[0].Name).To(Equal("app"))
			Expect(after.Spec.Template.Spec.Containers[0].Env).To(Equal([]corev1.EnvVar{{Name: "NEW", Value: "2"}}))
			Expect(after.Generation).To(Equal(before.Generation + 3))
		})

		It("prints the same tables as kube-apiserver for pods, deployments, services, nodes, events and jobs", func(ctx SpecContext) {
			ns := namespace(ctx, "get")
			node := fidelityTableObjects(ctx, ns, tag)
			for _, get := range []struct {
				golden string
				args   []string
			}{
				{"get-pods", []string{"pods"}},
				{"get-deployments", []string{"deployments"}},
				{"get-services", []string{"services"}},
				{"get-node", []string{"node", node}},
				{"get-events", []string{"events"}},
				{"get-jobs", []string{"jobs"}},
			} {
				args := append([]string{"-n", ns, "get"}, get.args...)
				expectKubectlGolden(get.golden, k.version, maskKubectlTable(k.ok(ctx, args...), tag))
				expectKubectlGolden(get.golden+"-wide", k.version, maskKubectlTable(k.ok(ctx, append(args, "-o", "wide")...), tag))
			}
		})

		It("explains a field from the served OpenAPI", func(ctx SpecContext) {
			expectKubectlGolden("explain-deployment.spec.strategy", k.version, k.ok(ctx, "explain", "deployment.spec.strategy"))
		})

		It("explains a field recursively from the served OpenAPI", func(ctx SpecContext) {
			expectKubectlGolden("explain-pod.spec.containers-recursive", k.version, k.ok(ctx, "explain", "pod.spec.containers", "--recursive"))
		})

		It("validates unknown fields strictly or with a warning", func(ctx SpecContext) {
			ns := namespace(ctx, "validate")
			typo := fidelityDeploymentYAML("web", map[string]string{"app": "web"}, nil, "  replica: 2\n")
			r := k.run(ctx, typo, "-n", ns, "apply", "--validate=strict", "-f", "-")
			Expect(r.ExitCode()).NotTo(BeZero(), "%+v", r)
			Expect(r.Stderr).To(ContainSubstring(`unknown field "spec.replica"`))
			r = k.run(ctx, "", "-n", ns, "get", "deployment", "web")
			Expect(r.Stderr).To(ContainSubstring(`deployments.apps "web" not found`), "a refused apply creates nothing")

			r = k.run(ctx, typo, "-n", ns, "apply", "--validate=warn", "-f", "-")
			Expect(r.Err).NotTo(HaveOccurred(), "%+v", r)
			Expect(r.Stdout).To(Equal("deployment.apps/web created\n"))
			Expect(r.Stderr).To(ContainSubstring(`Warning: unknown field "spec.replica"`))

			// On an update (a patch) too.
			typo2 := fidelityDeploymentYAML("web", map[string]string{"app": "web", "v": "2"}, nil, "  replicaz: 2\n")
			r = k.run(ctx, typo2, "-n", ns, "apply", "--validate=strict", "-f", "-")
			Expect(r.ExitCode()).NotTo(BeZero(), "%+v", r)
			Expect(r.Stderr).To(ContainSubstring(`unknown field "spec.replicaz"`))
			Expect(k.ok(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.metadata.labels.v}")).To(BeEmpty())
			r = k.run(ctx, typo2, "-n", ns, "apply", "--validate=warn", "-f", "-")
			Expect(r.Err).NotTo(HaveOccurred(), "%+v", r)
			Expect(r.Stdout).To(Equal("deployment.apps/web configured\n"))
			Expect(r.Stderr).To(ContainSubstring(`Warning: unknown field "spec.replicaz"`))
			Expect(k.ok(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.metadata.labels.v}")).To(Equal("2"))
		})

		It("waits in rollout status until the deployment status reports the rollout complete", func(ctx SpecContext) {
			ns := namespace(ctx, "rollout-status")
			k.okIn(ctx, fidelityDeploymentYAML("web", map[string]string{"app": "web"}, nil, "  replicas: 2\n"), "-n", ns, "apply", "-f", "-")
			done := make(chan framework.KubectlResult, 1)
			go func() {
				defer GinkgoRecover()
				done <- k.run(ctx, "", "-n", ns, "rollout", "status", "deployment/web", "--timeout=20s")
			}()
			Consistently(done).WithTimeout(time.Second).ShouldNot(Receive(), "rollout status returned before the deployment status said the rollout was done")

			// What the deployment controller writes once the rollout is done.
			generation := k.ok(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.metadata.generation}")
			now := time.Now().UTC().Format(time.RFC3339)
			status := fmt.Sprintf(`{"status":{"observedGeneration":%s,"replicas":2,"updatedReplicas":2,"readyReplicas":2,"availableReplicas":2,"conditions":[`+
				`{"type":"Available","status":"True","reason":"MinimumReplicasAvailable","message":"Deployment has minimum availability.","lastUpdateTime":%q,"lastTransitionTime":%q},`+
				`{"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable","message":"ReplicaSet \"web-5d4f8b9c7\" has successfully progressed.","lastUpdateTime":%q,"lastTransitionTime":%q}]}}`,
				generation, now, now, now, now)
			k.ok(ctx, "-n", ns, "patch", "deployment", "web", "--subresource=status", "--type=merge", "-p", status)

			var r framework.KubectlResult
			Eventually(done).WithTimeout(30 * time.Second).Should(Receive(&r))
			Expect(r.Err).NotTo(HaveOccurred(), "%+v", r)
			Expect(r.Stdout).To(ContainSubstring("Waiting for deployment"))
			Expect(r.Stdout).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		})

		It("lists the rollout history and undoes a rollout from the deployment's ReplicaSets", func(ctx SpecContext) {
			ns := namespace(ctx, "rollout-undo")
			template := func(image, hash string) corev1.PodTemplateSpec {
				labels := map[string]string{"app": "web"}
				if hash != "" {
					labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
				}
				return corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
				}
			}
			apps := target.Clientset().AppsV1()
			d, err := apps.Deployments(ns).Create(ctx, &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"deployment.kubernetes.io/revision": "2"}},
				Spec: appsv1.DeploymentSpec{
					Replicas: ptr.To(int32(2)),
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
					Template: template("registry.k8s.io/pause:3.10", ""),
				},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
			for _, rs := range []struct {
				revision, hash, image, cause string
				replicas                     int32
			}{
				{"1", "6b7d9f5c48", "registry.k8s.io/pause:3.9", "", 0},
				{"2", "7c9d8b6f5d", "registry.k8s.io/pause:3.10", "kubectl set image deployment/web app=registry.k8s.io/pause:3.10", 2},
			} {
				annotations := map[string]string{
					"deployment.kubernetes.io/revision":         rs.revision,
					"deployment.kubernetes.io/desired-replicas": "2",
					"deployment.kubernetes.io/max-replicas":     "3",
				}
				if rs.cause != "" {
					annotations["kubernetes.io/change-cause"] = rs.cause
				}
				_, err := apps.ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
					ObjectMeta: metav1.ObjectMeta{
						Name:            "web-" + rs.hash,
						Labels:          map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: rs.hash},
						Annotations:     annotations,
						OwnerReferences: []metav1.OwnerReference{owner},
					},
					Spec: appsv1.ReplicaSetSpec{
						Replicas: ptr.To(rs.replicas),
						Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: rs.hash}},
						Template: template(rs.image, rs.hash),
					},
				}, metav1.CreateOptions{})
				Expect(err).NotTo(HaveOccurred())
			}
			// A ReplicaSet the deployment does not control is not history.
			_, err = apps.ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Name: "stray", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"deployment.kubernetes.io/revision": "7"}},
				Spec: appsv1.ReplicaSetSpec{
					Replicas: ptr.To(int32(0)),
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "stray": "yes"}},
					Template: func() corev1.PodTemplateSpec {
						t := template("registry.k8s.io/pause:3.8", "")
						t.Labels["stray"] = "yes"
						return t
					}(),
				},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())

			history := k.ok(ctx, "-n", ns, "rollout", "history", "deployment/web")
			Expect(history).To(MatchRegexp(`^deployment\.apps/web *\nREVISION +CHANGE-CAUSE\n`))
			Expect(history).To(MatchRegexp(`(?m)^1 +<none>$`))
			Expect(history).To(MatchRegexp(`(?m)^2 +kubectl set image deployment/web app=registry\.k8s\.io/pause:3\.10$`))
			Expect(history).NotTo(MatchRegexp(`(?m)^7 `))
			Expect(k.ok(ctx, "-n", ns, "rollout", "history", "deployment/web", "--revision=1")).To(MatchRegexp(`Image:\s+registry\.k8s\.io/pause:3\.9\n`))

			Expect(k.ok(ctx, "-n", ns, "rollout", "undo", "deployment/web")).To(Equal("deployment.apps/web rolled back\n"))
			got, err := apps.Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Spec.Template.Spec.Containers[0].Image).To(Equal("registry.k8s.io/pause:3.9"))
			Expect(got.Spec.Template.Labels).To(Equal(map[string]string{"app": "web"}), "the pod-template-hash label is not copied back")
			Expect(got.Generation).To(Equal(d.Generation + 1))

			Expect(k.ok(ctx, "-n", ns, "rollout", "undo", "deployment/web", "--to-revision=2")).To(Equal("deployment.apps/web rolled back\n"))
			Expect(k.ok(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")).To(Equal("registry.k8s.io/pause:3.10"))
			r := k.run(ctx, "", "-n", ns, "rollout", "undo", "deployment/web", "--to-revision=7")
			Expect(r.ExitCode()).NotTo(BeZero(), "%+v", r)
			Expect(r.Stderr).To(ContainSubstring("unable to find specified revision 7 in history"))
		})
	})
}

// fidelityTableObjects creates in ns, and cluster-wide with tag in their
// names, objects whose tables are deterministic once ages are masked, and
// returns the name of the Node.
func fidelityTableObjects(ctx SpecContext, ns, tag string) string {
	GinkgoHelper()
	// The Service with externalIPs draws a deprecation warning, which is
	// not what this spec is about.
	cfg := rest.CopyConfig(target.Config)
	cfg.WarningHandler = rest.NoWarnings{}
	cs := kubernetes.NewForConfigOrDie(cfg)
	now := metav1.Now()
	ago := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

	node := "fidelity-node-" + tag
	_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{
			"kubernetes.io/hostname": node, "kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": "",
		}},
		Spec: corev1.NodeSpec{PodCIDR: "10.244." + tag + ".0/24", PodCIDRs: []string{"10.244." + tag + ".0/24"}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status",
				LastHeartbeatTime: now, LastTransitionTime: ago(time.Hour),
			}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.10." + tag}, {Type: corev1.NodeHostName, Address: node}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: "m-" + tag, SystemUUID: "s-" + tag, BootID: "b-" + tag,
				KernelVersion: "6.1.0-28-amd64", OSImage: "Debian GNU/Linux 12 (bookworm)", ContainerRuntimeVersion: "containerd://1.7.24",
				KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64",
			},
		},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		Expect(cs.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{})).To(Succeed())
	})

	// Pods: one pending, one running, one restarting with a readiness gate.
	pods := cs.CoreV1().Pods(ns)
	for _, p := range []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "pending"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "running"}, Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "restarting"}, Spec: corev1.PodSpec{
			NodeName:       node,
			Containers:     []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}, {Name: "sidecar", Image: "registry.k8s.io/pause:3.9"}},
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "example.com/ready"}},
		}},
	} {
		_, err := pods.Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	}
	running := func(name string, restarts int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{
			Name: name, Ready: true, Started: ptr.To(true), RestartCount: restarts, Image: "registry.k8s.io/pause:3.10",
			ImageID: "registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a", ContainerID: "containerd://" + name,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: ago(time.Minute)}},
		}
	}
	setStatus := func(name string, status corev1.PodStatus) {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		p.Status = status
		_, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
	}
	conditions := func(ready corev1.ConditionStatus) []corev1.PodCondition {
		var c []corev1.PodCondition
		for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			s := corev1.ConditionTrue
			if t == corev1.ContainersReady || t == corev1.PodReady {
				s = ready
			}
			c = append(c, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: ago(time.Minute)})
		}
		return c
	}
	setStatus("running", corev1.PodStatus{
		Phase: corev1.PodRunning, Conditions: conditions(corev1.ConditionTrue), QOSClass: corev1.PodQOSBestEffort,
		HostIP: "192.168.10." + tag, HostIPs: []corev1.HostIP{{IP: "192.168.10." + tag}},
		PodIP: "10.244." + tag + ".5", PodIPs: []corev1.PodIP{{IP: "10.244." + tag + ".5"}},
		StartTime: ptr.To(ago(time.Minute)), ContainerStatuses: []corev1.ContainerStatus{running("app", 0)},
	})
	app := running("app", 2)
	app.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", StartedAt: ago(10 * time.Minute), FinishedAt: ago(5 * time.Minute), ContainerID: "containerd://app-0"}}
	sidecar := corev1.ContainerStatus{
		Name: "sidecar", Image: "registry.k8s.io/pause:3.9", Started: ptr.To(false),
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
	}
	setStatus("restarting", corev1.PodStatus{
		Phase: corev1.PodRunning, Conditions: conditions(corev1.ConditionFalse), QOSClass: corev1.PodQOSBestEffort,
		HostIP: "192.168.10." + tag, HostIPs: []corev1.HostIP{{IP: "192.168.10." + tag}},
		PodIP: "10.244." + tag + ".6", PodIPs: []corev1.PodIP{{IP: "10.244." + tag + ".6"}},
		StartTime: ptr.To(ago(10 * time.Minute)), ContainerStatuses: []corev1.ContainerStatus{app, sidecar},
	})

	// Deployments: one with the status a controller would write, one without.
	deployments := cs.AppsV1().Deployments(ns)
	for _, d := range []struct {
		name     string
		replicas int32
		images   []string
	}{
		{"web", 2, []string{"registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.9"}},
		{"idle", 3, []string{"registry.k8s.io/pause:3.10"}},
	} {
		var containers []corev1.Container
		for i, image := range d.images {
			containers = append(containers, corev1.Container{Name: []string{"app", "sidecar"}[i], Image: image})
		}
		_, err := deployments.Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: d.name},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(d.replicas),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": d.name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": d.name}}, Spec: corev1.PodSpec{Containers: containers}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	}
	web, err := deployments.Get(ctx, "web", metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	web.Status = appsv1.DeploymentStatus{ObservedGeneration: web.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1, AvailableReplicas: 1, UnavailableReplicas: 1}
	_, err = deployments.UpdateStatus(ctx, web, metav1.UpdateOptions{})
	Expect(err).NotTo(HaveOccurred())

	// Services of every type, with fixed ClusterIPs and NodePorts.
	services := cs.CoreV1().Services(ns)
	n, err := strconv.Atoi(tag)
	Expect(err).NotTo(HaveOccurred())
	tagNum := int32(n)
	web80 := []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}, {Name: "https", Port: 443, TargetPort: intstr.FromString("https")}}
	for _, s := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96." + tag + ".10", Selector: map[string]string{"app": "web"}, Ports: web80}},
		{ObjectMeta: metav1.ObjectMeta{Name: "web-nodeport"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96." + tag + ".11", Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30000 + tagNum, Protocol: corev1.ProtocolTCP}, {Name: "dns", Port: 53, NodePort: 31000 + tagNum, Protocol: corev1.ProtocolUDP}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "web-lb"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96." + tag + ".12", Selector: map[string]string{"app": "web"},
			AllocateLoadBalancerNodePorts: ptr.To(false), Ports: []corev1.ServicePort{{Port: 443}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{{Port: 5432}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "upstream"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "pinned"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96." + tag + ".13", ExternalIPs: []string{"203.0.113." + tag}, Ports: []corev1.ServicePort{{Port: 8080, Protocol: corev1.ProtocolSCTP}}}},
	} {
		_, err := services.Create(ctx, s, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred(), s.Name)
	}
	lb, err := services.Get(ctx, "web-lb", metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	lb.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100." + tag}}
	_, err = services.UpdateStatus(ctx, lb, metav1.UpdateOptions{})
	Expect(err).NotTo(HaveOccurred())

	// Events: two core/v1 Events and one events.k8s.io/v1 Event.
	for _, e := range []*corev1.Event{
		{
			ObjectMeta:     metav1.ObjectMeta{Name: "running.started"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "running", APIVersion: "v1", FieldPath: "spec.containers{app}"},
			Reason:         "Started", Message: "Started container app", Type: corev1.EventTypeNormal,
			Source:         corev1.EventSource{Component: "kubelet", Host: node},
			FirstTimestamp: ago(2 * time.Minute), LastTimestamp: ago(time.Minute), Count: 1,
		},
		{
			ObjectMeta:     metav1.ObjectMeta{Name: "restarting.backoff"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "restarting", APIVersion: "v1", FieldPath: "spec.containers{app}"},
			Reason:         "BackOff", Message: "Back-off restarting failed container app", Type: corev1.EventTypeWarning,
			Source:         corev1.EventSource{Component: "kubelet", Host: node},
			FirstTimestamp: ago(9 * time.Minute), LastTimestamp: ago(5 * time.Minute), Count: 5,
		},
	} {
		_, err := cs.CoreV1().Events(ns).Create(ctx, e, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred(), e.Name)
	}
	_, err = cs.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "web.scaled"},
		EventTime:  metav1.NewMicroTime(now.Add(-3 * time.Minute)), ReportingController: "deployment-controller", ReportingInstance: "deployment-controller-fidelity",
		Action: "ScalingReplicaSet", Reason: "ScalingReplicaSet", Note: "Scaled up replica set web-5d4f8b9c7 from 0 to 2", Type: corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{Kind: "Deployment", Namespace: ns, Name: "web", APIVersion: "apps/v1"},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())

	// Jobs: a suspended one (nothing runs) and one whose status says it completed.
	jobs := cs.BatchV1().Jobs(ns)
	for _, j := range []struct {
		name        string
		suspend     bool
		completions int32
	}{{"suspended", true, 3}, {"finished", false, 1}} {
		_, err := jobs.Create(ctx, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: j.name},
			Spec: batchv1.JobSpec{
				Suspend: ptr.To(j.suspend), Completions: ptr.To(j.completions), Parallelism: ptr.To(int32(1)),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "work", Image: "registry.k8s.io/pause:3.10"}}}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred(), j.name)
	}
	finished, err := jobs.Get(ctx, "finished", metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	finished.Status = batchv1.JobStatus{
		StartTime: ptr.To(ago(3 * time.Minute)), CompletionTime: ptr.To(ago(2 * time.Minute)), Succeeded: 1, Ready: ptr.To(int32(0)), Terminating: ptr.To(int32(0)),
		UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
		Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastProbeTime: ago(2 * time.Minute), LastTransitionTime: ago(2 * time.Minute)},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastProbeTime: ago(2 * time.Minute), LastTransitionTime: ago(2 * time.Minute)},
		},
	}
	_, err = jobs.UpdateStatus(ctx, finished, metav1.UpdateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return node
}
