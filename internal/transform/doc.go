// Package transform holds the informer transforms kubesim's in-process
// components share.
package transform
