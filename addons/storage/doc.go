// Package storage provisions PersistentVolumes for the claims of its
// StorageClasses, as kind's local-path provisioner does: an external
// provisioner beside the genuine PersistentVolume controller of
// kube-controller-manager, which marks the claims it is to provision
// (volume.kubernetes.io/storage-provisioner), binds the volumes it creates,
// and releases them when their claims go.
//
// At start it creates the default StorageClass "standard" (as kind's:
// WaitForFirstConsumer, reclaimPolicy Delete). A claim of a
// WaitForFirstConsumer class is provisioned once the genuine scheduler has
// picked its pod's node (volume.kubernetes.io/selected-node): the volume
// is pinned to that node by its kubernetes.io/hostname label, and the
// scheduler honours that affinity for every later pod of the claim. A
// node may have a storage capacity (the kubesim.io/storage-capacity
// annotation, which kubeletsim's node pools set): a claim that does not
// fit the node's remaining capacity is refused (ProvisioningFailed) and
// handed back to the scheduler, as external-provisioner hands back a claim
// when the driver is out of capacity.
//
// Volumes are hostPath directories (DirectoryOrCreate) under a root
// directory: simulated nodes create nothing, real nodes' kubelets create
// the directory, so real pods keep real data. A released volume of a
// Delete class is deleted, and its directory removed; one of a Retain
// class stays Released, with its data, as the PV controller leaves it.
package storage
