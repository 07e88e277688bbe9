// Command bench-scale is `make bench-scale`: thousands of simulated nodes
// and a hundred thousand pods in one process, scheduled by the genuine
// scheduler. It prints the nodes-ready time, the idle CPU of the nodes,
// pods/s, create-to-Running latency, peak RSS and each component's share
// of CPU (from a CPU profile, by the components' pprof labels). A run cut
// short by an interrupt or its -timeout prints the same figures for the
// pods Running so far.
//
// The pods' Deployments are spread over namespaces so that none holds more
// than 3,000 pods, Kubernetes' scalability threshold for a namespace (the
// cluster's are 5,000 nodes and 150,000 pods), as upstream's own load test
// spreads its objects; -namespaces 1 puts them all in "default".
package main
