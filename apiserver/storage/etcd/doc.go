// Package etcd is the etcd v3 backend of `kubesim up --storage etcd`. It
// stores as kube-apiserver stores, so that a kube-apiserver of the pin
// pointed at the same etcd reads kubesim's objects and kubesim reads its
// objects:
//
//   - kube-apiserver's key layout below its --etcd-prefix:
//     /registry/configmaps/NS/NAME, /registry/minions/NAME,
//     /registry/services/specs/NS/NAME, /registry/deployments/NS/NAME, ...
//     (package encoding maps kubesim's keys to them);
//   - kube-apiserver's encodings: protobuf at the storage version of each
//     built-in resource, JSON for custom resources, resourceVersion left out;
//   - etcd's ModRevision as the resourceVersion, so that every API server
//     on the etcd shares one revision;
//   - a transaction per create, update and delete, compared on the key's
//     revision;
//   - etcd watches with prevKV (a deletion's last state, the previous
//     state for predicates), with progress notifications that become
//     bookmarks;
//   - compaction by kube-apiserver's own compactor (k8s.io/apiserver's
//     etcd3.NewCompactor): a compare-and-swap on the compact key, so that
//     several API servers compact once per interval.
//
// Every read is a linearizable etcd read: a read through any API server
// sees every write acknowledged by any other.
package etcd
