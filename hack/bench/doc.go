// Command bench measures kubesim's start-up, API throughput, memory and
// watch fan-out, and the same workloads against the genuine etcd +
// kube-apiserver of the pin when `make reference-peer` has built them, and
// writes both with their ratios to BENCHMARKS.md (`make bench`).
package main
