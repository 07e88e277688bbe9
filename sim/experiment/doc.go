// Package experiment runs scheduler capacity experiments on kubesim: it
// reads scheduler_perf's own workload files
// (k8s.io/kubernetes/test/integration/scheduler_perf/*/performance-config.yaml)
// unchanged, runs each selected workload on a fresh kubesim cluster (the
// genuine kube-scheduler and controllers, simulated kubelets for the
// workload's nodes, so its pods also run), and measures it as
// scheduler_perf does (SchedulingThroughput sampled every second, the
// scheduler's own histograms, thresholds) and more (scheduling and
// startup latency, unschedulable pods by reason, preemptions, utilisation,
// API request latency against the SLOs). It writes results.json
// (scheduler_perf's DataItems, which perf-dash reads), summary.md and
// plots (PNG and SVG) into an output directory.
//
// A workload file is checked whole before anything starts: a malformed
// file, an unknown op, a missing parameter or an unreadable template fails
// with the file, the line, the op and the reason.
//
// Run is the Go entry point; `kubesim experiment run` is the command.
// The package sits above sim (it starts sim clusters), so that operator
// tests importing sim do not link the plotting library.
package experiment
