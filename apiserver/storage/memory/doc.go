// Package memory is the embedded, in-memory storage backend of kubesim.
//
// It keeps every key's versions in a B-tree ordered by key and every change
// in an append-only event log indexed by revision. Watchers read the log from
// their own cursor, so a slow watcher falls behind instead of blocking
// writers; one that falls behind the compacted revision is ended with
// ErrExpired, and its client re-lists. A watcher that has read the whole log
// waits on its prefix: a write wakes only the watchers of its key (with
// hundreds of watches open, most writes concern a few of them), and tells
// them its revision, so they skip the other keys' events in between. A
// periodic compaction keeps a retention window of history. With a Codec,
// the history only reads at older revisions need (a version some later
// change superseded, and the objects of events a few thousand revisions
// old) is kept encoded: no pointers for the garbage collector to mark, and
// such a read decodes. So are the latest versions under EncodedPrefixes:
// objects written by the thousand and seldom read (Events), which
// kube-apiserver keeps in etcd alone.
//
// Stored objects are read-only, so they share what they have alike (package
// internal/share): a version holds one copy of what the version before it
// had the same, and the objects a controller owns (a ReplicaSet's pods)
// share what they have alike with the first of their set. Managed fields'
// field sets are interned across all versions.
package memory
