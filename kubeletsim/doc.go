// Package kubeletsim will host thousands of simulated kubelets in one
// process. It is not built yet.
package kubeletsim
