package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/klog/v2"
)

const (
	// DefaultProvisioner is the provisioner name of the default class.
	DefaultProvisioner = "kubesim.io/local-path"
	// DefaultClassName is the default StorageClass's name, as kind's.
	DefaultClassName = "standard"
	// DefaultRoot is where volumes' directories are on real nodes.
	DefaultRoot = "/var/lib/kubesim/local-path"
	// CapacityAnnotation on a node is the storage its volumes may take in
	// all (a quantity, e.g. "100Gi"); without it a node's is unbounded.
	CapacityAnnotation = "kubesim.io/storage-capacity"
	// hostnameLabel pins a volume to its node.
	hostnameLabel = "kubernetes.io/hostname"
	// isDefaultClassAnnotation marks the default StorageClass
	// (k8s.io/kubernetes/pkg/apis/storage/util, which addons do not import).
	isDefaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
)

// Config configures the provisioner.
type Config struct {
	// Client creates and deletes PersistentVolumes and records events.
	// Required.
	Client kubernetes.Interface
	// Informers provide claims, volumes, classes and nodes; the
	// provisioner starts the informers it adds. Required.
	Informers informers.SharedInformerFactory
	// Provisioner is the name the provisioner answers to in StorageClasses'
	// provisioner field. Default: DefaultProvisioner.
	Provisioner string
	// DefaultClass is the StorageClass created at start when none of that
	// name exists. Default: "standard", the cluster's default class
	// (storageclass.kubernetes.io/is-default-class), of this provisioner,
	// WaitForFirstConsumer, reclaimPolicy Delete.
	DefaultClass *storagev1.StorageClass
	// DisableDefaultClass creates no StorageClass.
	DisableDefaultClass bool
	// Root is the directory volumes' hostPath directories are made in.
	// Default: DefaultRoot.
	Root string
	// Workers is the number of claims and volumes handled at once.
	// Default: 2.
	Workers int
}

// Provisioner provisions and deletes volumes.
type Provisioner struct {
	cfg Config

	claims  corelisters.PersistentVolumeClaimLister
	volumes corelisters.PersistentVolumeLister
	classes storagelisters.StorageClassLister
	nodes   corelisters.NodeLister
	synced  []cache.InformerSynced

	// queue holds "claim/NAMESPACE/NAME" and "volume/NAME" keys.
	queue       workqueue.TypedRateLimitingInterface[string]
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
}

// New validates and defaults cfg and builds the provisioner.
func New(cfg Config) (*Provisioner, error) {
	if cfg.Client == nil || cfg.Informers == nil {
		return nil, errors.New("storage: Client and Informers are required")
	}
	if cfg.Provisioner == "" {
		cfg.Provisioner = DefaultProvisioner
	}
	if cfg.Root == "" {
		cfg.Root = DefaultRoot
	}
	if !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("storage: Root %q is not an absolute path", cfg.Root)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.DefaultClass == nil && !cfg.DisableDefaultClass {
		cfg.DefaultClass = DefaultStorageClass(cfg.Provisioner)
	}
	p := &Provisioner{cfg: cfg}
	f := cfg.Informers
	claims, volumes := f.Core().V1().PersistentVolumeClaims(), f.Core().V1().PersistentVolumes()
	classes, nodes := f.Storage().V1().StorageClasses(), f.Core().V1().Nodes()
	p.claims, p.volumes, p.classes, p.nodes = claims.Lister(), volumes.Lister(), classes.Lister(), nodes.Lister()
	p.synced = []cache.InformerSynced{claims.Informer().HasSynced, volumes.Informer().HasSynced, classes.Informer().HasSynced, nodes.Informer().HasSynced}
	return p, nil
}

// informersStopped reports whether an informer the provisioner watches has
// stopped, so that no handler can be added to it.
func (p *Provisioner) informersStopped() bool {
	f := p.cfg.Informers
	return f.Core().V1().PersistentVolumeClaims().Informer().IsStopped() || f.Core().V1().PersistentVolumes().Informer().IsStopped()
}

// watch queues the claims and the volumes of this provisioner as they
// change (the informers replay what they have to new handlers).
func (p *Provisioner) watch() error {
	f := p.cfg.Informers
	claimHandler := func(obj interface{}) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			p.queue.Add("claim/" + key)
		}
	}
	volumeHandler := func(obj interface{}) {
		if pv, ok := obj.(*corev1.PersistentVolume); ok && pv.Annotations[storagehelpers.AnnDynamicallyProvisioned] == p.cfg.Provisioner {
			p.queue.Add("volume/" + pv.Name)
		}
	}
	if _, err := f.Core().V1().PersistentVolumeClaims().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: claimHandler, UpdateFunc: func(_, obj interface{}) { claimHandler(obj) },
	}); err != nil {
		return err
	}
	_, err := f.Core().V1().PersistentVolumes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: volumeHandler, UpdateFunc: func(_, obj interface{}) { volumeHandler(obj) },
	})
	return err
}

// DefaultStorageClass is the default class of provisioner, as kind's
// "standard".
func DefaultStorageClass(provisioner string) *storagev1.StorageClass {
	wffc, del := storagev1.VolumeBindingWaitForFirstConsumer, corev1.PersistentVolumeReclaimDelete
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        DefaultClassName,
			Annotations: map[string]string{isDefaultClassAnnotation: "true"},
		},
		Provisioner:       provisioner,
		ReclaimPolicy:     &del,
		VolumeBindingMode: &wffc,
	}
}

// Start creates the default class, then provisions and deletes volumes
// until ctx is done.
func (p *Provisioner) Start(ctx context.Context) error {
	p.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "kubesim-provisioner"})
	defer p.queue.ShutDown()
	if err := p.watch(); err != nil {
		if ctx.Err() != nil || p.informersStopped() {
			// Stopped before it started: the informers are gone (the
			// cluster's shared informers can stop before the add-ons'
			// context is cancelled, when a cluster stops as it becomes
			// ready).
			return nil
		}
		return err
	}
	logger := klog.FromContext(ctx).WithName("provisioner")
	ctx = klog.NewContext(ctx, logger)
	p.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
	p.recorder = p.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: p.cfg.Provisioner})
	p.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: p.cfg.Client.CoreV1().Events("")})
	defer p.broadcaster.Shutdown()
	if class := p.cfg.DefaultClass; class != nil {
		err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 10, Cap: 5 * time.Second}, func(ctx context.Context) (bool, error) {
			_, err := p.cfg.Client.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				return true, nil
			}
			logger.V(2).Info("Creating the default StorageClass", "name", class.Name, "err", err)
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("unable to create the StorageClass %s: %w", class.Name, err)
		}
	}
	p.cfg.Informers.Start(ctx.Done())
	if !cache.WaitForNamedCacheSyncWithContext(ctx, p.synced...) {
		return nil
	}
	logger.V(2).Info("Starting the provisioner", "provisioner", p.cfg.Provisioner)
	for range p.cfg.Workers {
		go wait.UntilWithContext(ctx, p.worker, time.Second)
	}
	<-ctx.Done()
	return nil
}

func (p *Provisioner) worker(ctx context.Context) {
	for {
		key, quit := p.queue.Get()
		if quit {
			return
		}
		var err error
		if name, ok := strings.CutPrefix(key, "volume/"); ok {
			err = p.syncVolume(ctx, name)
		} else {
			err = p.syncClaim(ctx, strings.TrimPrefix(key, "claim/"))
		}
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Retrying", "key", key, "err", err)
			p.queue.AddRateLimited(key)
		} else {
			p.queue.Forget(key)
		}
		p.queue.Done(key)
	}
}

// provisioner is the provisioner a claim waits for, as the PV controller
// marked it.
func provisionerOf(claim *corev1.PersistentVolumeClaim) string {
	if v, ok := claim.Annotations[storagehelpers.AnnStorageProvisioner]; ok {
		return v
	}
	return claim.Annotations[storagehelpers.AnnBetaStorageProvisioner]
}

// syncClaim provisions a volume for the claim if it waits for one of ours.
func (p *Provisioner) syncClaim(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	claim, err := p.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if claim.Spec.VolumeName != "" || claim.Status.Phase != corev1.ClaimPending || claim.DeletionTimestamp != nil || provisionerOf(claim) != p.cfg.Provisioner {
		return nil
	}
	className := storagehelpers.GetPersistentVolumeClaimClass(claim)
	class, err := p.classes.Get(className)
	if err != nil {
		return fmt.Errorf("unable to get the StorageClass %q: %w", className, err)
	}
	node := claim.Annotations[storagehelpers.AnnSelectedNode]
	if class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer && node == "" {
		return nil // the scheduler picks the node first
	}
	pvName := "pvc-" + string(claim.UID)
	if _, err := p.volumes.Get(pvName); err == nil {
		return nil // provisioned; the PV controller binds it
	}
	pv, reschedule, err := p.volumeFor(claim, class, pvName, node)
	if err != nil {
		p.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume with StorageClass %q: %v", class.Name, err)
		if reschedule {
			return p.reschedule(ctx, claim)
		}
		return nil
	}
	p.recorder.Eventf(claim, corev1.EventTypeNormal, "Provisioning", "External provisioner is provisioning volume for claim %q", key)
	if _, err := p.cfg.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		p.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume with StorageClass %q: %v", class.Name, err)
		return err
	}
	klog.FromContext(ctx).V(2).Info("Provisioned", "claim", key, "volume", pvName, "node", node)
	p.recorder.Eventf(claim, corev1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s", pvName)
	return nil
}

// reschedule hands the claim back to the scheduler: without the selected
// node, it picks a node anew for the claim's pod.
func (p *Provisioner) reschedule(ctx context.Context, claim *corev1.PersistentVolumeClaim) error {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:null},"resourceVersion":%q}}`, storagehelpers.AnnSelectedNode, claim.ResourceVersion)
	_, err := p.cfg.Client.CoreV1().PersistentVolumeClaims(claim.Namespace).Patch(ctx, claim.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // changed since: its update is queued
	}
	return err
}

// volumeFor builds the claim's volume; reschedule says whether another
// node may do where this one cannot.
func (p *Provisioner) volumeFor(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, pvName, nodeName string) (pv *corev1.PersistentVolume, reschedule bool, err error) {
	if claim.Spec.VolumeMode != nil && *claim.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		return nil, false, fmt.Errorf("%s provisions filesystem volumes only, not volumeMode Block", p.cfg.Provisioner)
	}
	if claim.Spec.DataSource != nil || claim.Spec.DataSourceRef != nil {
		return nil, false, fmt.Errorf("%s does not populate volumes from a data source", p.cfg.Provisioner)
	}
	size, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return nil, false, errors.New("the claim requests no storage")
	}
	var affinity *corev1.VolumeNodeAffinity
	if nodeName != "" {
		node, err := p.nodes.Get(nodeName)
		if err != nil {
			return nil, true, fmt.Errorf("selected node %q: %w", nodeName, err)
		}
		if err := p.fits(node, size); err != nil {
			return nil, true, err
		}
		hostname := node.Labels[hostnameLabel]
		if hostname == "" {
			hostname = node.Name
		}
		affinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: hostnameLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname}}},
		}}}}
	} else if len(class.AllowedTopologies) > 0 {
		// Immediate binding: the volume may be used wherever the class
		// allows.
		sel := &corev1.NodeSelector{}
		for _, t := range class.AllowedTopologies {
			var term corev1.NodeSelectorTerm
			for _, e := range t.MatchLabelExpressions {
				term.MatchExpressions = append(term.MatchExpressions, corev1.NodeSelectorRequirement{Key: e.Key, Operator: corev1.NodeSelectorOpIn, Values: e.Values})
			}
			sel.NodeSelectorTerms = append(sel.NodeSelectorTerms, term)
		}
		affinity = &corev1.VolumeNodeAffinity{Required: sel}
	}
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	pv = &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        pvName,
			Annotations: map[string]string{storagehelpers.AnnDynamicallyProvisioned: p.cfg.Provisioner},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes: claim.Spec.AccessModes,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion,
			},
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			MountOptions:                  class.MountOptions,
			VolumeMode:                    claim.Spec.VolumeMode,
			NodeAffinity:                  affinity,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: p.dir(pvName, claim), Type: &dirOrCreate,
			}},
		},
	}
	return pv, false, nil
}

// dir is a volume's directory, named as the local-path provisioner names
// them.
func (p *Provisioner) dir(pvName string, claim *corev1.PersistentVolumeClaim) string {
	return filepath.Join(p.cfg.Root, pvName+"_"+claim.Namespace+"_"+claim.Name)
}

// fits checks that size fits what remains of the node's storage capacity.
func (p *Provisioner) fits(node *corev1.Node, size resource.Quantity) error {
	v, ok := node.Annotations[CapacityAnnotation]
	if !ok {
		return nil
	}
	capacity, err := resource.ParseQuantity(v)
	if err != nil {
		return fmt.Errorf("node %s: invalid %s %q: %w", node.Name, CapacityAnnotation, v, err)
	}
	used, err := p.usedOn(node)
	if err != nil {
		return err
	}
	free := capacity.DeepCopy()
	free.Sub(used)
	if free.Cmp(size) < 0 {
		return fmt.Errorf("node %s has %s of storage left (capacity %s), the claim requests %s", node.Name, free.String(), capacity.String(), size.String())
	}
	return nil
}

// usedOn sums the capacity of this provisioner's volumes pinned to node.
func (p *Provisioner) usedOn(node *corev1.Node) (resource.Quantity, error) {
	var used resource.Quantity
	all, err := p.volumes.List(labels.Everything())
	if err != nil {
		return used, err
	}
	hostname := node.Labels[hostnameLabel]
	if hostname == "" {
		hostname = node.Name
	}
	for _, pv := range all {
		if pv.Annotations[storagehelpers.AnnDynamicallyProvisioned] != p.cfg.Provisioner || pinnedTo(pv) != hostname {
			continue
		}
		used.Add(pv.Spec.Capacity[corev1.ResourceStorage])
	}
	return used, nil
}

// pinnedTo is the hostname a volume of ours is pinned to.
func pinnedTo(pv *corev1.PersistentVolume) string {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return ""
	}
	for _, t := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, e := range t.MatchExpressions {
			if e.Key == hostnameLabel && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 {
				return e.Values[0]
			}
		}
	}
	return ""
}

// syncVolume deletes a released volume of ours whose policy is Delete,
// and its directory.
func (p *Provisioner) syncVolume(ctx context.Context, name string) error {
	pv, err := p.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if pv.Status.Phase != corev1.VolumeReleased || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.DeletionTimestamp != nil {
		return nil
	}
	if hp := pv.Spec.HostPath; hp != nil && strings.HasPrefix(hp.Path, p.cfg.Root+string(filepath.Separator)) {
		if err := os.RemoveAll(hp.Path); err != nil {
			p.recorder.Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "unable to remove %s: %v", hp.Path, err)
			return err
		}
	}
	err = p.cfg.Client.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return err
	}
	klog.FromContext(ctx).V(2).Info("Deleted a released volume", "volume", name)
	return nil
}
