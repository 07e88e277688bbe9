// Package kubeletsim hosts thousands of simulated kubelets in one process.
//
// Each simulated node does towards the API server what kubelet does: it
// registers its Node, renews its Lease in kube-node-lease, reports node
// status, admits the pods bound to it with kubelet's own admission
// predicates and drives their status through kubelet's lifecycle (init
// containers, sidecars, readiness, restarts with back-off, graceful
// termination), without running containers. How long things take comes
// from a lifecycle Profile and per-pod annotations (see annotations.go),
// measured on an injected clock.
//
// Scale comes from one pod watch (every bound pod, filtered to this
// process's nodes), one node watch and fixed worker pools fed by delaying
// queues: there is no goroutine per node or per pod. The node workers wait
// for the API server's answers, as kubelets do, so their pool grows with
// the nodes (one worker for every NodesPerWorker nodes): on a busy machine
// the leases stay on kubelet's 10s cadence. The kubelet endpoint
// (pods/log, and a clear refusal of exec, attach and port-forward) is one
// HTTPS server for every node; a metrics scraper in the same process
// (metrics-server) reaches it in-process through MetricsTransport.
package kubeletsim
