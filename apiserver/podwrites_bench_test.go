package apiserver

import (
	"context"
	"fmt"
	"runtime/pprof"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	statusutil "k8s.io/kubernetes/pkg/util/pod"
	"k8s.io/utils/ptr"
)

// BenchmarkPodWrites measures what one pod costs the API server in a
// scheduler capacity experiment: the four writes of its life on a
// simulated node (created, bound, the scheduler's Scheduled event, the
// kubelet's status patch as it runs), in protobuf over the in-process
// transport as the components send them, with four pod watchers (the
// scheduler's, the controller manager's, kubeletsim's shared one and the
// experiment's) reading every event.
func BenchmarkPodWrites(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// As an experiment's cluster: no service accounts to wait for.
	clientAs := benchServer(b, Config{AnyPort: true, DisableAdmissionPlugins: []string{"ServiceAccount", "TaintNodesByCondition", "Priority"}})
	admin := clientAs("bench", user.SystemPrivilegedGroup)
	scheduler := clientAs("system:kube-scheduler")
	kubelet := clientAs("system:kubesim:kubeletsim", user.NodesGroup, ComponentsGroup)
	const nodes = 16
	for i := range nodes {
		if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i)}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	var watchers sync.WaitGroup
	for range 4 {
		w, err := admin.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			for range w.ResultChan() {
			}
		}()
	}
	defer func() { cancel(); watchers.Wait() }()

	pods := admin.CoreV1().Pods("default")
	template := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "pod-"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "pause", Image: "registry.k8s.io/pause:3.10.2",
			Ports: []corev1.ContainerPort{{ContainerPort: 80}},
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("500Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("500Mi")},
			},
		}}},
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e6, "cpu-ms/op") }()
	for i := 0; i < b.N; i++ {
		pod, err := pods.Create(ctx, template, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		node := fmt.Sprintf("node-%d", i%nodes)
		err = scheduler.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		_, err = scheduler.EventsV1().Events("default").Create(ctx, &eventsv1.Event{
			ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", pod.Name, now.UnixNano()), Namespace: "default"},
			EventTime:           metav1.NewMicroTime(now),
			ReportingController: "default-scheduler", ReportingInstance: "default-scheduler-bench",
			Action: "Binding", Reason: "Scheduled", Type: corev1.EventTypeNormal,
			Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: pod.Name, UID: pod.UID, APIVersion: "v1"},
			Note:      fmt.Sprintf("Successfully assigned default/%s to %s", pod.Name, node),
		}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		pod.Spec.NodeName = node
		started := metav1.NewTime(now.Truncate(time.Second))
		status := *pod.Status.DeepCopy()
		status.Phase = corev1.PodRunning
		status.HostIP, status.HostIPs = "10.0.0.1", []corev1.HostIP{{IP: "10.0.0.1"}}
		status.PodIP, status.PodIPs = "10.244.0.5", []corev1.PodIP{{IP: "10.244.0.5"}}
		status.StartTime = &started
		for _, c := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			status.Conditions = append(status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: started})
		}
		status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: "pause", Image: "registry.k8s.io/pause:3.10.2", ImageID: "registry.k8s.io/pause@sha256:0000", Ready: true, Started: ptr.To(true),
			ContainerID: "containerd://" + string(pod.UID),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}}
		if _, _, _, err := statusutil.PatchPodStatus(ctx, kubelet, pod.Namespace, pod.Name, pod.UID, pod.Status, status); err != nil {
			b.Fatal(err)
		}
	}
}

// processCPU is the process's user and system CPU time so far, in ns: on 2
// cores a benchmark's ns/op hides how much of both it uses.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// benchServer starts a server for a benchmark until it ends, its goroutines
// under the label sim gives the API server's (go test -cpuprofile then
// tells its part of the CPU from the clients'), and returns a maker of the
// clients the in-process components have: in-process, protobuf, no rate
// limit.
func benchServer(b *testing.B, cfg Config) func(user string, groups ...string) kubernetes.Interface {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		pprof.Do(ctx, pprof.Labels("kubesim.component", "kube-apiserver"), func(ctx context.Context) { s.Start(ctx) })
	}()
	b.Cleanup(func() { cancel(); <-done })
	<-s.Ready()
	return func(user string, groups ...string) kubernetes.Interface {
		c, err := s.InProcessRESTConfig(user, groups...)
		if err != nil {
			b.Fatal(err)
		}
		c = rest.CopyConfig(c)
		c.ContentType = "application/vnd.kubernetes.protobuf"
		c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		c.QPS, c.Burst = -1, 0
		return kubernetes.NewForConfigOrDie(c)
	}
}
