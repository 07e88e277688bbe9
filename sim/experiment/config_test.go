package experiment

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFiles writes files (name -> content) into a new directory and
// returns the path of the first, the workload file.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "performance-config.yaml")
}

const goodPod = `apiVersion: v1
kind: Pod
metadata:
  generateName: pod-
spec:
  containers:
  - image: registry.k8s.io/pause:3.10.2
    name: pause
`

// TestBadInput: a malformed workload file, an unknown op, an unknown
// template path or a wrong parameter fails before anything starts, with
// the file, the line or op, and the reason.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		// want are substrings of the error.
		want []string
	}{{
		name: "malformed YAML",
		file: "- name: A\n  workloadTemplate: [\n",
		want: []string{"performance-config.yaml", "line 2", "did not find expected node content"},
	}, {
		name: "unknown op",
		file: `- name: A
  workloadTemplate:
  - opcode: createNodes
    count: 1
  - opcode: createPodz
    count: 1
  workloads:
  - name: w
`,
		want: []string{"performance-config.yaml:5", "A: op 1 (createPodz)", `unknown opcode "createPodz"`},
	}, {
		name: "unknown field of an op",
		file: `- name: A
  workloadTemplate:
  - opcode: createPods
    count: 1
    collectMetrics: true
    podTemplatPath: pod.yaml
  workloads:
  - name: w
`,
		want: []string{"performance-config.yaml:6", "op 0 (createPods)", `unknown field "podTemplatPath"`},
	}, {
		name: "unknown template path",
		file: `- name: A
  workloadTemplate:
  - opcode: createNodes
    count: 1
  - opcode: createPods
    count: 1
    collectMetrics: true
    podTemplatePath: templates/missing.yaml
  workloads:
  - name: w
`,
		want: []string{"performance-config.yaml:5", "A/w: op 1 (createPods)", "templates/missing.yaml", "no such file or directory"},
	}, {
		name: "template that does not decode as a pod",
		file: `- name: A
  workloadTemplate:
  - opcode: createPods
    count: 1
    collectMetrics: true
    podTemplatePath: bad.yaml
  workloads:
  - name: w
`,
		want: []string{"performance-config.yaml:3", "A/w: op 0 (createPods)", "bad.yaml", `unknown field "containerz"`},
	}, {
		name: "undefined parameter",
		file: `- name: A
  workloadTemplate:
  - opcode: createPods
    countParam: $measurePods
    collectMetrics: true
  workloads:
  - name: w
    params:
      initPods: 3
`,
		want: []string{"performance-config.yaml:3", "A/w: op 0 (createPods)", "parameter measurePods is undefined"},
	}, {
		name: "unused parameter",
		file: `- name: A
  workloadTemplate:
  - opcode: createPods
    countParam: $measurePods
    collectMetrics: true
  workloads:
  - name: w
    params:
      measurePods: 3
      measurePodz: 3
`,
		want: []string{"performance-config.yaml:7", "A/w", "[measurePodz]", "unused"},
	}, {
		name: "no op collects metrics",
		file: `- name: A
  workloadTemplate:
  - opcode: createPods
    count: 1
  workloads:
  - name: w
`,
		want: []string{"performance-config.yaml:1", "A", "no op in the workload template collects metrics"},
	}, {
		name: "unknown feature gate",
		file: `- name: A
  featureGates:
    NoSuchGate: true
  workloadTemplate:
  - opcode: createPods
    count: 1
    collectMetrics: true
  workloads:
  - name: w
`,
		want: []string{"performance-config.yaml:9", "A/w", `unknown feature gate "NoSuchGate"`},
	}, {
		name: "invalid op arguments",
		file: `- name: A
  workloadTemplate:
  - opcode: createPods
    count: 1
    collectMetrics: true
    skipWaitToCompletion: true
  workloads:
  - name: w
`,
		want: []string{"performance-config.yaml:3", "op 0 (createPods)", "collectMetrics and skipWaitToCompletion cannot be true at the same time"},
	}, {
		name: "not supported by kubesim",
		file: `- name: A
  workloadTemplate:
  - opcode: createResourceClaims
    countParam: $n
    namespace: x
    templatePath: claim.yaml
  - opcode: createPods
    count: 1
    collectMetrics: true
  workloads:
  - name: w
    params:
      n: 1
`,
		want: []string{"performance-config.yaml:3", "A/w: op 0 (createResourceClaims)", "not supported by kubesim"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFiles(t, map[string]string{
				"performance-config.yaml": tc.file,
				"pod.yaml":                goodPod,
				"bad.yaml":                strings.Replace(goodPod, "containers:", "containerz:", 1),
			})
			f, err := Load(path)
			if err == nil {
				_, err = prepare(f, Options{File: path})
			}
			if err == nil {
				t.Fatal("no error")
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Errorf("error %v is not a *FileError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestUpstreamFilesLoad: scheduler_perf's own files of the pin load and
// the workloads the issue names prepare, unchanged.
func TestUpstreamFilesLoad(t *testing.T) {
	dir := upstreamDir(t)
	for _, tc := range []struct{ file, filter string }{
		{"misc/performance-config.yaml", "SchedulingBasic/"},
		{"affinity/performance-config.yaml", "SchedulingNodeAffinity|SchedulingPodAntiAffinity/"},
		{"topology_spreading/performance-config.yaml", "^TopologySpreading/"},
		{"default_preemption/performance-config.yaml", "PreemptionBasic/"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			plans, err := prepare(f, Options{File: path, Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			if len(plans) < 3 {
				t.Fatalf("%d workloads selected by %q, want the 5-node, 500-or-1000-node and 5000-node variants", len(plans), tc.filter)
			}
			for _, p := range plans {
				if p.pods == 0 {
					t.Errorf("%s creates no pods", p.name)
				}
			}
		})
	}
}

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		filter, tc, w string
		want          bool
	}{
		{"", "SchedulingBasic", "500Nodes", true},
		{"SchedulingBasic/500Nodes$", "SchedulingBasic", "500Nodes", true},
		{"SchedulingBasic/500Nodes$", "SchedulingBasic", "5000Nodes_500Nodes", true},
		{"SchedulingBasic/^500Nodes$", "SchedulingBasic", "5000Nodes_500Nodes", false},
		{"SchedulingBasic/500Nodes$", "SchedulingBasic", "500Nodes_x", false},
		{"SchedulingBasic", "SchedulingBasicX", "500Nodes", true},
		{"^SchedulingBasic$", "SchedulingBasicX", "500Nodes", false},
		{"Preemption/(5|1000)Nodes", "PreemptionBasic", "1000Nodes", true},
	} {
		re, err := compileFilter(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := selected(re, tc.tc, tc.w); got != tc.want {
			t.Errorf("filter %q on %s/%s: %v, want %v", tc.filter, tc.tc, tc.w, got, tc.want)
		}
	}
}

// TestThroughputItem: the average and nearest-rank percentiles of the
// per-second samples, as scheduler_perf's throughputCollector.
func TestThroughputItem(t *testing.T) {
	for _, tc := range []struct {
		samples []float64
		want    map[string]float64
	}{
		{nil, nil},
		{[]float64{100}, map[string]float64{"Average": 100, "Perc50": 100, "Perc90": 100, "Perc95": 100, "Perc99": 100}},
		{[]float64{400, 100, 300, 200}, map[string]float64{"Average": 250, "Perc50": 200, "Perc90": 400, "Perc95": 400, "Perc99": 400}},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, map[string]float64{"Average": 5.5, "Perc50": 5, "Perc90": 9, "Perc95": 10, "Perc99": 10}},
	} {
		item := throughputItem(map[string]string{"Name": "n"}, tc.samples)
		if len(item.Data) != len(tc.want) {
			t.Errorf("%v: data %v, want %v", tc.samples, item.Data, tc.want)
			continue
		}
		for k, v := range tc.want {
			if item.Data[k] != v {
				t.Errorf("%v: %s %v, want %v", tc.samples, k, item.Data[k], v)
			}
		}
		if tc.want != nil && (item.Labels["Metric"] != "SchedulingThroughput" || item.Unit != "pods/s") {
			t.Errorf("%v: labels %v unit %q", tc.samples, item.Labels, item.Unit)
		}
	}
}
