package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/kubesim/kubesim/apiserver"
	"github.com/kubesim/kubesim/kubeletsim"
)

// TestExplain: the scheduler's attempts are explained per plugin and
// reason, with the node counts of the FailedScheduling event, and a
// scheduled pod's explanation names the node it was bound to; both in
// process and through the API server's explain path.
func TestExplain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{APIServer: apiserver.Config{AnyPort: true}, Nodes: []kubeletsim.NodePool{{Count: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	cs := kubernetes.NewForConfigOrDie(c.API.RESTConfig())
	// The nodes are Ready and untainted (the node lifecycle controller
	// lifts the not-ready taint), so that the reasons are all resources.
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 3 {
			return false, nil
		}
		for _, n := range nodes.Items {
			if len(n.Spec.Taints) > 0 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	pod := func(name, cpu string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "registry.k8s.io/pause:3.10.2",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}},
		}}}}
	}
	for _, p := range []*corev1.Pod{pod("big", "1000"), pod("small", "100m")} {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// The unschedulable pod: its FailedScheduling event, then its record.
	var event corev1.Event
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=big,reason=FailedScheduling"})
		if err != nil || len(evs.Items) == 0 {
			return false, nil
		}
		event = evs.Items[0]
		return true, nil
	}); err != nil {
		t.Fatalf("no FailedScheduling event: %v", err)
	}
	ex, ok := c.Explain("default", "big")
	if !ok {
		t.Fatal("no explanation for default/big")
	}
	var matched *Attempt
	for i, a := range ex.Attempts {
		if a.Message == event.Message {
			matched = &ex.Attempts[i]
		}
	}
	if matched == nil {
		t.Fatalf("no attempt has the event's message %q: %+v", event.Message, ex.Attempts)
	}
	if matched.Result != "unschedulable" || matched.AllNodes != 3 {
		t.Errorf("attempt %+v, want unschedulable of 3 nodes", matched)
	}
	// The event counts the nodes by reason as the rejections do.
	var counts []string
	for _, r := range matched.Rejections {
		counts = append(counts, fmt.Sprintf("%d %s", r.Nodes, r.Reason))
	}
	sort.Strings(counts)
	if want := "0/3 nodes are available: " + strings.Join(counts, ", ") + "."; !strings.HasPrefix(event.Message, want) {
		t.Errorf("event %q does not count the nodes as the rejections %+v do", event.Message, matched.Rejections)
	}
	// Here: "0/3 nodes are available: 3 Insufficient cpu. ...", which
	// NodeResourcesFit says.
	if len(matched.Rejections) != 1 || matched.Rejections[0] != (Rejection{Plugin: "NodeResourcesFit", Reason: "Insufficient cpu", Nodes: 3}) {
		t.Errorf("rejections %+v, want NodeResourcesFit: Insufficient cpu: 3 nodes", matched.Rejections)
	}
	if matched.PostFilter == "" {
		t.Errorf("no PostFilter (preemption) message in %+v", matched)
	}

	// The scheduled pod: its record names its node.
	var bound *corev1.Pod
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "small", metav1.GetOptions{})
		bound = p
		return err == nil && p.Spec.NodeName != "", nil
	}); err != nil {
		t.Fatal(err)
	}
	// Through the API server, as kubesim explain reads it.
	body, err := cs.CoreV1().RESTClient().Get().AbsPath(ExplainPath, "namespaces", "default", "pods", "small").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var small Explanation
	if err := json.Unmarshal(body, &small); err != nil {
		t.Fatal(err)
	}
	last := small.Attempts[len(small.Attempts)-1]
	if last.Result != "scheduled" || last.Node != bound.Spec.NodeName || last.FeasibleNodes != 3 {
		t.Errorf("last attempt %+v, want scheduled on %s with 3 feasible nodes", last, bound.Spec.NodeName)
	}
	// Its scores: the chosen node among the best, each with the default
	// profile's Score plugins.
	if len(last.TopScores) != 3 {
		t.Errorf("top scores %+v, want the 3 feasible nodes", last.TopScores)
	} else {
		found := false
		for i, s := range last.TopScores {
			found = found || s.Node == last.Node
			if i > 0 && s.Total > last.TopScores[i-1].Total {
				t.Errorf("top scores not in order: %+v", last.TopScores)
			}
			plugins := map[string]bool{}
			for _, p := range s.Plugins {
				plugins[p.Plugin] = true
			}
			if !plugins["NodeResourcesFit"] || !plugins["TaintToleration"] {
				t.Errorf("scores of %s by %v, want the default profile's Score plugins", s.Node, plugins)
			}
		}
		if !found || last.TopScores[0].Total < last.TopScores[len(last.TopScores)-1].Total {
			t.Errorf("chosen node %s not among the top scores %+v", last.Node, last.TopScores)
		}
	}
	if _, err := cs.CoreV1().RESTClient().Get().AbsPath(ExplainPath, "namespaces", "default", "pods", "nope").DoRaw(ctx); err == nil {
		t.Error("explanation of a pod never tried: no error")
	}

	// A deleted pod's record goes.
	if err := cs.CoreV1().Pods("default").Delete(ctx, "big", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		_, ok := c.Explain("default", "big")
		return !ok, nil
	}); err != nil {
		t.Errorf("deleted pod's explanation kept: %v", err)
	}
}

// scoringFramework returns the scores it is given from RunScorePlugins.
type scoringFramework struct {
	framework.Framework
	scores []fwk.NodePluginScores
}

func (f scoringFramework) RunScorePlugins(context.Context, fwk.CycleState, *corev1.Pod, []fwk.NodeInfo) ([]fwk.NodePluginScores, *fwk.Status) {
	return f.scores, nil
}

// TestScoreCapture: an attempt keeps its five best-scored nodes, best
// first, with each plugin's score, and attempts scored by the same plugins
// share their names.
func TestScoreCapture(t *testing.T) {
	node := func(name string, scores ...int64) fwk.NodePluginScores {
		n := fwk.NodePluginScores{Name: name}
		for i, s := range scores {
			n.Scores = append(n.Scores, fwk.PluginScore{Name: []string{"NodeResourcesFit", "TaintToleration", "PodTopologySpread"}[i], Score: s})
			n.TotalScore += s
		}
		return n
	}
	ps := func(fit, taint, spread int64) []PluginScore {
		return []PluginScore{{"NodeResourcesFit", fit}, {"TaintToleration", taint}, {"PodTopologySpread", spread}}
	}
	var names pluginNames
	for _, tc := range []struct {
		name   string
		scores []fwk.NodePluginScores
		want   []NodeScore
	}{
		{"none scored", nil, nil},
		{"one node", []fwk.NodePluginScores{node("a", 1, 2, 3)}, []NodeScore{{"a", 6, ps(1, 2, 3)}}},
		{"best five of seven, best first", []fwk.NodePluginScores{
			node("a", 1, 0, 0), node("b", 7, 0, 0), node("c", 3, 1, 0), node("d", 0, 0, 9),
			node("e", 2, 0, 0), node("f", 5, 0, 1), node("g", 0, 0, 0),
		}, []NodeScore{{"d", 9, ps(0, 0, 9)}, {"b", 7, ps(7, 0, 0)}, {"f", 6, ps(5, 0, 1)}, {"c", 4, ps(3, 1, 0)}, {"e", 2, ps(2, 0, 0)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &scoreCapture{Framework: scoringFramework{scores: tc.scores}, plugins: &names}
			if _, status := c.RunScorePlugins(context.Background(), nil, nil, nil); !status.IsSuccess() {
				t.Fatal(status)
			}
			if got := c.top.nodeScores(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("top scores %+v, want %+v", got, tc.want)
			}
		})
	}
	a := &scoreCapture{Framework: scoringFramework{scores: []fwk.NodePluginScores{node("a", 1, 2, 3)}}, plugins: &names}
	b := &scoreCapture{Framework: scoringFramework{scores: []fwk.NodePluginScores{node("b", 3, 2, 1)}}, plugins: &names}
	a.RunScorePlugins(context.Background(), nil, nil, nil)
	b.RunScorePlugins(context.Background(), nil, nil, nil)
	if &a.top.plugins[0] != &b.top.plugins[0] {
		t.Error("two attempts scored by the same plugins keep their names twice")
	}
}
