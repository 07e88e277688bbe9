// Package app is the kubesim command line: `kubesim up` and friends.
package app
