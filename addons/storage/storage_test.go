package storage

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/ptr"
)

// TestProvision provisions claims on nodes with and without a storage
// capacity.
func TestProvision(t *testing.T) {
	node := func(name, capacity string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{hostnameLabel: name}}}
		if capacity != "" {
			n.Annotations = map[string]string{CapacityAnnotation: capacity}
		}
		return n
	}
	claim := func(name, size, selectedNode string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), ResourceVersion: "1", Annotations: map[string]string{
				storagehelpers.AnnStorageProvisioner: DefaultProvisioner, storagehelpers.AnnSelectedNode: selectedNode}},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: ptr.To(DefaultClassName),
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
			},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
		}
	}
	for _, tc := range []struct {
		name   string
		claims []*corev1.PersistentVolumeClaim
		// want: for each claim, whether it gets a volume.
		want []bool
		// rescheduled: the claims handed back to the scheduler.
		rescheduled []string
	}{
		{name: "unbounded node", claims: []*corev1.PersistentVolumeClaim{claim("a", "1Ti", "free"), claim("b", "1Ti", "free")}, want: []bool{true, true}},
		{name: "within capacity", claims: []*corev1.PersistentVolumeClaim{claim("a", "6Gi", "small"), claim("b", "4Gi", "small")}, want: []bool{true, true}},
		{name: "over capacity", claims: []*corev1.PersistentVolumeClaim{claim("a", "6Gi", "small"), claim("b", "5Gi", "small")}, want: []bool{true, false}, rescheduled: []string{"b"}},
		{name: "not picked yet", claims: []*corev1.PersistentVolumeClaim{claim("a", "1Gi", "")}, want: []bool{false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := []runtime.Object{node("free", ""), node("small", "10Gi"), DefaultStorageClass(DefaultProvisioner)}
			for _, c := range tc.claims {
				objs = append(objs, c)
			}
			client := fake.NewClientset(objs...)
			factory := informers.NewSharedInformerFactory(client, 0)
			p, err := New(Config{Client: client, Informers: factory, DisableDefaultClass: true})
			if err != nil {
				t.Fatal(err)
			}
			p.recorder = record.NewFakeRecorder(100)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			factory.Start(ctx.Done())
			factory.WaitForCacheSync(ctx.Done())
			volumes := factory.Core().V1().PersistentVolumes().Informer()
			for i, c := range tc.claims {
				if err := p.syncClaim(ctx, c.Namespace+"/"+c.Name); err != nil {
					t.Fatalf("claim %s: %v", c.Name, err)
				}
				pv, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-"+string(c.UID), metav1.GetOptions{})
				if got := err == nil; got != tc.want[i] {
					t.Fatalf("claim %s provisioned: %v, want %v", c.Name, got, tc.want[i])
				}
				if err == nil {
					// The next claim sees this volume, as the informer would.
					if err := volumes.GetStore().Add(pv); err != nil {
						t.Fatal(err)
					}
					if got := pinnedTo(pv); got != c.Annotations[storagehelpers.AnnSelectedNode] {
						t.Errorf("volume of %s pinned to %q", c.Name, got)
					}
					if pv.Spec.ClaimRef.UID != c.UID || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || !strings.HasPrefix(pv.Spec.HostPath.Path, DefaultRoot+"/") {
						t.Errorf("volume of %s: %+v", c.Name, pv.Spec)
					}
				}
			}
			var rescheduled []string
			for _, a := range client.Actions() {
				if a.GetVerb() == "patch" && a.GetResource().Resource == "persistentvolumeclaims" {
					rescheduled = append(rescheduled, a.(k8stesting.PatchAction).GetName())
				}
			}
			if strings.Join(rescheduled, ",") != strings.Join(tc.rescheduled, ",") {
				t.Errorf("rescheduled %v, want %v", rescheduled, tc.rescheduled)
			}
		})
	}
}

// TestStartAfterInformersStopped: a cluster stopped as it becomes ready can
// stop the shared informers before the add-ons' context is cancelled; the
// provisioner then ends without an error, as when its context is done.
func TestStartAfterInformersStopped(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	p, err := New(Config{Client: client, Informers: factory, DisableDefaultClass: true})
	if err != nil {
		t.Fatal(err)
	}
	factory.Core().V1().PersistentVolumeClaims().Informer()
	factory.Core().V1().PersistentVolumes().Informer()
	stop := make(chan struct{})
	factory.Start(stop)
	close(stop)
	factory.Shutdown() // waits for the informers to stop
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatalf("Start after the informers stopped: %v, want nil", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Start returned only when its context ended")
	}
}
