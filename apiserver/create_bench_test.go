package apiserver

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
)

// BenchmarkConfigMapCreate measures the API server's side of make bench's
// create rows: a ConfigMap created in protobuf over the in-process
// transport (no TLS), one client at a time, with the process's CPU per
// create reported.
func BenchmarkConfigMapCreate(b *testing.B) {
	ctx := context.Background()
	cms := benchServer(b, Config{AnyPort: true})("bench", user.SystemPrivilegedGroup).CoreV1().ConfigMaps("default")
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"key": "value"}}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e3, "cpu-us/op")
}
