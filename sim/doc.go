// Package sim assembles a kubesim cluster and is the Go API tests use. The
// cluster's parts land here as they are built; today kubesim runs the API
// server alone (see package apiserver and cmd/kubesim).
package sim
