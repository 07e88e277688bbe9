// Command soak is `make soak`: hostile and heavy clients against a running
// `kubesim up` (the binary, with the genuine scheduler and controllers and
// 100 simulated nodes) for a while, and what a well-behaved client and the
// cluster see meanwhile.
//
// The load, each kind as users of its own (impersonated, in
// system:authenticated, so that API Priority and Fairness classifies them
// as any user's):
//   - writers creating, updating and deleting ConfigMaps, every
//     acknowledged write recorded;
//   - list storms: lists of every ConfigMap and every pod without a limit,
//     on raw HTTP clients that do not retry a 429;
//   - watches opened and abandoned after a moment;
//   - slow readers: watches read one event a second;
//   - oversized, truncated and malformed bodies.
//
// Measured meanwhile: /readyz and a get of a well-behaved client (latency
// percentiles), a 1,000-pod Deployment on the 100 nodes (time to all
// available), the kubesim process's RSS; at the end, that every write that
// was acknowledged is still there, every 5xx answer (with its body) and
// any panic in kubesim's log. The report is printed and written to -out.
//
// The well-behaved client is a service account (API Priority and Fairness
// puts it in workload-low), the hostile ones users (global-default). With
// kube-apiserver's default concurrency (--max-requests-inflight 400,
// --max-mutating-requests-inflight 200) the storm's requests share two CPUs
// hundreds at a time, and every request waits for the CPU, /readyz too:
// -kubesim-args sizes them to the machine (make soak: 20 and 10).
package main
