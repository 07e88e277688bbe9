package apiserver

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/storage/etcd3/testserver"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// TestSeveralServersOnEtcd: three API servers on one etcd serve one state:
// informers on B and C see every write made through A, in order; writes
// through different servers conflict as through one; consistent reads
// through any server see every acknowledged write.
func TestSeveralServersOnEtcd(t *testing.T) {
	etcd := testserver.RunEtcd(t, nil)
	servers := etcd.Client.Endpoints()
	pki := t.TempDir()
	var clients []kubernetes.Interface
	for range 3 {
		s, _ := startServerWith(t, Config{AnyPort: true, Etcd: &EtcdConfig{Servers: servers}, PKIDir: pki})
		c, err := kubernetes.NewForConfig(s.RESTConfig())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	a, b, c := clients[0], clients[1], clients[2]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Informers on B and C record the values they see of each ConfigMap.
	type seen struct {
		mu     sync.Mutex
		values map[string][]string
		revs   []int64
	}
	watch := func(client kubernetes.Interface) *seen {
		s := &seen{values: map[string][]string{}}
		f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace("default"))
		record := func(obj any) {
			cm, ok := obj.(*corev1.ConfigMap)
			if !ok || cm.Labels["test"] != "etcd" {
				return
			}
			rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
			s.mu.Lock()
			s.values[cm.Name] = append(s.values[cm.Name], cm.Data["v"])
			s.revs = append(s.revs, rv)
			s.mu.Unlock()
		}
		f.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    record,
			UpdateFunc: func(_, obj any) { record(obj) },
		})
		f.Start(ctx.Done())
		f.WaitForCacheSync(ctx.Done())
		return s
	}
	onB, onC := watch(b), watch(c)

	const objects, updates = 10, 20
	for i := range objects {
		name := fmt.Sprintf("cm-%d", i)
		cm, err := a.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"test": "etcd"}}, Data: map[string]string{"v": "0"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for u := 1; u <= updates; u++ {
			cm.Data["v"] = strconv.Itoa(u)
			if cm, err = a.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			// A consistent read through B or C sees it at once.
			got, err := clients[1+u%2].CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil || got.ResourceVersion != cm.ResourceVersion {
				t.Fatalf("read through another server after an update: %v at %v, want %s", err, got.GetResourceVersion(), cm.ResourceVersion)
			}
		}
	}
	want := make([]string, updates+1)
	for u := range want {
		want[u] = strconv.Itoa(u)
	}
	for name, s := range map[string]*seen{"B": onB, "C": onC} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			s.mu.Lock()
			n := len(s.revs)
			s.mu.Unlock()
			if n == objects*(updates+1) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		s.mu.Lock()
		for i := range objects {
			if got := s.values[fmt.Sprintf("cm-%d", i)]; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("informer on %s saw cm-%d as %v, want every value in order %v", name, i, got, want)
			}
		}
		for i := 1; i < len(s.revs); i++ {
			if s.revs[i] <= s.revs[i-1] {
				t.Errorf("informer on %s: revision %d after %d", name, s.revs[i], s.revs[i-1])
			}
		}
		s.mu.Unlock()
	}

	// Two updates from the same version through different servers: one
	// wins, the other gets 409 Conflict, as through one server.
	base, err := a.CoreV1().ConfigMaps("default").Get(ctx, "cm-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first, second := base.DeepCopy(), base.DeepCopy()
	first.Data["v"], second.Data["v"] = "b", "c"
	if _, err := b.CoreV1().ConfigMaps("default").Update(ctx, first, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CoreV1().ConfigMaps("default").Update(ctx, second, metav1.UpdateOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("the conflicting update through C: %v, want 409 Conflict", err)
	}
	// Creating what another server created: 409 AlreadyExists.
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-1"}}, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create of an existing name through C: %v, want 409 AlreadyExists", err)
	}
}
