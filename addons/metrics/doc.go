// Package metrics runs the genuine metrics-server (sigs.k8s.io/metrics-server)
// in-process: its scraper reads each node's kubelet resource metrics
// (/metrics/resource, at the path a node's
// metrics.k8s.io/resource-metrics-path annotation gives, as metrics-server
// does), its storage computes CPU rates between scrapes, and its API
// server, k8s.io/apiserver's, serves metrics.k8s.io/v1beta1, which the
// kubesim API server serves to clients (kubectl top, the HPA controller)
// as the aggregator serves an APIService's.
//
// Simulated nodes report what the usage model of package kubeletsim says;
// real nodes' genuine kubelets report what their containers use.
package metrics
