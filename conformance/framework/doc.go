// Package framework starts and reaches the cluster the conformance suite
// runs against, and runs the stock kubectl binary against it.
package framework
