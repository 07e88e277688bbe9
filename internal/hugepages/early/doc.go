// Package early marks the heap of `kubesim up` for transparent huge pages
// from package initialisation until the cluster is ready, where the
// system's setting is "madvise".
//
// Package hugepages marks the process's anonymous mappings once the
// cluster is ready, and merges the small pages already in them
// (MADV_COLLAPSE), CPU a start should not wait for. Before that, each 4 KiB
// page the start's heap touches is a page fault: about 15,000 for `kubesim
// up`, a third of its CPU on a virtual machine whose page faults are dear.
// From package initialisation (this package imports only the standard
// library and package anon, so Go initialises it before the Kubernetes
// packages), this package marks the anonymous mappings (MADV_HUGEPAGE
// alone) every 2 ms, so that the pages the heap touches after a mapping is
// marked come 2 MiB at a time, until Stop (kubesim up calls it when it is
// ready, and package hugepages takes over) or a minute has passed.
//
// It does nothing for other commands, with --huge-pages=false, or where
// the system's setting is "always" or "never".
package early
