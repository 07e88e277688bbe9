package sim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// ExplainPath is where the API server serves the scheduler's
// explanations: GET ExplainPath + "namespaces/NS/pods/NAME" (kubesim
// explain pod). Reading it takes the nonResourceURLs permission of that
// path, as /metrics does.
const ExplainPath = "/kubesim/v1/explain/"

// Explanation is why the genuine scheduler placed a pod where it did, or
// why it could not, attempt by attempt: recorded from the scheduler's own
// results (its ScheduleResult and FitError diagnosis) in the process, not
// in annotations, so that its size does not grow with the nodes.
type Explanation struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       types.UID `json:"uid"`
	Attempts  []Attempt `json:"attempts"`
}

// Attempt is one scheduling attempt.
type Attempt struct {
	// Time is when the attempt started and Duration how long the
	// scheduling algorithm took.
	Time     time.Time     `json:"time"`
	Duration time.Duration `json:"duration"`
	// Result is scheduled, unschedulable or error.
	Result string `json:"result"`
	// Node is the chosen node; EvaluatedNodes and FeasibleNodes the
	// nodes filtered and the nodes that passed.
	Node           string `json:"node,omitempty"`
	EvaluatedNodes int    `json:"evaluatedNodes,omitempty"`
	FeasibleNodes  int    `json:"feasibleNodes,omitempty"`
	// TopScores are the best-scored nodes (at most five), their total
	// and each Score plugin's normalized, weighted score; none when a
	// single node was feasible (the scheduler does not score then).
	TopScores []NodeScore `json:"topScores,omitempty"`
	// AllNodes is how many nodes the scheduler knew.
	AllNodes int `json:"allNodes,omitempty"`
	// Message is the FailedScheduling event's message.
	Message string `json:"message,omitempty"`
	// Rejections are the nodes each plugin rejected, by reason, as the
	// FailedScheduling message counts them.
	Rejections []Rejection `json:"rejections,omitempty"`
	// PreFilter and PostFilter are those plugins' messages (preemption's
	// among them).
	PreFilter  string `json:"preFilter,omitempty"`
	PostFilter string `json:"postFilter,omitempty"`
}

// NodeScore is a node's score in an attempt.
type NodeScore struct {
	Node    string        `json:"node"`
	Total   int64         `json:"total"`
	Plugins []PluginScore `json:"plugins"`
}

// PluginScore is one Score plugin's normalized, weighted score.
type PluginScore struct {
	Plugin string `json:"plugin"`
	Score  int64  `json:"score"`
}

// maxTopScores is how many of a pod's best-scored nodes an attempt keeps.
const maxTopScores = 5

// scoreCapture passes the scheduling algorithm a framework that keeps the
// best scores of its Score plugins.
type scoreCapture struct {
	framework.Framework
	plugins *pluginNames
	top     keptScores
}

func (s *scoreCapture) RunScorePlugins(ctx context.Context, state fwk.CycleState, pod *corev1.Pod, nodes []fwk.NodeInfo) ([]fwk.NodePluginScores, *fwk.Status) {
	scores, status := s.Framework.RunScorePlugins(ctx, state, pod, nodes)
	// The best few, by a partial selection: scoring covers hundreds of
	// nodes at 5,000.
	best := make([]int, 0, maxTopScores+1)
	for i := range scores {
		j := len(best)
		for j > 0 && scores[best[j-1]].TotalScore < scores[i].TotalScore {
			j--
		}
		if j < maxTopScores {
			best = append(best, 0)
			copy(best[j+1:], best[j:])
			best[j] = i
			if len(best) > maxTopScores {
				best = best[:maxTopScores]
			}
		}
	}
	s.top = keptScores{}
	if len(best) == 0 {
		return scores, status
	}
	s.top.plugins = s.plugins.of(scores[best[0]].Scores)
	stride := 1 + len(s.top.plugins)
	s.top.nodes = make([]string, len(best))
	s.top.scores = make([]int64, 0, len(best)*stride)
	for k, i := range best {
		s.top.nodes[k] = scores[i].Name
		s.top.scores = append(s.top.scores, scores[i].TotalScore)
		for _, ps := range scores[i].Scores {
			s.top.scores = append(s.top.scores, ps.Score)
		}
		// Every node is scored by the same plugins; should one not be,
		// its row is padded or cut to the first node's.
		s.top.scores = s.top.scores[:min(len(s.top.scores), (k+1)*stride)]
		for len(s.top.scores) < (k+1)*stride {
			s.top.scores = append(s.top.scores, 0)
		}
	}
	return scores, status
}

// keptScores are an attempt's best-scored nodes as the explainer keeps them
// for every pod the scheduler tried (150,000 in the scale run): for each
// node its total and then each plugin's score, in one pointer-free slice
// over the plugin names all attempts share. As NodeScores with a slice of
// PluginScores each they took three times the memory.
type keptScores struct {
	plugins []string
	nodes   []string
	scores  []int64
}

// nodeScores expands t.
func (t keptScores) nodeScores() []NodeScore {
	if len(t.nodes) == 0 {
		return nil
	}
	stride := 1 + len(t.plugins)
	out := make([]NodeScore, len(t.nodes))
	for k, node := range t.nodes {
		row := t.scores[k*stride : (k+1)*stride]
		out[k] = NodeScore{Node: node, Total: row[0], Plugins: make([]PluginScore, len(t.plugins))}
		for j, p := range t.plugins {
			out[k].Plugins[j] = PluginScore{Plugin: p, Score: row[1+j]}
		}
	}
	return out
}

// pluginNames shares the Score plugins' names among attempts: the list
// of the last attempt, kept as long as the plugins are the same.
type pluginNames struct {
	mu   sync.Mutex
	last []string
}

func (p *pluginNames) of(scores []fwk.PluginScore) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.last) == len(scores) {
		same := true
		for i, s := range scores {
			if p.last[i] != s.Name {
				same = false
				break
			}
		}
		if same {
			return p.last
		}
	}
	names := make([]string, len(scores))
	for i, s := range scores {
		names[i] = s.Name
	}
	p.last = names
	return names
}

// Rejection counts the nodes a plugin rejected for one reason.
type Rejection struct {
	Plugin string `json:"plugin"`
	Reason string `json:"reason"`
	Nodes  int    `json:"nodes"`
}

// explainer keeps the explanations of the pods the scheduler tried.
type explainer struct {
	mu   sync.Mutex
	pods map[string]*explained
	// maxAttempts bounds the attempts kept per pod: the first and the
	// latest ones.
	maxAttempts int
	// started holds the start of a failed attempt until the failure
	// handler records it, by pod UID.
	started sync.Map
	plugins pluginNames
}

// explained is a pod's Explanation as the explainer keeps it.
type explained struct {
	uid      types.UID
	attempts []attemptRecord
}

// attemptRecord is an Attempt as the explainer keeps it: what only a
// failed attempt has behind a pointer, the top scores compact.
type attemptRecord struct {
	start     time.Time
	duration  time.Duration
	result    string
	node      string
	evaluated int32
	feasible  int32
	top       keptScores
	failure   *Attempt // AllNodes, Message, Rejections, PreFilter, PostFilter
}

func (r *attemptRecord) attempt() Attempt {
	var a Attempt
	if r.failure != nil {
		a = *r.failure
	}
	a.Time, a.Duration, a.Result, a.Node = r.start, r.duration, r.result, r.node
	a.EvaluatedNodes, a.FeasibleNodes = int(r.evaluated), int(r.feasible)
	a.TopScores = r.top.nodeScores()
	return a
}

func newExplainer() *explainer {
	return &explainer{pods: map[string]*explained{}, maxAttempts: 20}
}

func (e *explainer) add(pod *corev1.Pod, r attemptRecord) {
	key := pod.Namespace + "/" + pod.Name
	e.mu.Lock()
	defer e.mu.Unlock()
	ex := e.pods[key]
	if ex == nil || ex.uid != pod.UID {
		ex = &explained{uid: pod.UID}
		e.pods[key] = ex
	}
	if len(ex.attempts) >= e.maxAttempts {
		// Keep the first attempt and the latest ones.
		ex.attempts = append(ex.attempts[:1], ex.attempts[2:]...)
	}
	ex.attempts = append(ex.attempts, r)
}

// forget drops a deleted pod's explanation.
func (e *explainer) forget(namespace, name string) {
	e.mu.Lock()
	delete(e.pods, namespace+"/"+name)
	e.mu.Unlock()
}

func (e *explainer) get(namespace, name string) (*Explanation, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ex, ok := e.pods[namespace+"/"+name]
	if !ok {
		return nil, false
	}
	out := &Explanation{Namespace: namespace, Name: name, UID: ex.uid, Attempts: make([]Attempt, len(ex.attempts))}
	for i := range ex.attempts {
		out.Attempts[i] = ex.attempts[i].attempt()
	}
	return out, true
}

// wrap records each attempt of sched: its result from SchedulePod, its
// diagnosis from FailureHandler (where PostFilter's message is known).
func (e *explainer) wrap(sched *scheduler.Scheduler) {
	schedulePod := sched.SchedulePod
	sched.SchedulePod = func(ctx context.Context, f framework.Framework, state fwk.CycleState, podInfo *framework.QueuedPodInfo) (scheduler.ScheduleResult, error) {
		start := time.Now()
		capture := &scoreCapture{Framework: f, plugins: &e.plugins}
		r, err := schedulePod(ctx, capture, state, podInfo)
		if err == nil {
			e.add(podInfo.Pod, attemptRecord{start: start, duration: time.Since(start), result: "scheduled", node: r.SuggestedHost,
				evaluated: int32(r.EvaluatedNodes), feasible: int32(r.FeasibleNodes), top: capture.top})
		} else {
			// Recorded by the failure handler, which knows PostFilter's
			// result, with this start.
			e.started.Store(podInfo.Pod.UID, attemptTimes{start, time.Since(start)})
		}
		return r, err
	}
	failure := sched.FailureHandler
	sched.FailureHandler = func(ctx context.Context, f framework.Framework, podInfo *framework.QueuedPodInfo, status *fwk.Status, nominating *fwk.NominatingInfo, start time.Time) {
		r := attemptRecord{start: start, result: "error", failure: &Attempt{Message: status.Message()}}
		if v, ok := e.started.LoadAndDelete(podInfo.Pod.UID); ok {
			t := v.(attemptTimes)
			r.start, r.duration = t.start, t.d
		}
		var fitErr *framework.FitError
		if status.IsRejected() {
			r.result = "unschedulable"
		}
		if errors.As(status.AsError(), &fitErr) {
			r.result = "unschedulable"
			r.failure.Message = fitErr.Error()
			r.failure.AllNodes = fitErr.NumAllNodes
			r.failure.PreFilter = fitErr.Diagnosis.PreFilterMsg
			r.failure.PostFilter = fitErr.Diagnosis.PostFilterMsg
			r.failure.Rejections = rejections(fitErr)
		}
		e.add(podInfo.Pod, r)
		failure(ctx, f, podInfo, status, nominating, start)
	}
}

type attemptTimes struct {
	start time.Time
	d     time.Duration
}

// rejections counts, per plugin and reason, the nodes rejected, as
// FitError.Error counts reasons for the FailedScheduling message.
func rejections(f *framework.FitError) []Rejection {
	type key struct{ plugin, reason string }
	counts := map[key]int{}
	if f.Diagnosis.PreFilterMsg == "" {
		f.Diagnosis.NodeToStatus.ForEachExplicitNode(func(_ string, s *fwk.Status) {
			for _, r := range s.Reasons() {
				counts[key{s.Plugin(), r}]++
			}
		})
		if absent := f.NumAllNodes - f.Diagnosis.NodeToStatus.Len(); absent > 0 {
			s := f.Diagnosis.NodeToStatus.AbsentNodesStatus()
			for _, r := range s.Reasons() {
				counts[key{s.Plugin(), r}] += absent
			}
		}
	} else {
		for p := range f.Diagnosis.UnschedulablePlugins {
			counts[key{p, f.Diagnosis.PreFilterMsg}] = f.NumAllNodes
		}
	}
	out := make([]Rejection, 0, len(counts))
	for k, n := range counts {
		out = append(out, Rejection{Plugin: k.plugin, Reason: k.reason, Nodes: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Nodes != out[j].Nodes {
			return out[i].Nodes > out[j].Nodes
		}
		if out[i].Plugin != out[j].Plugin {
			return out[i].Plugin < out[j].Plugin
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// ServeHTTP serves GET ExplainPath + "namespaces/NS/pods/NAME".
func (e *explainer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, ExplainPath), "/")
	if r.Method != http.MethodGet || len(parts) != 4 || parts[0] != "namespaces" || parts[2] != "pods" {
		http.Error(w, "not found: GET "+ExplainPath+"namespaces/NS/pods/NAME", http.StatusNotFound)
		return
	}
	ex, ok := e.get(parts[1], parts[3])
	if !ok {
		http.Error(w, "the scheduler has not tried pod "+parts[1]+"/"+parts[3], http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ex)
}
