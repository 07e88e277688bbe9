// Package hugepages asks Linux to back the process's anonymous memory (the
// Go heap above all) with transparent huge pages where the system leaves
// that to each process.
//
// Linux's transparent huge pages are often set to "madvise": only memory a
// process marks with madvise(MADV_HUGEPAGE) gets 2 MiB pages, and the Go
// runtime marks none of its heap. A simulated cluster of thousands of nodes
// keeps gigabytes of small objects that the scheduler and the garbage
// collector walk at random, so with 4 KiB pages nearly every pointer it
// follows is also a TLB miss (a nested page walk on a virtual machine).
// Advise marks the process's anonymous mappings as the JVM's
// -XX:+UseTransparentHugePages does for its heap; where THP is "always" or
// "never" it does nothing, the system has decided.
package hugepages
