package apiserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/utils/ptr"
)

// BenchmarkLeaseRenewal measures what a simulated kubelet's lease renewal
// costs the API server: an Update of the Lease it got back last time, over
// the in-process transport in protobuf, as kubeletsim sends it. With 5,000
// nodes this is 500 requests a second, the bulk of an idle cluster's work.
func BenchmarkLeaseRenewal(b *testing.B) {
	ctx := context.Background()
	client := benchServer(b, Config{AnyPort: true})("system:kubesim:kubeletsim", user.NodesGroup, ComponentsGroup)
	var err error
	leases := client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	const n = 64
	held := make([]*coordinationv1.Lease, n)
	for i := range held {
		renew := metav1.NewMicroTime(time.Now())
		held[i], err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i), Namespace: corev1.NamespaceNodeLease},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(fmt.Sprintf("node-%d", i)), LeaseDurationSeconds: ptr.To(int32(40)), RenewTime: &renew},
		}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l := held[i%n].DeepCopy()
		renew := metav1.NewMicroTime(time.Now())
		l.Spec.RenewTime = &renew
		if held[i%n], err = leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
