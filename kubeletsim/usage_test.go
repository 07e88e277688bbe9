package kubeletsim

import (
	"math"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestUsageCurves(t *testing.T) {
	const base = 0.5 // a 500m request
	for _, tc := range []struct {
		value string
		// want are the values at the times (seconds).
		want map[float64]float64
	}{
		{"250m", map[float64]float64{0: 0.25, 100: 0.25}},
		{"200%", map[float64]float64{0: 1, 1e6: 1}},
		{"ramp(10%, 200%, 100s)", map[float64]float64{0: 0.05, 50: 0.525, 100: 1, 500: 1}},
		{"points(0s 10%, 100s 200%, 200s 10%)", map[float64]float64{0: 0.05, 100: 1, 150: 0.525, 200: 0.05, 300: 0.05}},
		{"points(10s 1, 20s 2)", map[float64]float64{0: 1, 10: 1, 15: 1.5, 30: 2}},
		{"steps(0 100m, 1m 500m, 3m 100m)", map[float64]float64{0: 0.1, 59: 0.1, 60: 0.5, 179: 0.5, 180: 0.1}},
		{"sine(0, 1, 100s)", map[float64]float64{0: 0, 25: 0.5, 50: 1, 100: 0}},
		{"csv(seconds,cpu\n0,10%\n100,200%)", map[float64]float64{0: 0.05, 50: 0.525, 100: 1}},
		{"csv(0,1;10,2)", map[float64]float64{5: 1.5}},
	} {
		t.Run(tc.value, func(t *testing.T) {
			spec, err := parseUsage(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			c := spec.forContainer(1, base)
			for at, want := range tc.want {
				if got := c.at(at); math.Abs(got-want) > 1e-9 {
					t.Errorf("at(%g) = %g, want %g", at, got, want)
				}
			}
			// The integral is the area under the curve: compare with a
			// numerical one.
			for _, end := range []float64{0.5, 37, 60, 150, 333} {
				const step = 0.001
				num := 0.0
				for x := step / 2; x < end; x += step {
					num += c.at(x) * step
				}
				if got := c.integral(end); math.Abs(got-num) > 1e-3*math.Max(1, num) {
					t.Errorf("integral(%g) = %g, numerically %g", end, got, num)
				}
			}
		})
	}
}

func TestUsageRefusesBadValues(t *testing.T) {
	for _, v := range []string{"", "lots", "-1", "-5%", "x%", "ramp(1, 2)", "ramp(1, 2, -5s)", "ramp(1, 2, 5s", "points(5s 1, 1s 2)", "points()", "steps(5s)", "wave(1, 2, 3s)", "csv(a,b)", "sine(1, 2, 0s)"} {
		if _, err := parseUsage(v); err == nil {
			t.Errorf("parseUsage(%q): no error", v)
		}
	}
}

func mustUsageOf(t *testing.T, pod *corev1.Pod) usageModel {
	t.Helper()
	m, errs := usageOf(pod, DefaultProfile)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return m
}

func TestContainersUsage(t *testing.T) {
	start := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationCPUUsage: "ramp(0, 200%, 100s)", AnnotationMemoryUsage: "300Mi"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "a", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("200Mi")}}},
			{Name: "b", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("100Mi")}}},
			{Name: "waiting"},
		}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "a", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(start)}}},
			{Name: "b", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(start)}}},
			{Name: "waiting", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}},
		}},
	}
	m, errs := usageOf(pod, DefaultProfile)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	// At time scale 10, 5 s are the curve's 50 s: halfway up the ramp.
	got := m.containersUsage(pod, start.Add(5*time.Second), 10)
	if len(got) != 2 {
		t.Fatalf("got %d containers, want the 2 running", len(got))
	}
	for i, want := range []struct {
		cores, cpuSeconds, memory float64
	}{
		// a: request 1 core, 100% of it at curve time 50 s; the ramp's
		// area over 5 real seconds is 5*1/2. Memory: 300Mi split 2:1.
		{1, 2.5, 200 << 20},
		{0.5, 1.25, 100 << 20},
	} {
		c := got[i]
		if math.Abs(c.cores-want.cores) > 1e-9 || math.Abs(c.cpuSeconds-want.cpuSeconds) > 1e-9 || math.Abs(c.memoryBytes-want.memory) > 1 {
			t.Errorf("container %s: cores %g, cpu seconds %g, memory %g; want %+v", c.name, c.cores, c.cpuSeconds, c.memoryBytes, want)
		}
	}

	// With a usage start, a container that started late joins the curve
	// where it is: 100 s after the start at scale 1, a container started
	// at 60 s is at 200% (the ramp's top), and has used the ramp's area
	// from 60 s to 100 s.
	pod.Annotations[AnnotationUsageStart] = start.Add(-60 * time.Second).Format(time.RFC3339)
	got = mustUsageOf(t, pod).containersUsage(pod, start.Add(40*time.Second), 1)
	// a's share: cores 2*1*(at 100 s: 200%) = 2; area 60..100 s of
	// 2*t/100 cores = (1.2+2)/2*40.
	if c := got[0]; math.Abs(c.cores-2) > 1e-9 || math.Abs(c.cpuSeconds-64) > 1e-9 {
		t.Errorf("with a usage start: cores %g, cpu seconds %g; want 2 and 64", c.cores, c.cpuSeconds)
	}
	delete(pod.Annotations, AnnotationUsageStart)

	pod.Annotations[AnnotationCPUUsage] = "ramp(1, 2"
	if _, errs := usageOf(pod, DefaultProfile); len(errs) != 1 || !strings.Contains(errs[0].Error(), AnnotationCPUUsage) {
		t.Errorf("usageOf with a bad curve: errors %v, want one naming %s", errs, AnnotationCPUUsage)
	}
}
