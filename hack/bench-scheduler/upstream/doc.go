// Package upstream holds nothing but a benchmark: scheduler_perf's own
// BenchmarkPerfScheduling (k8s.io/kubernetes/test/integration/scheduler_perf,
// its integration kube-apiserver and etcd), for any workload file, so that
// hack/bench-scheduler runs the same workloads through upstream and
// through kubesim on the same machine. Build it with go test -tags schedulerperf -c (the tag keeps it out of go vet ./... and go test ./...: it compiles kube-apiserver's test server); run it
// in the file's directory with SCHEDULER_PERF_CONFIG and
// SCHEDULER_PERF_TOPIC set and etcd on PATH.
package upstream
