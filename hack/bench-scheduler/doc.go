// Command bench-scheduler is make bench-scheduler: scheduler_perf's
// workloads through upstream scheduler_perf and through kubesim's
// experiments, side by side, into BENCHMARKS.md. See main.go.
package main
