// Package startgc holds the Go garbage collector off while a process
// starts a cluster. A start allocates a heap from nothing: the collector,
// at its default goal, runs every time the heap doubles (4, 8, 16, ... MB)
// and marks everything live each time, a sixth of the CPU of `kubesim up`
// until ready, for memory that stays live.
package startgc
