// Package memory is the embedded, in-memory storage backend of kubesim.
//
// It keeps every key's versions in a B-tree ordered by key and every change
// in an append-only event log indexed by revision. Watchers read the log from
// their own cursor and wait on a wake-up channel that each write closes and
// replaces, so a slow watcher falls behind instead of blocking writers; one
// that falls behind the compacted revision is ended with ErrExpired, and its
// client re-lists. A periodic compaction keeps a retention window of history.
package memory
