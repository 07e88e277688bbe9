package apiserver

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	api "k8s.io/kubernetes/pkg/apis/core"

	"github.com/kubesim/kubesim/apiserver/registry"
)

// TestEventsKeptEncoded: the Events of both APIs are stored under the keys
// the memory store keeps encoded (registry.EncodedPrefixes), and nothing
// else is.
func TestEventsKeptEncoded(t *testing.T) {
	s, _ := startServer(t)
	ctx := context.Background()
	client := kubernetes.NewForConfigOrDie(s.RESTConfig())
	pod := corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p", APIVersion: "v1"}
	if _, err := client.CoreV1().Events("default").Create(ctx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "core", Namespace: "default"}, InvolvedObject: pod, Reason: "Started", Type: corev1.EventTypeNormal,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.EventsV1().Events("default").Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: "default"}, Regarding: pod, Reason: "Scheduled", Type: corev1.EventTypeNormal,
		Action: "Binding", ReportingController: "default-scheduler", ReportingInstance: "default-scheduler-x", EventTime: metav1.NowMicro(),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rev, err := s.memory.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := s.memory.Entries(rev)
	if err != nil {
		t.Fatal(err)
	}
	encoded := func(key string) bool {
		for _, p := range registry.EncodedPrefixes {
			if strings.HasPrefix(key, p) {
				return true
			}
		}
		return false
	}
	found := map[string]bool{}
	for _, e := range entries {
		ev, isEvent := e.Object.(*api.Event)
		if isEvent != encoded(e.Key) {
			t.Errorf("%s: a %T, kept encoded: %v", e.Key, e.Object, encoded(e.Key))
		}
		if isEvent {
			found[ev.Name] = true
		}
	}
	if !found["core"] || !found["events"] {
		t.Errorf("stored Events %v, want core and events", found)
	}
}
