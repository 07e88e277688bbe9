// Package pki generates the certificates a kubesim cluster runs on: a CA,
// serving certificates for loopback and client certificates.
package pki
