package experiment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubesim/kubesim/kubeletsim"
)

// File is a workload file in scheduler_perf's format: a list of test
// cases, each a template of ops and the workloads (parameter sets) it runs
// with.
type File struct {
	// Path is where the file was read from; template paths are relative
	// to its directory, as scheduler_perf runs from there.
	Path      string
	TestCases []*TestCase
}

// TestCase is one test case of a workload file (scheduler_perf's
// testCase).
type TestCase struct {
	Name                           string
	FeatureGates                   map[string]bool
	MetricsCollectorConfig         *MetricsCollectorConfig
	WorkloadTemplate               []Op
	Workloads                      []*Workload
	SchedulerConfigPath            string
	DefaultPodTemplatePath         *string
	Labels                         []string
	DefaultThresholdMetricSelector *ThresholdMetricSelector

	// kubesim's extensions (scheduler_perf does not read them):

	// NodeProfiles are lifecycle profiles node pools (createNodePool)
	// name: how long images pull, containers start and run.
	NodeProfiles []kubeletsim.Profile
	// TimeScale divides the simulated durations (sim.Config.TimeScale).
	TimeScale float64

	line    int
	opLines []int
}

// Workload is one parameter set of a test case (scheduler_perf's
// Workload); TestCase/Workload names it in filters and results.
type Workload struct {
	Name                    string                   `json:"name"`
	Params                  map[string]any           `json:"params"`
	Labels                  []string                 `json:"labels"`
	Threshold               Thresholds               `json:"threshold"`
	ThresholdMetricSelector *ThresholdMetricSelector `json:"thresholdMetricSelector"`
	FeatureGates            map[string]bool          `json:"featureGates"`

	line int
}

// Thresholds is a workload's threshold: one value, or one per topic (the
// topic name scheduler_perf's benchmark passes, the directory name of the
// file here unless Options.Topic says otherwise).
type Thresholds struct {
	Value   float64
	ByTopic map[string]float64
}

// UnmarshalJSON reads a number or a map of topic to number.
func (t *Thresholds) UnmarshalJSON(b []byte) error {
	if errFloat := json.Unmarshal(b, &t.Value); errFloat != nil {
		if errMap := json.Unmarshal(b, &t.ByTopic); errMap != nil {
			return fmt.Errorf("expected either float64 or topic name -> float64 map: %w, %w", errFloat, errMap)
		}
	}
	return nil
}

// Get returns the threshold of a topic.
func (t Thresholds) Get(topic string) float64 {
	if v, ok := t.ByTopic[topic]; ok {
		return v
	}
	return t.Value
}

// ThresholdMetricSelector names the data item a threshold applies to.
type ThresholdMetricSelector struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	DataBucket  string            `json:"dataBucket"`
	ExpectLower bool              `json:"expectLower"`
}

// MetricsCollectorConfig lists the scheduler histograms to collect and the
// label values to collect them by.
type MetricsCollectorConfig struct {
	Metrics map[string][]*LabelValues `json:"metrics"`
}

// LabelValues are the values of one label a histogram is collected by.
type LabelValues struct {
	Label  string   `json:"label"`
	Values []string `json:"values"`
}

// FileError is a problem with a workload file, where it is.
type FileError struct {
	File string
	// Line is the line in File, 0 when unknown.
	Line int
	// Where names the test case, workload or op.
	Where string
	Err   error
}

func (e *FileError) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Where == "" {
		return fmt.Sprintf("%s: %v", pos, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", pos, e.Where, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// Load reads a workload file and checks what can be checked without its
// parameters: its syntax, its fields (unknown ones are errors, as
// scheduler_perf's strict decoding makes them), its opcodes and their
// arguments, and that each test case collects metrics.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f := &File{Path: abs}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &FileError{File: path, Err: err}
	}
	if len(root.Content) == 0 {
		return nil, &FileError{File: path, Err: errors.New("no test cases defined")}
	}
	doc := root.Content[0]
	if doc.Kind != yaml.SequenceNode {
		return nil, &FileError{File: path, Line: doc.Line, Err: errors.New("expected a list of test cases")}
	}
	names := map[string]bool{}
	for _, n := range doc.Content {
		tc, err := parseTestCase(path, n)
		if err != nil {
			return nil, err
		}
		if names[tc.Name] {
			return nil, &FileError{File: path, Line: tc.line, Where: tc.Name, Err: errors.New("name is not unique")}
		}
		names[tc.Name] = true
		f.TestCases = append(f.TestCases, tc)
	}
	if len(f.TestCases) == 0 {
		return nil, &FileError{File: path, Err: errors.New("no test cases defined")}
	}
	return f, nil
}

func parseTestCase(file string, n *yaml.Node) (*TestCase, error) {
	tc := &TestCase{line: n.Line}
	fail := func(line int, err error) error {
		return &FileError{File: file, Line: line, Where: orDefault(tc.Name, "test case"), Err: err}
	}
	if n.Kind != yaml.MappingNode {
		return nil, fail(n.Line, errors.New("expected a test case (a mapping)"))
	}
	var ops, workloads *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch strings.ToLower(k.Value) {
		case "name":
			err = decodeNode(v, &tc.Name)
		case "featuregates":
			err = decodeNode(v, &tc.FeatureGates)
		case "metricscollectorconfig":
			err = decodeNode(v, &tc.MetricsCollectorConfig)
		case "workloadtemplate":
			ops = v
		case "workloads":
			workloads = v
		case "schedulerconfigpath":
			err = decodeNode(v, &tc.SchedulerConfigPath)
		case "defaultpodtemplatepath":
			err = decodeNode(v, &tc.DefaultPodTemplatePath)
		case "labels":
			err = decodeNode(v, &tc.Labels)
		case "defaultthresholdmetricselector":
			err = decodeNode(v, &tc.DefaultThresholdMetricSelector)
		case "nodeprofiles":
			err = decodeNode(v, &tc.NodeProfiles)
		case "timescale":
			err = decodeNode(v, &tc.TimeScale)
			if err == nil && tc.TimeScale < 0 {
				err = errors.New("timeScale must not be negative")
			}
		default:
			err = fmt.Errorf("unknown field %q", k.Value)
			v = k
		}
		if err != nil {
			return nil, fail(lineOf(v, err), err)
		}
	}
	if tc.Name == "" {
		return nil, fail(n.Line, errors.New("name must be set"))
	}
	if ops == nil || len(ops.Content) == 0 {
		return nil, fail(n.Line, errors.New("no ops defined"))
	}
	if ops.Kind != yaml.SequenceNode {
		return nil, fail(ops.Line, errors.New("workloadTemplate: expected a list of ops"))
	}
	for i, o := range ops.Content {
		op, err := parseOp(o)
		if err != nil {
			return nil, &FileError{File: file, Line: lineOf(o, err), Where: fmt.Sprintf("%s: op %d%s", tc.Name, i, opcodeSuffix(o)), Err: err}
		}
		tc.WorkloadTemplate = append(tc.WorkloadTemplate, op)
		tc.opLines = append(tc.opLines, o.Line)
	}
	if workloads == nil || len(workloads.Content) == 0 {
		return nil, fail(n.Line, errors.New("no workloads defined"))
	}
	if workloads.Kind != yaml.SequenceNode {
		return nil, fail(workloads.Line, errors.New("workloads: expected a list"))
	}
	seen := map[string]bool{}
	for _, wn := range workloads.Content {
		w := &Workload{line: wn.Line}
		if err := decodeNode(wn, w); err != nil {
			return nil, fail(lineOf(wn, err), fmt.Errorf("workload: %w", err))
		}
		if w.Name == "" {
			return nil, fail(wn.Line, errors.New("workload name must be set"))
		}
		if seen[w.Name] {
			return nil, fail(wn.Line, fmt.Errorf("workload name %s is not unique", w.Name))
		}
		seen[w.Name] = true
		if w.ThresholdMetricSelector == nil {
			w.ThresholdMetricSelector = tc.DefaultThresholdMetricSelector
		}
		if w.ThresholdMetricSelector == nil {
			w.ThresholdMetricSelector = &ThresholdMetricSelector{Name: "SchedulingThroughput", DataBucket: "Average"}
		}
		if err := w.validate(tc.MetricsCollectorConfig); err != nil {
			return nil, &FileError{File: file, Line: wn.Line, Where: tc.Name + "/" + w.Name, Err: err}
		}
		tc.Workloads = append(tc.Workloads, w)
	}
	collects := false
	for _, op := range tc.WorkloadTemplate {
		collects = collects || op.collectsMetrics()
	}
	if !collects {
		return nil, fail(n.Line, errors.New("no op in the workload template collects metrics"))
	}
	return tc, nil
}

func (w *Workload) validate(mcc *MetricsCollectorConfig) error {
	if w.Threshold.Value < 0 {
		return fmt.Errorf("invalid Threshold=%f; should be non-negative", w.Threshold.Value)
	}
	for topic, v := range w.Threshold.ByTopic {
		if v < 0 {
			return fmt.Errorf("invalid Threshold=%f for topic %q; should be non-negative", v, topic)
		}
	}
	ms := w.ThresholdMetricSelector
	if ms.DataBucket == "" {
		return fmt.Errorf("dataBucket should be set for metric %v", ms.Name)
	}
	if ms.Name == "SchedulingThroughput" {
		return nil
	}
	if mcc == nil {
		mcc = defaultMetricsCollectorConfig()
	}
	lvs, ok := mcc.Metrics[ms.Name]
	if !ok {
		return fmt.Errorf("the metric %v is targeted, but it's not collected during the test. Make sure the MetricsCollectorConfig is valid", ms.Name)
	}
	for _, combo := range uniqueLVCombos(lvs) {
		if labelsMatch(combo, ms.Labels) {
			return nil
		}
	}
	return fmt.Errorf("no matching labels found for metric %v", ms.Name)
}

// decodeNode decodes a YAML node as scheduler_perf decodes its file:
// YAML to JSON, then strictly (unknown fields are errors) into out, field
// names matched without regard to case.
func decodeNode(n *yaml.Node, out any) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// lineOf is the line of the field an error names in n, or n's line.
func lineOf(n *yaml.Node, err error) int {
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		if line := findKey(n, m[1]); line > 0 {
			return line
		}
	}
	return n.Line
}

func findKey(n *yaml.Node, name string) int {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if strings.EqualFold(n.Content[i].Value, name) {
				return n.Content[i].Line
			}
		}
	}
	for _, c := range n.Content {
		if line := findKey(c, name); line > 0 {
			return line
		}
	}
	return 0
}

func opcodeSuffix(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if strings.EqualFold(n.Content[i].Value, "opcode") {
			return " (" + n.Content[i+1].Value + ")"
		}
	}
	return ""
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Op is one op of a workload template: createNodes, createPods, barrier...
type Op interface {
	// Opcode is the op's opcode.
	Opcode() string
	validate(allowParams bool) error
	collectsMetrics() bool
	// patch returns a copy with the workload's parameters filled in.
	patch(p *params) (Op, error)
}

// Opcodes are the ops a workload file may use.
var Opcodes = []string{
	"createNodes", "createNamespaces", "createPods", "createPodSets", "createAny", "updateAny",
	"churn", "barrier", "sleep", "deletePods", "startCollectingMetrics", "stopCollectingMetrics",
	"startCollectingProfile", "stopCollectingProfile", "createPodGroups", "createResourceClaims",
	"allocResourceClaims",
	// kubesim's:
	"createNodePool", "waitForPods",
}

// unsupported are opcodes of scheduler_perf that kubesim reads but does
// not run; a workload that uses one fails before it starts.
var unsupported = map[string]string{
	"createResourceClaims": "dynamic resource allocation needs a DRA driver's ResourceSlices, which kubesim's simulated nodes do not publish yet",
	"allocResourceClaims":  "dynamic resource allocation needs a DRA driver's ResourceSlices, which kubesim's simulated nodes do not publish yet",
	"createPodGroups":      "workload-aware scheduling (PodGroups) is not run by kubesim yet",
}

func parseOp(n *yaml.Node) (Op, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("expected an op (a mapping with an opcode)")
	}
	code := ""
	for i := 0; i+1 < len(n.Content); i += 2 {
		if strings.EqualFold(n.Content[i].Value, "opcode") {
			code = n.Content[i+1].Value
		}
	}
	var op Op
	switch code {
	case "createNodes":
		op = &createNodesOp{}
	case "createNamespaces":
		op = &createNamespacesOp{}
	case "createPods":
		op = &createPodsOp{}
	case "createPodSets":
		op = &createPodSetsOp{}
	case "createAny":
		op = &createAnyOp{}
	case "updateAny":
		op = &updateAnyOp{}
	case "churn":
		op = &churnOp{}
	case "barrier":
		op = &barrierOp{}
	case "sleep":
		op = &sleepOp{}
	case "deletePods":
		op = &deletePodsOp{}
	case "startCollectingMetrics":
		op = &startCollectingMetricsOp{}
	case "stopCollectingMetrics":
		op = &stopCollectingMetricsOp{}
	case "startCollectingProfile":
		op = &startCollectingProfileOp{}
	case "stopCollectingProfile":
		op = &stopCollectingProfileOp{}
	case "createNodePool":
		op = &createNodePoolOp{}
	case "waitForPods":
		op = &waitForPodsOp{}
	case "createPodGroups", "createResourceClaims", "allocResourceClaims":
		op = &unsupportedOp{}
	case "":
		return nil, errors.New("opcode must be set")
	default:
		return nil, fmt.Errorf("unknown opcode %q; known: %s", code, strings.Join(Opcodes, ", "))
	}
	if u, ok := op.(*unsupportedOp); ok {
		var raw map[string]any
		if err := decodeNode(n, &raw); err != nil {
			return nil, err
		}
		u.Code, u.Fields = code, raw
		return op, nil
	}
	if err := decodeNode(n, op); err != nil {
		return nil, err
	}
	if err := op.validate(true); err != nil {
		return nil, err
	}
	return op, nil
}

// params are a workload's parameters and which of them the ops used.
type params struct {
	values map[string]any
	used   map[string]bool
}

func newParams(w *Workload) *params {
	return &params{values: w.Params, used: map[string]bool{}}
}

func (p *params) get(ref string) (any, error) {
	key := strings.TrimPrefix(ref, "$")
	p.used[key] = true
	v, ok := p.values[key]
	if !ok {
		return nil, fmt.Errorf("parameter %s is undefined", key)
	}
	return v, nil
}

func (p *params) int(ref string) (int, error) {
	v, err := p.get(ref)
	if err != nil {
		return 0, err
	}
	f, ok := v.(float64)
	if !ok {
		return 0, fmt.Errorf("parameter %s has the wrong type %T", strings.TrimPrefix(ref, "$"), v)
	}
	return int(f), nil
}

func (p *params) string(ref string) (string, error) {
	v, err := p.get(ref)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("parameter %s has the wrong type %T", strings.TrimPrefix(ref, "$"), v)
	}
	return s, nil
}

func (p *params) duration(ref string) (time.Duration, error) {
	s, err := p.string(ref)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("parsing duration parameter %s: %w", ref, err)
	}
	return d, nil
}

func (p *params) unused() []string {
	var names []string
	for k := range p.values {
		if !p.used[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// templateParams resolves "$name" and "$name|default" values, as
// scheduler_perf's resolveTemplateParams.
func (p *params) templateParams(in map[string]any) (map[string]any, error) {
	if len(in) == 0 {
		return in, nil
	}
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = v
		s, ok := v.(string)
		if !ok || !strings.HasPrefix(s, "$") {
			continue
		}
		key := s[1:]
		var def *string
		if i := strings.Index(key, "|"); i > 0 {
			d := key[i+1:]
			def, key = &d, key[:i]
		}
		if val, found := p.values[key]; found {
			p.used[key] = true
			out[k] = val
			continue
		}
		if def != nil {
			var val any
			if err := yaml.Unmarshal([]byte(*def), &val); err != nil {
				return nil, fmt.Errorf("decoding parameter %q default %q as YAML: %w", key, *def, err)
			}
			// As JSON would have it: numbers are float64.
			if i, ok := val.(int); ok {
				val = float64(i)
			}
			out[k] = val
			continue
		}
		return nil, fmt.Errorf("parameter %q not found", key)
	}
	return out, nil
}

// countAndTemplate fills in createAny's and updateAny's count parameter
// and template parameters.
func (p *params) countAndTemplate(countParam string, count **int, tp *map[string]any) error {
	if countParam != "" {
		n, err := p.int(countParam)
		if err != nil {
			return err
		}
		*count = &n
	}
	var err error
	*tp, err = p.templateParams(*tp)
	return err
}

func validCount(allowParams bool, count int, countParam string) bool {
	if !allowParams || countParam == "" {
		return count >= 0
	}
	return strings.HasPrefix(countParam, "$")
}

type createNodesOp struct {
	Opcode_                  string                    `json:"opcode"`
	Count                    int                       `json:"count"`
	CountParam               string                    `json:"countParam"`
	NodeTemplatePath         *string                   `json:"nodeTemplatePath"`
	NodeAllocatableStrategy  *nodeAllocatableStrategy  `json:"nodeAllocatableStrategy"`
	LabelNodePrepareStrategy *labelNodePrepareStrategy `json:"labelNodePrepareStrategy"`
	UniqueNodeLabelStrategy  *uniqueNodeLabelStrategy  `json:"uniqueNodeLabelStrategy"`
	TemplateParams           map[string]any            `json:"templateParams"`
}

type nodeAllocatableStrategy struct {
	NodeAllocatable    map[string]string               `json:"nodeAllocatable"`
	CsiNodeAllocatable map[string]*volumeNodeResources `json:"csiNodeAllocatable"`
	MigratedPlugins    []string                        `json:"migratedPlugins"`
}

type volumeNodeResources struct {
	Count *int32 `json:"count"`
}

type labelNodePrepareStrategy struct {
	LabelKey    string   `json:"labelKey"`
	LabelValues []string `json:"labelValues"`
}

type uniqueNodeLabelStrategy struct {
	LabelKey string `json:"labelKey"`
}

func (o *createNodesOp) Opcode() string { return "createNodes" }
func (o *createNodesOp) validate(allow bool) error {
	if !validCount(allow, o.Count, o.CountParam) {
		return fmt.Errorf("invalid Count=%d / CountParam=%q", o.Count, o.CountParam)
	}
	if o.LabelNodePrepareStrategy != nil && len(o.LabelNodePrepareStrategy.LabelValues) == 0 {
		return errors.New("labelNodePrepareStrategy: labelValues must not be empty")
	}
	return nil
}
func (o *createNodesOp) collectsMetrics() bool { return false }
func (o createNodesOp) patch(p *params) (Op, error) {
	var err error
	if o.CountParam != "" {
		if o.Count, err = p.int(o.CountParam); err != nil {
			return nil, err
		}
	}
	if o.TemplateParams, err = p.templateParams(o.TemplateParams); err != nil {
		return nil, err
	}
	return &o, o.validate(false)
}

type createNamespacesOp struct {
	Opcode_               string  `json:"opcode"`
	Prefix                string  `json:"prefix"`
	Count                 int     `json:"count"`
	CountParam            string  `json:"countParam"`
	NamespaceTemplatePath *string `json:"namespaceTemplatePath"`
}

func (o *createNamespacesOp) Opcode() string { return "createNamespaces" }
func (o *createNamespacesOp) validate(allow bool) error {
	if !validCount(allow, o.Count, o.CountParam) {
		return fmt.Errorf("invalid Count=%d / CountParam=%q", o.Count, o.CountParam)
	}
	return nil
}
func (o *createNamespacesOp) collectsMetrics() bool { return false }
func (o createNamespacesOp) patch(p *params) (Op, error) {
	if o.CountParam != "" {
		var err error
		if o.Count, err = p.int(o.CountParam); err != nil {
			return nil, err
		}
	}
	return &o, o.validate(false)
}

type createPodsOp struct {
	Opcode_                           string          `json:"opcode"`
	Count                             int             `json:"count"`
	CountParam                        string          `json:"countParam"`
	CountMultiplierParam              string          `json:"countMultiplierParam"`
	SteadyState                       bool            `json:"steadyState"`
	SteadyStateParam                  string          `json:"steadyStateParam"`
	Duration                          metav1.Duration `json:"duration"`
	DurationParam                     string          `json:"durationParam"`
	CollectMetrics                    bool            `json:"collectMetrics"`
	Namespace                         *string         `json:"namespace"`
	PodTemplatePath                   *string         `json:"podTemplatePath"`
	SkipWaitToCompletion              bool            `json:"skipWaitToCompletion"`
	PersistentVolumeTemplatePath      *string         `json:"persistentVolumeTemplatePath"`
	PersistentVolumeClaimTemplatePath *string         `json:"persistentVolumeClaimTemplatePath"`
	TemplateParams                    map[string]any  `json:"templateParams"`
	SignatureBatchSize                int             `json:"signatureBatchSize"`
	SignatureBatchSizeParam           string          `json:"signatureBatchSizeParam"`
}

func (o *createPodsOp) Opcode() string { return "createPods" }
func (o *createPodsOp) validate(allow bool) error {
	if !validCount(allow, o.SignatureBatchSize, o.SignatureBatchSizeParam) {
		return fmt.Errorf("invalid SignatureBatchSize=%d / SignatureBatchSizeParam=%q", o.SignatureBatchSize, o.SignatureBatchSizeParam)
	}
	if !validCount(allow, o.Count, o.CountParam) {
		return fmt.Errorf("invalid Count=%d / CountParam=%q", o.Count, o.CountParam)
	}
	if o.CountMultiplierParam != "" && !strings.HasPrefix(o.CountMultiplierParam, "$") {
		return fmt.Errorf("invalid CountMultiplierParam=%q", o.CountMultiplierParam)
	}
	if o.CollectMetrics && o.SkipWaitToCompletion {
		return errors.New("collectMetrics and skipWaitToCompletion cannot be true at the same time")
	}
	if o.SkipWaitToCompletion && o.SteadyState {
		return errors.New("skipWaitToCompletion and steadyState cannot be true at the same time")
	}
	if o.SteadyState && !allow && o.Duration.Duration <= 0 {
		return errors.New("when creating pods in a steady state, the test duration must be > 0")
	}
	return nil
}
func (o *createPodsOp) collectsMetrics() bool { return o.CollectMetrics }
func (o createPodsOp) patch(p *params) (Op, error) {
	var err error
	if o.CountParam != "" {
		if o.Count, err = p.int(o.CountParam); err != nil {
			return nil, err
		}
	}
	if o.CountMultiplierParam != "" {
		m, err := p.int(o.CountMultiplierParam)
		if err != nil {
			return nil, err
		}
		o.Count *= m
	}
	if o.SignatureBatchSizeParam != "" {
		if o.SignatureBatchSize, err = p.int(o.SignatureBatchSizeParam); err != nil {
			return nil, err
		}
	}
	if o.SignatureBatchSize == 0 {
		o.SignatureBatchSize = 1
	}
	if o.DurationParam != "" {
		if o.Duration.Duration, err = p.duration(o.DurationParam); err != nil {
			return nil, err
		}
	}
	if o.SteadyStateParam != "" {
		v, err := p.get(o.SteadyStateParam)
		if err != nil {
			return nil, err
		}
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("parameter %s has the wrong type %T", o.SteadyStateParam[1:], v)
		}
		o.SteadyState = b
	}
	if o.TemplateParams, err = p.templateParams(o.TemplateParams); err != nil {
		return nil, err
	}
	return &o, o.validate(false)
}

type createPodSetsOp struct {
	Opcode_         string       `json:"opcode"`
	Count           int          `json:"count"`
	CountParam      string       `json:"countParam"`
	NamespacePrefix string       `json:"namespacePrefix"`
	CreatePodsOp    createPodsOp `json:"createPodsOp"`
}

func (o *createPodSetsOp) Opcode() string { return "createPodSets" }
func (o *createPodSetsOp) validate(allow bool) error {
	if !validCount(allow, o.Count, o.CountParam) {
		return fmt.Errorf("invalid Count=%d / CountParam=%q", o.Count, o.CountParam)
	}
	return o.CreatePodsOp.validate(allow)
}
func (o *createPodSetsOp) collectsMetrics() bool { return o.CreatePodsOp.CollectMetrics }
func (o createPodSetsOp) patch(p *params) (Op, error) {
	if o.CountParam != "" {
		var err error
		if o.Count, err = p.int(o.CountParam); err != nil {
			return nil, err
		}
	}
	return &o, o.validate(true)
}

type createAnyOp struct {
	Opcode_        string         `json:"opcode"`
	Namespace      string         `json:"namespace"`
	TemplatePath   string         `json:"templatePath"`
	Count          *int           `json:"count"`
	CountParam     string         `json:"countParam"`
	TemplateParams map[string]any `json:"templateParams"`
}

func (o *createAnyOp) Opcode() string { return "createAny" }
func (o *createAnyOp) validate(bool) error {
	if o.TemplatePath == "" {
		return errors.New("TemplatePath must be set")
	}
	return nil
}
func (o *createAnyOp) collectsMetrics() bool { return false }
func (o createAnyOp) patch(p *params) (Op, error) {
	if err := p.countAndTemplate(o.CountParam, &o.Count, &o.TemplateParams); err != nil {
		return nil, err
	}
	return &o, o.validate(false)
}

type updateAnyOp struct {
	Opcode_         string         `json:"opcode"`
	Namespace       string         `json:"namespace"`
	TemplatePath    string         `json:"templatePath"`
	Count           *int           `json:"count"`
	CountParam      string         `json:"countParam"`
	UpdatePerSecond int            `json:"updatePerSecond"`
	TemplateParams  map[string]any `json:"templateParams"`
	Subresources    []string       `json:"subresources"`
}

func (o *updateAnyOp) Opcode() string { return "updateAny" }
func (o *updateAnyOp) validate(bool) error {
	if o.TemplatePath == "" {
		return errors.New("TemplatePath must be set")
	}
	if o.UpdatePerSecond < 0 {
		return fmt.Errorf("invalid UpdatePerSecond=%d; should be non-negative", o.UpdatePerSecond)
	}
	return nil
}
func (o *updateAnyOp) collectsMetrics() bool { return false }
func (o updateAnyOp) patch(p *params) (Op, error) {
	if err := p.countAndTemplate(o.CountParam, &o.Count, &o.TemplateParams); err != nil {
		return nil, err
	}
	return &o, o.validate(false)
}

type churnOp struct {
	Opcode_              string   `json:"opcode"`
	Mode                 string   `json:"mode"`
	Number               int      `json:"number"`
	IntervalMilliseconds int64    `json:"intervalMilliseconds"`
	Namespace            *string  `json:"namespace"`
	TemplatePaths        []string `json:"templatePaths"`
}

func (o *churnOp) Opcode() string { return "churn" }
func (o *churnOp) validate(bool) error {
	if o.Mode != "recreate" && o.Mode != "create" {
		return fmt.Errorf("invalid mode: %v. must be one of [recreate create]", o.Mode)
	}
	if o.Number < 0 {
		return fmt.Errorf("number (%v) cannot be negative", o.Number)
	}
	if o.Mode == "recreate" && o.Number == 0 {
		return errors.New("number cannot be 0 when mode is recreate")
	}
	if len(o.TemplatePaths) == 0 {
		return errors.New("at least one template spec file needs to be specified")
	}
	return nil
}
func (o *churnOp) collectsMetrics() bool    { return false }
func (o churnOp) patch(*params) (Op, error) { return &o, nil }

type barrierOp struct {
	Opcode_          string            `json:"opcode"`
	Namespaces       []string          `json:"namespaces"`
	LabelSelector    map[string]string `json:"labelSelector"`
	StageRequirement string            `json:"stageRequirement"`
}

func (o *barrierOp) Opcode() string { return "barrier" }
func (o *barrierOp) validate(bool) error {
	if o.StageRequirement != "" && o.StageRequirement != "Scheduled" && o.StageRequirement != "Attempted" {
		return fmt.Errorf("invalid StageRequirement %s", o.StageRequirement)
	}
	return nil
}
func (o *barrierOp) collectsMetrics() bool { return false }
func (o barrierOp) patch(*params) (Op, error) {
	if o.StageRequirement == "" {
		o.StageRequirement = "Scheduled"
	}
	return &o, nil
}

type sleepOp struct {
	Opcode_       string          `json:"opcode"`
	Duration      metav1.Duration `json:"duration"`
	DurationParam string          `json:"durationParam"`
}

func (o *sleepOp) Opcode() string      { return "sleep" }
func (o *sleepOp) validate(bool) error { return nil }
func (o *sleepOp) collectsMetrics() bool {
	return false
}
func (o sleepOp) patch(p *params) (Op, error) {
	if o.DurationParam != "" {
		var err error
		if o.Duration.Duration, err = p.duration(o.DurationParam); err != nil {
			return nil, err
		}
	}
	return &o, nil
}

type deletePodsOp struct {
	Opcode_              string            `json:"opcode"`
	Namespace            string            `json:"namespace"`
	LabelSelector        map[string]string `json:"labelSelector"`
	SkipWaitToCompletion bool              `json:"skipWaitToCompletion"`
	DeletePodsPerSecond  int               `json:"deletePodsPerSecond"`
}

func (o *deletePodsOp) Opcode() string { return "deletePods" }
func (o *deletePodsOp) validate(bool) error {
	if o.DeletePodsPerSecond < 0 {
		return fmt.Errorf("invalid DeletePodsPerSecond=%d; should be non-negative", o.DeletePodsPerSecond)
	}
	return nil
}
func (o *deletePodsOp) collectsMetrics() bool    { return false }
func (o deletePodsOp) patch(*params) (Op, error) { return &o, nil }

type startCollectingMetricsOp struct {
	Opcode_       string            `json:"opcode"`
	Name          string            `json:"name"`
	Namespaces    []string          `json:"namespaces"`
	LabelSelector map[string]string `json:"labelSelector"`
}

func (o *startCollectingMetricsOp) Opcode() string { return "startCollectingMetrics" }
func (o *startCollectingMetricsOp) validate(bool) error {
	if len(o.Namespaces) == 0 {
		return errors.New("namespaces cannot be empty")
	}
	return nil
}
func (o *startCollectingMetricsOp) collectsMetrics() bool    { return false }
func (o startCollectingMetricsOp) patch(*params) (Op, error) { return &o, nil }

type stopCollectingMetricsOp struct {
	Opcode_ string `json:"opcode"`
}

func (o *stopCollectingMetricsOp) Opcode() string           { return "stopCollectingMetrics" }
func (o *stopCollectingMetricsOp) validate(bool) error      { return nil }
func (o *stopCollectingMetricsOp) collectsMetrics() bool    { return true }
func (o stopCollectingMetricsOp) patch(*params) (Op, error) { return &o, nil }

type startCollectingProfileOp struct {
	Opcode_  string `json:"opcode"`
	Type     string `json:"type"`
	FilePath string `json:"filePath"`
}

func (o *startCollectingProfileOp) Opcode() string { return "startCollectingProfile" }
func (o *startCollectingProfileOp) validate(bool) error {
	if o.FilePath == "" {
		return errors.New("filePath cannot be empty")
	}
	if !strings.EqualFold(o.Type, "CPU") {
		return fmt.Errorf("only CPU profile type is supported, got %q", o.Type)
	}
	return nil
}
func (o *startCollectingProfileOp) collectsMetrics() bool    { return false }
func (o startCollectingProfileOp) patch(*params) (Op, error) { return &o, nil }

type stopCollectingProfileOp struct {
	Opcode_ string `json:"opcode"`
	Type    string `json:"type"`
}

func (o *stopCollectingProfileOp) Opcode() string { return "stopCollectingProfile" }
func (o *stopCollectingProfileOp) validate(bool) error {
	if !strings.EqualFold(o.Type, "CPU") {
		return fmt.Errorf("only CPU profile type is supported, got %q", o.Type)
	}
	return nil
}
func (o *stopCollectingProfileOp) collectsMetrics() bool    { return false }
func (o stopCollectingProfileOp) patch(*params) (Op, error) { return &o, nil }

// createNodePoolOp (kubesim's) adds a pool of simulated nodes: capacity,
// labels, taints and a lifecycle profile (TestCase.NodeProfiles).
type createNodePoolOp struct {
	Opcode_    string              `json:"opcode"`
	Pool       kubeletsim.NodePool `json:"pool"`
	CountParam string              `json:"countParam"`
}

func (o *createNodePoolOp) Opcode() string { return "createNodePool" }
func (o *createNodePoolOp) validate(allow bool) error {
	if !validCount(allow, o.Pool.Count, o.CountParam) {
		return fmt.Errorf("invalid pool.count=%d / countParam=%q", o.Pool.Count, o.CountParam)
	}
	return nil
}
func (o *createNodePoolOp) collectsMetrics() bool { return false }
func (o createNodePoolOp) patch(p *params) (Op, error) {
	if o.CountParam != "" {
		var err error
		if o.Pool.Count, err = p.int(o.CountParam); err != nil {
			return nil, err
		}
	}
	return &o, o.validate(false)
}

// waitForPodsOp (kubesim's) waits until count pods of a namespace
// (matching labelSelector) are in a phase: Running, Succeeded (a Job's
// pods done) or Failed.
type waitForPodsOp struct {
	Opcode_       string            `json:"opcode"`
	Namespace     string            `json:"namespace"`
	LabelSelector map[string]string `json:"labelSelector"`
	Phase         corev1.PodPhase   `json:"phase"`
	Count         int               `json:"count"`
	CountParam    string            `json:"countParam"`
	Timeout       metav1.Duration   `json:"timeout"`
}

func (o *waitForPodsOp) Opcode() string { return "waitForPods" }
func (o *waitForPodsOp) validate(allow bool) error {
	if o.Namespace == "" {
		return errors.New("namespace must be set")
	}
	switch o.Phase {
	case corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed:
	default:
		return fmt.Errorf("phase %q: must be Running, Succeeded or Failed", o.Phase)
	}
	if !validCount(allow, o.Count, o.CountParam) {
		return fmt.Errorf("invalid Count=%d / CountParam=%q", o.Count, o.CountParam)
	}
	return nil
}
func (o *waitForPodsOp) collectsMetrics() bool { return false }
func (o waitForPodsOp) patch(p *params) (Op, error) {
	if o.CountParam != "" {
		var err error
		if o.Count, err = p.int(o.CountParam); err != nil {
			return nil, err
		}
	}
	if o.Timeout.Duration == 0 {
		o.Timeout.Duration = 10 * time.Minute
	}
	return &o, o.validate(false)
}

// unsupportedOp is an op of scheduler_perf that kubesim does not run.
type unsupportedOp struct {
	Code   string
	Fields map[string]any
}

func (o *unsupportedOp) Opcode() string        { return o.Code }
func (o *unsupportedOp) validate(bool) error   { return nil }
func (o *unsupportedOp) collectsMetrics() bool { return false }
func (o *unsupportedOp) patch(p *params) (Op, error) {
	// Mark its parameters used: the error to report is the op's.
	for _, v := range o.Fields {
		if s, ok := v.(string); ok && strings.HasPrefix(s, "$") {
			p.used[strings.SplitN(s[1:], "|", 2)[0]] = true
		}
	}
	return nil, fmt.Errorf("op %s is not supported by kubesim: %s", o.Code, unsupported[o.Code])
}

// selected reports whether TestCase/Workload matches the filter, as go
// test -bench matches sub-benchmark names: the filter is split at
// unbracketed slashes and each part matched against the name's part.
func selected(filter []*regexp.Regexp, tc, w string) bool {
	names := []string{tc, w}
	for i, re := range filter {
		if i >= len(names) {
			break
		}
		if !re.MatchString(names[i]) {
			return false
		}
	}
	return true
}

// compileFilter compiles a -bench style filter.
func compileFilter(filter string) ([]*regexp.Regexp, error) {
	if filter == "" {
		return nil, nil
	}
	var out []*regexp.Regexp
	for _, part := range splitRegexp(filter) {
		re, err := regexp.Compile(part)
		if err != nil {
			return nil, fmt.Errorf("filter %q: %w", filter, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// splitRegexp splits at slashes outside brackets and parentheses, as the
// testing package's matcher does.
func splitRegexp(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case '\\':
			i++
		case '/':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

func labelsMatch(actual, required map[string]string) bool {
	for k, v := range required {
		if av, ok := actual[k]; !ok || av != v {
			return false
		}
	}
	return true
}

func uniqueLVCombos(lvs []*LabelValues) []map[string]string {
	if len(lvs) == 0 {
		return []map[string]string{{}}
	}
	rest := uniqueLVCombos(lvs[1:])
	var out []map[string]string
	for _, v := range lvs[0].Values {
		for _, combo := range rest {
			c := make(map[string]string, len(combo)+1)
			for k, cv := range combo {
				c[k] = cv
			}
			c[lvs[0].Label] = v
			out = append(out, c)
		}
	}
	return out
}

// hasLabels reports whether labels hold every wanted label ("foo") and none
// of the unwanted ones ("-foo"), as scheduler_perf's label filter.
func hasLabels(filter []string, labels []string) bool {
	for _, f := range filter {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case strings.HasPrefix(f, "-"):
			if slices.Contains(labels, f[1:]) {
				return false
			}
		default:
			if !slices.Contains(labels, strings.TrimPrefix(f, "+")) {
				return false
			}
		}
	}
	return true
}

// SchedulerPerfDir is the directory of scheduler_perf
// (test/integration/scheduler_perf) of the k8s.io/kubernetes kubesim is
// built with, in the Go module cache: where its workload files are.
func SchedulerPerfDir() (string, error) {
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/kubernetes" {
				version = d.Version
			}
		}
	}
	if version == "" {
		// Test binaries carry no dependencies in their build info.
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes").Output()
		if err != nil {
			return "", fmt.Errorf("finding the version of k8s.io/kubernetes: %w", err)
		}
		version = strings.TrimSpace(string(out))
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "k8s.io", "kubernetes@"+version, "test", "integration", "scheduler_perf")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("scheduler_perf of k8s.io/kubernetes %s is not in the module cache (go mod download k8s.io/kubernetes@%s): %w", version, version, err)
	}
	return dir, nil
}
