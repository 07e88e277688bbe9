// Package datadir is the durable storage of `kubesim up --data-dir`: the
// memory store, whose every change is written to a write-ahead log and
// fsynced before it becomes visible or is acknowledged, with snapshots that
// bound the log.
//
// Layout of a data dir:
//
//	FORMAT                    "kubesim-data-dir 1": the format version
//	LOCK                      held (flock) by the process using the dir
//	wal/<first revision>.wal  log segments: one record per revision
//	snap/<revision>.snap      the live objects at a revision
//
// Writes are grouped: one goroutine writes every change queued since its
// last fsync, fsyncs, and then publishes them all (group commit). Objects
// are encoded as kube-apiserver writes them to etcd (package encoding).
//
// Recovery loads the newest snapshot and replays the log after it, so a
// restart comes back at exactly the last acknowledged revision (or later:
// a change written but not yet acknowledged when the process died may
// survive, as with etcd). A record cut short by a crash at the end of the
// log is dropped: it was never acknowledged. Anything else that does not
// read back (a checksum mismatch, a gap in revisions, a newer format) is an
// error naming the file: never a silent partial load.
package datadir
