// Package crdserver serves CustomResourceDefinitions' custom resources as
// kube-apiserver's apiextensions server does, over kubesim's storage and
// Store: upstream's strategies (structural schema validation, CEL rules,
// defaulting, pruning), conversion (None and Webhook), the status and
// scale subresources, printer columns, server-side apply, discovery, and
// the CRD controllers (names, establishing, removal of a deleted CRD's
// objects) run as kube-apiserver runs them.
package crdserver
