// Package storage defines the storage contract of the kubesim apiserver.
//
// A backend keeps objects under string keys of the form
// /registry/<group>/<resource>/[<namespace>/]<name> and versions every write
// with one global, strictly increasing int64 revision. The revision of the
// write that last changed an object is its metadata.resourceVersion.
//
// Backends keep history for a retention window so that reads at an exact or
// older revision, consistent paginated lists and watches that resume from a
// revision work; asking for a revision that has been compacted away fails
// with ErrExpired. The package knows nothing of HTTP: its errors are turned
// into Kubernetes API errors once, at the REST boundary.
//
// Every backend runs the contract suite in package storagetest.
package storage
