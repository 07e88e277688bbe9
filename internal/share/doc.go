// Package share makes the equal parts of two objects one copy, so that
// many alike objects (the replicas of a ReplicaSet, the versions of one
// object kept in history) cost the memory, and the collector's work, of
// what they do not have alike.
package share
