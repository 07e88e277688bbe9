package kubeletsim_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubesim/kubesim/kubeletsim"
)

// waitEvents waits (in real time) for the kubelet's events about the named
// object, in the order recorded, to include want ("Reason: message"
// each, or the start of it), and returns them.
func (c *cluster) waitEvents(t *testing.T, namespace, name string, want ...string) []corev1.Event {
	t.Helper()
	var got []string
	var events []corev1.Event
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := c.client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",source=kubelet"})
		if err != nil {
			return false, err
		}
		got, events = nil, list.Items
		for _, e := range list.Items {
			got = append(got, e.Reason+": "+e.Message)
		}
		i := 0
		for _, g := range got {
			if i < len(want) && strings.HasPrefix(g, want[i]) {
				i++
			}
		}
		return i == len(want), nil
	})
	if err != nil {
		t.Fatalf("events of %s: got\n  %s\nwant, in this order,\n  %s", name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	return events
}

// waitEventCount waits for the kubelet's event about the named object
// with this reason to have been recorded count times (events that repeat
// are aggregated into one, as client-go's correlator does).
func (c *cluster) waitEventCount(t *testing.T, namespace, name, reason string, count int32) corev1.Event {
	t.Helper()
	var got corev1.Event
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := c.client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",source=kubelet,reason=" + reason})
		if err != nil || len(list.Items) == 0 {
			return false, err
		}
		got = list.Items[0]
		return got.Count >= count, nil
	})
	if err != nil {
		t.Fatalf("%s event of %s never counted %d: last %+v", reason, name, count, got)
	}
	return got
}

func TestEvents(t *testing.T) {
	c := startCluster(t, kubeletsim.NodePool{Count: 1, Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}})
	ctx := context.Background()
	create := func(t *testing.T, p *corev1.Pod) *corev1.Pod {
		t.Helper()
		p, err := c.client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	running := func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == corev1.PodRunning }

	t.Run("the node's registration", func(t *testing.T) {
		evs := c.waitEvents(t, "default", "node-0", "Starting: Starting kubelet.",
			"NodeHasSufficientMemory: Node node-0 status is now: NodeHasSufficientMemory",
			"NodeHasNoDiskPressure: Node node-0 status is now: NodeHasNoDiskPressure",
			"NodeHasSufficientPID: Node node-0 status is now: NodeHasSufficientPID",
			"NodeAllocatableEnforced: Updated Node Allocatable limit across pods",
			"NodeReady: Node node-0 status is now: NodeReady")
		node, err := c.client.CoreV1().Nodes().Get(ctx, "node-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if e := evs[0]; e.InvolvedObject.UID != node.UID || e.Source.Host != "node-0" || e.ReportingController != "kubelet" || e.ReportingInstance != "node-0" {
			t.Errorf("event: involved %+v, source %+v, reporting %s/%s", e.InvolvedObject, e.Source, e.ReportingController, e.ReportingInstance)
		}
	})

	t.Run("image pull and start", func(t *testing.T) {
		create(t, newPod("pull", map[string]string{kubeletsim.AnnotationImagePullDelay: "5s", kubeletsim.AnnotationStartDelay: "1s"}, nil))
		c.waitEvents(t, "default", "pull", `Pulling: Pulling image "busybox"`)
		c.clock.Step(5 * time.Second)
		c.waitEvents(t, "default", "pull", `Pulling: Pulling image "busybox"`, `Pulled: Successfully pulled image "busybox" in 5s (5s including waiting). Image size: `)
		c.clock.Step(time.Second)
		evs := c.waitEvents(t, "default", "pull", `Pulling: `, `Pulled: `, "Created: Container created", "Started: Container started")
		if e := evs[len(evs)-1]; e.InvolvedObject.FieldPath != "spec.containers{c}" || e.InvolvedObject.Kind != "Pod" || e.Type != corev1.EventTypeNormal {
			t.Errorf("Started event: %+v", e)
		}
		c.waitPod(t, "pull", "Running", running)
	})

	t.Run("an image already there, init containers first", func(t *testing.T) {
		// (Images with a tag are pulled IfNotPresent by default, untagged
		// ones Always.)
		create(t, newPod("init", nil, func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "alpine:3.20"}}
			p.Spec.Containers[0].Image = "busybox:1.36"
		}))
		evs := c.waitEvents(t, "default", "init", `Pulled: Container image "alpine:3.20" already present on machine and can be accessed by the pod`,
			"Created: ", "Started: ", `Pulled: Container image "busybox:1.36" already present`, "Created: ", "Started: ")
		if evs[0].InvolvedObject.FieldPath != "spec.initContainers{setup}" {
			t.Errorf("first event: %+v", evs[0].InvolvedObject)
		}
	})

	t.Run("a crash loop backs off", func(t *testing.T) {
		p := create(t, newPod("crash", map[string]string{kubeletsim.AnnotationRunDuration: "1s", kubeletsim.AnnotationExitCode: "1"}, nil))
		c.waitPod(t, "crash", "Running", running)
		c.clock.Step(time.Second) // exits, restarted at once
		c.waitPod(t, "crash", "one restart", func(p *corev1.Pod) bool { return p.Status.ContainerStatuses[0].RestartCount == 1 })
		c.clock.Step(time.Second) // exits again: back-off 10s
		c.waitEventCount(t, "default", "crash", "Started", 2)
		evs := c.waitEvents(t, "default", "crash", "Started: ",
			fmt.Sprintf("BackOff: Back-off restarting failed container c in pod crash_default(%s)", p.UID))
		if e := evs[len(evs)-1]; e.Type != corev1.EventTypeWarning {
			t.Errorf("BackOff event: %+v", e)
		}
		c.clock.Step(10 * time.Second)
		c.waitEventCount(t, "default", "crash", "Started", 3)
	})

	t.Run("admission rejection", func(t *testing.T) {
		create(t, newPod("big", nil, func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3")}
		}))
		evs := c.waitEvents(t, "default", "big", "OutOfcpu: Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000")
		if evs[0].Type != corev1.EventTypeWarning || evs[0].InvolvedObject.FieldPath != "" {
			t.Errorf("rejection event: %+v", evs[0])
		}
	})

	t.Run("deletion stops the containers", func(t *testing.T) {
		create(t, newPod("stop", nil, nil))
		c.waitPod(t, "stop", "Running", running)
		if err := c.client.CoreV1().Pods("default").Delete(ctx, "stop", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		c.waitEvents(t, "default", "stop", "Started: ", "Killing: Stopping container c")
	})

	t.Run("node faults and cordon", func(t *testing.T) {
		if err := c.sim.SetFault(ctx, "node-0", kubeletsim.FaultNotReady); err != nil {
			t.Fatal(err)
		}
		c.waitEvents(t, "default", "node-0", "NodeReady: ", "NodeNotReady: Node node-0 status is now: NodeNotReady")
		if err := c.sim.SetFault(ctx, "node-0", kubeletsim.FaultNone); err != nil {
			t.Fatal(err)
		}
		c.waitEventCount(t, "default", "node-0", "NodeReady", 2)
		if err := kubeletsim.Cordon(ctx, c.client, "node-0", true); err != nil {
			t.Fatal(err)
		}
		c.waitEvents(t, "default", "node-0", "NodeNotSchedulable: Node node-0 status is now: NodeNotSchedulable")
		if err := kubeletsim.Cordon(ctx, c.client, "node-0", false); err != nil {
			t.Fatal(err)
		}
		c.waitEvents(t, "default", "node-0", "NodeNotSchedulable: ", "NodeSchedulable: Node node-0 status is now: NodeSchedulable")
	})
}
