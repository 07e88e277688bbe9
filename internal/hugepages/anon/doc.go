// Package anon lists the process's anonymous memory mappings that can hold
// transparent huge pages. It imports only the standard library, so that
// package hugepages/early can mark them from package initialisation.
package anon
