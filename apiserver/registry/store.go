package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	apistorage "k8s.io/apiserver/pkg/storage"
	utilflowcontrol "k8s.io/apiserver/pkg/util/flowcontrol"
	"k8s.io/utils/clock"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/internal/stack"
)

// AttrFunc returns the labels and the selectable fields of an object, as
// upstream's GetAttrs functions do.
type AttrFunc func(obj runtime.Object) (labels.Set, fields.Set, error)

// Strategy is what a Store needs of an upstream strategy.
type Strategy interface {
	rest.RESTCreateStrategy
	rest.RESTUpdateStrategy
	rest.RESTDeleteStrategy
}

// StoreConfig configures a Store.
type StoreConfig struct {
	// Storage is the backend. Required.
	Storage storage.Interface
	// Resource is the group and resource, used for keys and errors. Required.
	Resource schema.GroupResource
	// SingularName is the singular name of the resource. Required.
	SingularName string
	// Namespaced says whether objects live in namespaces.
	Namespaced bool
	// NewFunc and NewListFunc return empty internal objects. Required.
	NewFunc     func() runtime.Object
	NewListFunc func() runtime.Object
	// Strategy is upstream's strategy for the resource. Required.
	Strategy Strategy
	// Attrs returns labels and selectable fields. Default: metadata.name and
	// (for namespaced resources) metadata.namespace.
	Attrs AttrFunc
	// ReturnDeletedObject makes Delete return the object rather than a
	// Status, as kube-apiserver does for some resources.
	ReturnDeletedObject bool
	// TableConvertor renders tables. Default: name and age columns.
	TableConvertor rest.TableConvertor
	// ShortNames and Categories are served in discovery.
	ShortNames []string
	Categories []string
	// Clock stamps deletions and paces bookmarks. Default: the real clock.
	Clock clock.WithTicker
	// BookmarkInterval is how often an idle watch that allows bookmarks gets
	// one. Default: 1m, about what kube-apiserver's watch cache does.
	BookmarkInterval time.Duration
	// Scheme and StorageVersion, when set, make every write go through the
	// storage version with defaulting, as kube-apiserver's round trip
	// through etcd does: defaults that depend on fields a strategy set
	// (a Job's labels from its template, a PVC's Pending phase) appear.
	Scheme         *runtime.Scheme
	StorageVersion schema.GroupVersion
	// ShouldDeleteDuringUpdate says whether an update of an object being
	// deleted removes it. Default: once it has no finalizer left (and no
	// grace period), as upstream's generic registry decides.
	ShouldDeleteDuringUpdate func(obj, existing runtime.Object) bool
}

// Store is a rest.Storage for one resource over a storage.Interface. It
// replaces k8s.io/apiserver's generic registry Store.
type Store struct {
	cfg    StoreConfig
	prefix string // "/registry/<group>/<resource>/"
	hooks  storeHooks
	// expiry, when set, deletes objects a TTL after their last write.
	expiry *expiry
	// encoded shares the encodings of a change among its watches.
	encoded encodedObjects
}

var (
	_ rest.StandardStorage      = (*Store)(nil)
	_ rest.Scoper               = (*Store)(nil)
	_ rest.SingularNameProvider = (*Store)(nil)
	_ rest.ShortNamesProvider   = (*Store)(nil)
	_ rest.CategoriesProvider   = (*Store)(nil)
	_ rest.TableConvertor       = (*Store)(nil)
)

// NewStore validates cfg, fills in its defaults and returns a Store.
func NewStore(cfg StoreConfig) (*Store, error) {
	switch {
	case cfg.Storage == nil:
		return nil, fmt.Errorf("unable to create store: Storage is required")
	case cfg.Resource.Resource == "":
		return nil, fmt.Errorf("unable to create store: Resource is required")
	case cfg.NewFunc == nil || cfg.NewListFunc == nil:
		return nil, fmt.Errorf("unable to create store for %s: NewFunc and NewListFunc are required", cfg.Resource)
	case cfg.Strategy == nil:
		return nil, fmt.Errorf("unable to create store for %s: Strategy is required", cfg.Resource)
	}
	if cfg.Attrs == nil {
		cfg.Attrs = defaultAttrs(cfg.Namespaced)
	}
	if cfg.TableConvertor == nil {
		cfg.TableConvertor = rest.NewDefaultTableConvertor(cfg.Resource)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.BookmarkInterval == 0 {
		cfg.BookmarkInterval = time.Minute
	}
	if cfg.ShouldDeleteDuringUpdate == nil {
		cfg.ShouldDeleteDuringUpdate = shouldDeleteDuringUpdate
	}
	group := cfg.Resource.Group
	if group == "" {
		group = "core"
	}
	return &Store{cfg: cfg, prefix: "/registry/" + group + "/" + cfg.Resource.Resource + "/"}, nil
}

func defaultAttrs(namespaced bool) AttrFunc {
	return func(obj runtime.Object) (labels.Set, fields.Set, error) {
		a, err := meta.Accessor(obj)
		if err != nil {
			return nil, nil, err
		}
		f := fields.Set{"metadata.name": a.GetName()}
		if namespaced {
			f["metadata.namespace"] = a.GetNamespace()
		}
		return labels.Set(a.GetLabels()), f, nil
	}
}

// New implements rest.Storage.
func (s *Store) New() runtime.Object { return s.cfg.NewFunc() }

// Destroy implements rest.Storage.
func (s *Store) Destroy() {}

// NewList implements rest.Lister.
func (s *Store) NewList() runtime.Object { return s.cfg.NewListFunc() }

// NamespaceScoped implements rest.Scoper.
func (s *Store) NamespaceScoped() bool { return s.cfg.Namespaced }

// GetSingularName implements rest.SingularNameProvider.
func (s *Store) GetSingularName() string { return s.cfg.SingularName }

// ShortNames implements rest.ShortNamesProvider.
func (s *Store) ShortNames() []string { return s.cfg.ShortNames }

// Categories implements rest.CategoriesProvider.
func (s *Store) Categories() []string { return s.cfg.Categories }

// ConvertToTable implements rest.TableConvertor.
func (s *Store) ConvertToTable(ctx context.Context, obj, tableOptions runtime.Object) (*metav1.Table, error) {
	return s.cfg.TableConvertor.ConvertToTable(ctx, obj, tableOptions)
}

// qualifiedResource names the resource as the request did, for errors:
// events.k8s.io events and core events share a store.
func (s *Store) qualifiedResource(ctx context.Context) schema.GroupResource {
	if info, ok := genericapirequest.RequestInfoFrom(ctx); ok && info.Resource != "" {
		return schema.GroupResource{Group: info.APIGroup, Resource: info.Resource}
	}
	return s.cfg.Resource
}

// rootKey is the prefix of the objects a request may see.
func (s *Store) rootKey(ctx context.Context) string {
	if ns, ok := genericapirequest.NamespaceFrom(ctx); ok && s.cfg.Namespaced && ns != "" {
		return s.prefix + ns + "/"
	}
	return s.prefix
}

// key returns the key of a named object, with kube-apiserver's checks.
func (s *Store) key(ctx context.Context, name string) (string, error) {
	if len(name) == 0 {
		return "", apierrors.NewBadRequest("Name parameter required.")
	}
	if msgs := validatePathSegmentName(name); len(msgs) != 0 {
		return "", apierrors.NewBadRequest(fmt.Sprintf("Name parameter invalid: %q: %s", name, msgs[0]))
	}
	if !s.cfg.Namespaced {
		return s.prefix + name, nil
	}
	ns, ok := genericapirequest.NamespaceFrom(ctx)
	if !ok || len(ns) == 0 {
		return "", apierrors.NewBadRequest("Namespace parameter required.")
	}
	if msgs := validatePathSegmentName(ns); len(msgs) != 0 {
		return "", apierrors.NewBadRequest(fmt.Sprintf("Namespace parameter invalid: %q: %s", ns, msgs[0]))
	}
	return s.prefix + ns + "/" + name, nil
}

func validatePathSegmentName(name string) []string {
	switch name {
	case ".", "..":
		return []string{fmt.Sprintf("may not be '%s'", name)}
	}
	for _, illegal := range []string{"/", "%"} {
		for i := 0; i < len(name); i++ {
			if string(name[i]) == illegal {
				return []string{fmt.Sprintf("may not contain '%s'", illegal)}
			}
		}
	}
	return nil
}

func resourceVersion(obj runtime.Object) (int64, error) {
	a, err := meta.Accessor(obj)
	if err != nil {
		return 0, err
	}
	return parseRV(a.GetResourceVersion())
}

// parseRV parses a resourceVersion as kube-apiserver's storage does; its
// error is returned unchanged, as upstream's cacher returns it.
func parseRV(rv string) (int64, error) {
	n, err := apistorage.APIObjectVersioner{}.ParseResourceVersion(rv)
	if err != nil {
		return 0, err
	}
	return int64(n), nil
}

func isDryRun(dryRun []string) bool { return len(dryRun) > 0 }

// Get implements rest.Getter.
func (s *Store) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	key, err := s.key(ctx, name)
	if err != nil {
		return nil, err
	}
	var min int64
	if options != nil && options.ResourceVersion != "" {
		if min, err = parseRV(options.ResourceVersion); err != nil {
			return nil, err
		}
	}
	obj, err := s.cfg.Storage.Get(ctx, key, storage.GetOptions{MinRevision: min})
	if err != nil {
		return nil, interpretGet(err, s.qualifiedResource(ctx), name)
	}
	return obj, nil
}

// predicate builds the storage predicate of a list or watch.
func (s *Store) predicate(opts *metainternalversion.ListOptions) storage.Predicate {
	label, field := labels.Everything(), fields.Everything()
	if opts != nil && opts.LabelSelector != nil {
		label = opts.LabelSelector
	}
	if opts != nil && opts.FieldSelector != nil {
		field = opts.FieldSelector
	}
	if label.Empty() && field.Empty() {
		return nil
	}
	if field.Empty() {
		// A label selector alone needs the labels, not the attributes the
		// strategy computes (a field set built per object and event).
		return func(obj runtime.Object) (bool, error) {
			a, err := meta.Accessor(obj)
			if err != nil {
				return false, err
			}
			return label.Matches(labels.Set(a.GetLabels())), nil
		}
	}
	attrs := s.cfg.Attrs
	return func(obj runtime.Object) (bool, error) {
		l, f, err := attrs(obj)
		if err != nil {
			return false, err
		}
		return label.Matches(l) && field.Matches(f), nil
	}
}

// List implements rest.Lister.
func (s *Store) List(ctx context.Context, options *metainternalversion.ListOptions) (runtime.Object, error) {
	if options == nil {
		options = &metainternalversion.ListOptions{}
	}
	gr := s.qualifiedResource(ctx)
	prefix := s.rootKey(ctx)
	lo := storage.ListOptions{Limit: options.Limit, Predicate: s.predicate(options)}

	// The continue token, then the resourceVersion, are checked as
	// kube-apiserver's storage checks them (ValidateListOptions): a
	// resourceVersion that is not one is a bad request.
	var rv int64
	if options.Continue == "" {
		var err error
		if rv, err = parseRV(options.ResourceVersion); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version: %v", err))
		}
	}
	switch {
	case options.Continue != "":
		start, crv, err := apistorage.DecodeContinue(options.Continue, prefix)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid continue token: %v", err))
		}
		if options.ResourceVersion != "" && options.ResourceVersion != "0" {
			return nil, apierrors.NewBadRequest("specifying resource version is not allowed when using continue")
		}
		lo.StartKey = start
		if crv != -1 { // -1: continue at the latest revision, inconsistently
			lo.Revision, lo.Match = crv, storage.MatchExact
		}
	case options.ResourceVersionMatch == metav1.ResourceVersionMatchExact:
		lo.Revision, lo.Match = rv, storage.MatchExact
	case options.ResourceVersionMatch == metav1.ResourceVersionMatchNotOlderThan:
		lo.Revision, lo.Match = rv, storage.MatchNotOlderThan
	case rv > 0 && options.Limit > 0:
		// A paginated list at a revision reads that exact snapshot.
		lo.Revision, lo.Match = rv, storage.MatchExact
	case rv > 0:
		lo.Revision, lo.Match = rv, storage.MatchNotOlderThan
	}
	res, err := s.cfg.Storage.List(ctx, prefix, lo)
	if err != nil {
		if isCode(err, storage.ErrCodeExpired) {
			if options.Continue != "" || options.Limit > 0 {
				return nil, continueExpired(lo.StartKey, prefix)
			}
			return nil, apierrors.NewResourceExpired(listExpired)
		}
		return nil, interpretList(err, gr)
	}
	if _, shared := s.cfg.Storage.(interface{ SharesObjects() bool }); shared && encodedLists(ctx) {
		el := &encodedList{newList: s.cfg.NewListFunc, items: res.Items, attachments: res.Attachments}
		el.listMeta.ResourceVersion = strconv.FormatInt(res.Revision, 10)
		if res.NextKey != "" {
			token, err := apistorage.EncodeContinue(res.NextKey, prefix, res.Revision)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			el.listMeta.Continue, el.listMeta.RemainingItemCount = token, res.RemainingItemCount
		}
		if el.items == nil {
			el.items = []runtime.Object{}
		}
		return el, nil
	}
	list := s.cfg.NewListFunc()
	if err := meta.SetList(list, res.Items); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	la, err := meta.ListAccessor(list)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	la.SetResourceVersion(strconv.FormatInt(res.Revision, 10))
	if res.NextKey != "" {
		token, err := apistorage.EncodeContinue(res.NextKey, prefix, res.Revision)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		la.SetContinue(token)
		la.SetRemainingItemCount(res.RemainingItemCount)
	}
	return list, nil
}

// maxNameGenerationCreateAttempts is how many names a create with
// generateName tries, as in kube-apiserver (k8s.io/apiserver's
// registry.Store): with eight, a million names of one prefix conflict with
// a probability of 0.1%; with one, 4,500 names conflict with 50%.
const maxNameGenerationCreateAttempts = 8

// Create implements rest.Creater. An object with a generateName and no name
// is created under a new random name again, up to
// maxNameGenerationCreateAttempts times, when the name generated is taken,
// as kube-apiserver does.
func (s *Store) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	if objMeta, err := meta.Accessor(obj); err != nil || objMeta.GetGenerateName() == "" || objMeta.GetName() != "" {
		return s.create(ctx, obj, createValidation, options)
	}
	var out runtime.Object
	var err error
	for range maxNameGenerationCreateAttempts {
		out, err = s.create(ctx, obj.DeepCopyObject(), createValidation, options)
		if err == nil || !apierrors.IsAlreadyExists(err) {
			break
		}
	}
	return out, err
}

// create is one attempt of Create.
func (s *Store) create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	if options == nil {
		options = &metav1.CreateOptions{}
	}
	objMeta, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	rest.FillObjectMetaSystemFields(objMeta)
	if len(objMeta.GetGenerateName()) > 0 && len(objMeta.GetName()) == 0 {
		objMeta.SetName(s.cfg.Strategy.GenerateName(objMeta.GetGenerateName()))
	}
	success := false
	finish, err := s.beginCreate(ctx, obj, isDryRun(options.DryRun))
	if err != nil {
		return nil, err
	}
	defer func() { finish(success) }()
	if obj, err = s.prepareCreate(ctx, obj, createValidation); err != nil {
		return nil, err
	}
	name := objMeta.GetName()
	key, err := s.key(ctx, name)
	if err != nil {
		return nil, err
	}
	gr := s.qualifiedResource(ctx)
	if isDryRun(options.DryRun) {
		if _, err := s.cfg.Storage.Get(ctx, key, storage.GetOptions{}); err == nil {
			return nil, interpretCreate(storage.NewError(storage.ErrCodeKeyExists, key, 0, ""), gr, name)
		}
		success = true
		return obj, nil
	}
	out, err := s.cfg.Storage.Create(ctx, key, obj)
	if err != nil {
		err = interpretCreate(err, gr, name)
		err = rest.CheckGeneratedNameError(ctx, s.cfg.Strategy, err, obj)
		if apierrors.IsAlreadyExists(err) {
			if existing, gerr := s.cfg.Storage.Get(ctx, key, storage.GetOptions{}); gerr == nil {
				if a, aerr := meta.Accessor(existing); aerr == nil && a.GetDeletionTimestamp() != nil {
					msg := &err.(*apierrors.StatusError).ErrStatus.Message
					*msg = fmt.Sprintf("object is being deleted: %s", *msg)
				}
			}
		}
		return nil, err
	}
	success = true
	s.track(key, out)
	return out, nil
}

// prepareCreate turns a request's object into the one to store: the
// strategy's BeforeCreate, admission's validation, the storage round trip.
func (s *Store) prepareCreate(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc) (runtime.Object, error) {
	if err := rest.BeforeCreate(s.cfg.Strategy, ctx, obj); err != nil {
		return nil, err
	}
	if createValidation != nil {
		if err := createValidation(ctx, obj.DeepCopyObject()); err != nil {
			return nil, err
		}
	}
	return s.normalize(obj)
}

// Update implements rest.Updater.
func (s *Store) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return s.update(ctx, name, objInfo, createValidation, updateValidation, forceAllowCreate, options, s.cfg.Strategy)
}

// update is Update with the strategy of the main resource or of a
// subresource such as status.
func (s *Store) update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions, strategy rest.RESTUpdateStrategy) (runtime.Object, bool, error) {
	if options == nil {
		options = &metav1.UpdateOptions{}
	}
	key, err := s.key(ctx, name)
	if err != nil {
		return nil, false, err
	}
	gr := s.qualifiedResource(ctx)
	var pre apistorage.Preconditions
	if p := objInfo.Preconditions(); p != nil {
		pre.UID, pre.ResourceVersion = p.UID, p.ResourceVersion
	}
	allowCreate := strategy.AllowCreateOnUpdate(ctx) || forceAllowCreate
	// Before the field manager's walk in UpdatedObject (internal/stack).
	stack.Grow()
	for {
		existing, err := s.cfg.Storage.Get(ctx, key, storage.GetOptions{})
		notFound := isCode(err, storage.ErrCodeNotFound)
		if err != nil && !notFound {
			return nil, false, interpretUpdate(err, gr, name)
		}
		if notFound {
			if !allowCreate {
				return nil, false, apierrors.NewNotFound(gr, name)
			}
			existing = s.cfg.NewFunc()
		}
		if err := pre.Check(key, existing); err != nil && !notFound {
			return nil, false, interpretUpdate(err, gr, name)
		}
		obj, err := objInfo.UpdatedObject(ctx, existing)
		if err != nil {
			return nil, false, err
		}
		if notFound {
			out, err := s.createOnUpdate(ctx, key, name, obj, createValidation, options)
			if isCode(err, storage.ErrCodeKeyExists) {
				continue // raced with a create: update it instead
			}
			return out, err == nil, err
		}
		existingRV, err := resourceVersion(existing)
		if err != nil {
			return nil, false, apierrors.NewInternalError(err)
		}
		newRV, err := resourceVersion(obj)
		if err != nil {
			return nil, false, apierrors.NewBadRequest(err.Error())
		}
		objMeta, err := meta.Accessor(obj)
		if err != nil {
			return nil, false, apierrors.NewInternalError(err)
		}
		if newRV == 0 {
			if !strategy.AllowUnconditionalUpdate(ctx) {
				qualifiedKind := schema.GroupKind{Group: gr.Group, Kind: gr.Resource}
				return nil, false, apierrors.NewInvalid(qualifiedKind, name, field.ErrorList{field.Invalid(field.NewPath("metadata").Child("resourceVersion"), newRV, "must be specified for an update")})
			}
			objMeta.SetResourceVersion(strconv.FormatInt(existingRV, 10))
		} else if newRV != existingRV {
			return nil, false, apierrors.NewConflict(gr, name, errors.New(optimisticLockErrorMsg))
		}
		if s.hooks != nil && strategy == s.cfg.Strategy {
			s.hooks.beginUpdate(obj, existing)
		}
		if err := rest.BeforeUpdate(strategy, ctx, obj, existing); err != nil {
			return nil, false, err
		}
		if updateValidation != nil {
			if err := updateValidation(ctx, obj.DeepCopyObject(), existing.DeepCopyObject()); err != nil {
				return nil, false, err
			}
		}
		if obj, err = s.normalize(obj); err != nil {
			return nil, false, err
		}
		if s.cfg.ShouldDeleteDuringUpdate(obj, existing) {
			// As upstream: the client of a PUT or PATCH gets the object it
			// wrote, not the Status a DELETE answers with (the garbage
			// collector's metadata client needs an object).
			if isDryRun(options.DryRun) {
				return obj, false, nil
			}
			_, err := s.removeAt(ctx, key, existingRV)
			if isCode(err, storage.ErrCodeConflict) {
				// Changed since it was read: the update starts over on
				// the new state (a deletion of a stale read would drop
				// what changed, and the update would not be what happened).
				continue
			}
			if err != nil && !isCode(err, storage.ErrCodeNotFound) {
				return nil, false, interpretUpdate(err, gr, name)
			}
			return obj, false, nil
		}
		// kube-apiserver writes nothing for an update that changes nothing.
		if unchanged(obj, existing) {
			return existing, false, nil
		}
		finish := func(bool) {}
		if s.hooks != nil && strategy == s.cfg.Strategy {
			if finish, err = s.hooks.allocateUpdate(ctx, obj, existing, isDryRun(options.DryRun)); err != nil {
				return nil, false, err
			}
		}
		if isDryRun(options.DryRun) {
			finish(true)
			return obj, false, nil
		}
		out, err := s.cfg.Storage.Update(ctx, key, obj, storage.UpdateOptions{ExpectedRevision: existingRV})
		finish(err == nil)
		if isCode(err, storage.ErrCodeConflict) {
			// Changed since it was read: start over on the new state, as
			// kube-apiserver's GuaranteedUpdate does. A patch is applied
			// again to it; an update that named the old resourceVersion
			// then gets its 409.
			continue
		}
		if err != nil {
			return nil, false, interpretUpdate(err, gr, name)
		}
		s.track(key, out)
		return out, false, nil
	}
}

// unchanged says whether an update leaves the object as it was
// (apiequality.Semantic.DeepEqual). An update that changes a field its
// field manager tracks also changes the managed fields (the manager's
// entry, or its time): those are compared first, and cheaply, and when
// they differ the object does (DeepEqual of a renewed Lease, equal up to
// its managed fields, was 5% of a renewal's time in the registry).
func unchanged(obj, existing runtime.Object) bool {
	a, errA := meta.Accessor(obj)
	b, errB := meta.Accessor(existing)
	if errA == nil && errB == nil && managedFieldsDiffer(a.GetManagedFields(), b.GetManagedFields()) {
		return false
	}
	return apiequality.Semantic.DeepEqual(obj, existing)
}

// managedFieldsDiffer is true only when apiequality.Semantic.DeepEqual of
// a and b is false: a nil and an empty list are alike, times are compared
// as instants (Semantic compares them as UTC time.Time values, which
// differ when the instants do).
func managedFieldsDiffer(a, b []metav1.ManagedFieldsEntry) bool {
	if len(a) != len(b) {
		return true
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Manager != y.Manager || x.Operation != y.Operation || x.APIVersion != y.APIVersion ||
			x.FieldsType != y.FieldsType || x.Subresource != y.Subresource {
			return true
		}
		if (x.Time == nil) != (y.Time == nil) || x.Time != nil && !x.Time.Time.Equal(y.Time.Time) {
			return true
		}
		if (x.FieldsV1 == nil) != (y.FieldsV1 == nil) || x.FieldsV1 != nil && !bytes.Equal(x.FieldsV1.Raw, y.FieldsV1.Raw) {
			return true
		}
	}
	return false
}

const optimisticLockErrorMsg = "the object has been modified; please apply your changes to the latest version and try again"

// beginCreate runs the resource's create hooks (a Service's allocations);
// finish, with whether the create succeeded, ends them.
func (s *Store) beginCreate(ctx context.Context, obj runtime.Object, dryRun bool) (finish func(success bool), err error) {
	if s.hooks == nil {
		return func(bool) {}, nil
	}
	return s.hooks.beginCreate(ctx, obj, dryRun)
}

// createOnUpdate creates the object an update (or apply) of a missing one
// makes, as upstream's Store.Update does when creating.
func (s *Store) createOnUpdate(ctx context.Context, key, name string, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.UpdateOptions) (runtime.Object, error) {
	objMeta, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	rest.WipeObjectMetaSystemFields(objMeta)
	rest.FillObjectMetaSystemFields(objMeta)
	// As upstream's Store.Update creating: the create hooks run (a
	// Service created by server-side apply gets its ClusterIP and node
	// ports allocated as one created by POST).
	success := false
	finish, err := s.beginCreate(ctx, obj, isDryRun(options.DryRun))
	if err != nil {
		return nil, err
	}
	defer func() { finish(success) }()
	if obj, err = s.prepareCreate(ctx, obj, createValidation); err != nil {
		return nil, err
	}
	if isDryRun(options.DryRun) {
		success = true
		return obj, nil
	}
	out, err := s.cfg.Storage.Create(ctx, key, obj)
	if isCode(err, storage.ErrCodeKeyExists) {
		return nil, err
	}
	if err != nil {
		return nil, interpretCreate(err, s.qualifiedResource(ctx), name)
	}
	success = true
	s.track(key, out)
	return out, nil
}

// shouldDeleteDuringUpdate: the update removed the last finalizer of an
// object being deleted without a grace period.
func shouldDeleteDuringUpdate(obj, existing runtime.Object) bool {
	newMeta, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	oldMeta, err := meta.Accessor(existing)
	if err != nil {
		return false
	}
	if len(newMeta.GetFinalizers()) > 0 || oldMeta.GetDeletionTimestamp() == nil {
		return false
	}
	g := oldMeta.GetDeletionGracePeriodSeconds()
	return g == nil || *g == 0
}

// Delete implements rest.GracefulDeleter.
func (s *Store) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	key, err := s.key(ctx, name)
	if err != nil {
		return nil, false, err
	}
	if options == nil {
		options = metav1.NewDeleteOptions(0)
	}
	gr := s.qualifiedResource(ctx)
	var pre apistorage.Preconditions
	if options.Preconditions != nil {
		pre.UID, pre.ResourceVersion = options.Preconditions.UID, options.Preconditions.ResourceVersion
	}
	for {
		existing, err := s.cfg.Storage.Get(ctx, key, storage.GetOptions{})
		if err != nil {
			return nil, false, interpretDelete(err, gr, name)
		}
		// BeforeDelete checks the preconditions first, with kube-apiserver's
		// words; the storage check after it catches what raced.
		obj := existing.DeepCopyObject()
		graceful, pendingGraceful, err := rest.BeforeDelete(s.cfg.Strategy, ctx, obj, options)
		if err != nil {
			return nil, false, err
		}
		if err := pre.Check(key, existing); err != nil {
			return nil, false, interpretDelete(err, gr, name)
		}
		existingRV, err := resourceVersion(existing)
		if err != nil {
			return nil, false, apierrors.NewInternalError(err)
		}
		if deleteValidation != nil {
			if err := deleteValidation(ctx, existing.DeepCopyObject()); err != nil {
				return nil, false, err
			}
		}
		if pendingGraceful {
			return s.finalizeDelete(ctx, existing), false, nil
		}
		objMeta, err := meta.Accessor(obj)
		if err != nil {
			return nil, false, apierrors.NewInternalError(err)
		}
		if update, finalizers := s.gcFinalizers(ctx, objMeta, options); update {
			objMeta.SetFinalizers(finalizers)
		}
		pendingFinalizers := len(objMeta.GetFinalizers()) != 0
		if !graceful && !pendingFinalizers {
			return s.deleteNow(ctx, key, name, existingRV, existing, options)
		}
		if !graceful {
			markAsDeleting(obj, s.cfg.Clock.Now())
		}
		if isDryRun(options.DryRun) {
			return obj, false, nil
		}
		out, err := s.cfg.Storage.Update(ctx, key, obj, storage.UpdateOptions{ExpectedRevision: existingRV})
		if isCode(err, storage.ErrCodeConflict) {
			continue
		}
		if err != nil {
			return nil, false, interpretDelete(err, gr, name)
		}
		// As upstream: a graceful deletion with a zero grace period (say, of
		// an unscheduled pod) is stamped, then deleted at once.
		if pendingFinalizers || (graceful && *options.GracePeriodSeconds > 0) {
			return out, false, nil
		}
		outRV, err := resourceVersion(out)
		if err != nil {
			return nil, false, apierrors.NewInternalError(err)
		}
		return s.deleteNow(ctx, key, name, outRV, out, options)
	}
}

func (s *Store) deleteNow(ctx context.Context, key, name string, rev int64, last runtime.Object, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	if isDryRun(options.DryRun) {
		return s.finalizeDelete(ctx, last), true, nil
	}
	out, err := s.removeAt(ctx, key, rev)
	if isCode(err, storage.ErrCodeConflict) {
		// Changed since it was checked: start over with the new state.
		return s.Delete(ctx, name, nil, options)
	}
	if err != nil {
		return nil, false, interpretDelete(err, s.qualifiedResource(ctx), name)
	}
	return s.finalizeDelete(ctx, out), true, nil
}

// removeAt removes the object stored at key if it is still at revision rev,
// and runs the resource's after-delete hook (releasing a Service's IPs and
// ports) once it is gone.
func (s *Store) removeAt(ctx context.Context, key string, rev int64) (runtime.Object, error) {
	out, err := s.cfg.Storage.Delete(ctx, key, storage.DeleteOptions{ExpectedRevision: rev})
	if err == nil && s.hooks != nil {
		s.hooks.afterDelete(out)
	}
	return out, err
}

// finalizeDelete returns what a successful delete answers with.
func (s *Store) finalizeDelete(ctx context.Context, obj runtime.Object) runtime.Object {
	if s.cfg.ReturnDeletedObject {
		return obj
	}
	a, err := meta.Accessor(obj)
	if err != nil {
		return obj
	}
	gr := s.qualifiedResource(ctx)
	return &metav1.Status{
		Status: metav1.StatusSuccess,
		Details: &metav1.StatusDetails{
			Name:  a.GetName(),
			Group: gr.Group,
			Kind:  gr.Resource,
			UID:   a.GetUID(),
		},
	}
}

func markAsDeleting(obj runtime.Object, now time.Time) {
	objMeta, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	if objMeta.GetDeletionTimestamp() == nil && objMeta.GetGeneration() > 0 {
		objMeta.SetGeneration(objMeta.GetGeneration() + 1)
	}
	if ts := objMeta.GetDeletionTimestamp(); ts == nil || ts.After(now) {
		t := metav1.NewTime(now)
		objMeta.SetDeletionTimestamp(&t)
	}
	var zero int64
	objMeta.SetDeletionGracePeriodSeconds(&zero)
}

// gcFinalizers returns the finalizers a deletion leaves for the garbage
// collector (orphan or foreground), as kube-apiserver sets them.
func (s *Store) gcFinalizers(ctx context.Context, accessor metav1.Object, options *metav1.DeleteOptions) (bool, []string) {
	policy := rest.DeleteDependents
	if gc, ok := s.cfg.Strategy.(rest.GarbageCollectionDeleteStrategy); ok {
		policy = gc.DefaultGarbageCollectionPolicy(ctx)
	}
	if policy == rest.Unsupported {
		return false, accessor.GetFinalizers()
	}
	orphan, foreground := false, false
	switch {
	case options.OrphanDependents != nil:
		orphan = *options.OrphanDependents
	case options.PropagationPolicy != nil:
		orphan = *options.PropagationPolicy == metav1.DeletePropagationOrphan
		foreground = *options.PropagationPolicy == metav1.DeletePropagationForeground
	default:
		decided := false
		for _, f := range accessor.GetFinalizers() {
			if f == metav1.FinalizerOrphanDependents {
				orphan, decided = true, true
				break
			}
			if f == metav1.FinalizerDeleteDependents {
				foreground, decided = true, true
				break
			}
		}
		if !decided {
			orphan = policy == rest.OrphanDependents
		}
	}
	var out []string
	for _, f := range accessor.GetFinalizers() {
		if f != metav1.FinalizerOrphanDependents && f != metav1.FinalizerDeleteDependents {
			out = append(out, f)
		}
	}
	if orphan {
		out = append(out, metav1.FinalizerOrphanDependents)
	}
	if foreground {
		out = append(out, metav1.FinalizerDeleteDependents)
	}
	if sets.New(accessor.GetFinalizers()...).Equal(sets.New(out...)) {
		return false, accessor.GetFinalizers()
	}
	return true, out
}

// DeleteCollection implements rest.CollectionDeleter.
func (s *Store) DeleteCollection(ctx context.Context, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions, listOptions *metainternalversion.ListOptions) (runtime.Object, error) {
	if listOptions == nil {
		listOptions = &metainternalversion.ListOptions{}
	} else {
		listOptions = listOptions.DeepCopy()
	}
	listObj, err := s.List(ctx, listOptions)
	if err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(listObj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	var deleted []runtime.Object
	for _, item := range items {
		a, err := meta.Accessor(item)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		itemCtx := ctx
		if s.cfg.Namespaced {
			itemCtx = genericapirequest.WithNamespace(ctx, a.GetNamespace())
		}
		opts := options.DeepCopy()
		if opts == nil {
			opts = &metav1.DeleteOptions{}
		}
		out, _, err := s.Delete(itemCtx, a.GetName(), deleteValidation, opts)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if err == nil {
			if _, isStatus := out.(*metav1.Status); isStatus {
				out = item
			}
			deleted = append(deleted, out)
		}
	}
	if err := meta.SetList(listObj, deleted); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return listObj, nil
}

// Watch implements rest.Watcher.
func (s *Store) Watch(ctx context.Context, options *metainternalversion.ListOptions) (watch.Interface, error) {
	if options == nil {
		options = &metainternalversion.ListOptions{}
	}
	gr := s.qualifiedResource(ctx)
	prefix := s.rootKey(ctx)
	pred := s.predicate(options)
	if name, ok := singleName(options.FieldSelector); ok && name != "" {
		// A watch of one object reads one key's events. The predicate
		// still filters, since the key is only a prefix.
		if key, err := s.key(ctx, name); err == nil {
			prefix = key
		}
	}
	rv, err := parseRV(options.ResourceVersion)
	if err != nil {
		return nil, err
	}
	initial := options.ResourceVersion == "" || options.ResourceVersion == "0"
	if options.SendInitialEvents != nil {
		initial = *options.SendInitialEvents
	}
	w := &storeWatch{
		store: s,
		// Buffered, as kube-apiserver's watch cache buffers each
		// watcher's events: the API handler writes (and flushes) once for
		// the events that queued meanwhile, not once per event.
		result:    make(chan watch.Event, watchResultBuffer),
		done:      make(chan struct{}),
		bookmarks: options.AllowWatchBookmarks,
	}
	var from int64 = rv
	if initial {
		lo := storage.ListOptions{Predicate: pred}
		if rv > 0 {
			lo.Revision, lo.Match = rv, storage.MatchNotOlderThan
		}
		res, err := s.cfg.Storage.List(ctx, prefix, lo)
		if err != nil {
			return nil, interpretList(err, gr)
		}
		w.initial = res.Items
		from = res.Revision
		w.initialEnd = options.SendInitialEvents != nil && *options.SendInitialEvents && options.AllowWatchBookmarks
	}
	if from == 0 {
		if from, err = s.cfg.Storage.CurrentRevision(ctx); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
	}
	w.lastRV = from
	opts := storage.WatchOptions{Revision: from, Predicate: pred}
	direct := len(w.initial) == 0 && !w.initialEnd && !w.bookmarks
	if direct {
		// Nothing to add to the storage's events: the API reads them
		// from the storage's watch, which makes them the API's events
		// itself, with no goroutine and buffer between them.
		opts.Transform = s.apiEvent
	}
	inner, err := s.cfg.Storage.Watch(ctx, prefix, opts)
	if err != nil {
		if isCode(err, storage.ErrCodeExpired) {
			// As kube-apiserver's watch cache: the watch opens and its
			// only event is the 410 Expired error.
			var se *storage.Error
			errors.As(err, &se)
			return errorWatch(watchErrorStatus(se)), nil
		}
		return nil, interpretList(err, gr)
	}
	if direct {
		utilflowcontrol.WatchInitialized(ctx)
		return inner, nil
	}
	w.inner = inner
	go w.run(ctx)
	// API Priority and Fairness holds a watch's seats until it is set up,
	// as kube-apiserver's watch cache tells it once a watcher starts: not
	// for the watch's life, which would leave a level no seats after a few
	// informers.
	utilflowcontrol.WatchInitialized(ctx)
	return w, nil
}

// watchResultBuffer is how many events a watch's response can have queued,
// kube-apiserver's default for a watcher of its watch cache.
const watchResultBuffer = 100

// singleName returns the name a field selector pins, if it pins one.
func singleName(sel fields.Selector) (string, bool) {
	if sel == nil {
		return "", false
	}
	return sel.RequiresExactMatch("metadata.name")
}

// storeWatch adapts a storage watch to the API: initial events, bookmarks
// and API errors.
type storeWatch struct {
	store      *Store
	inner      watch.Interface
	result     chan watch.Event
	done       chan struct{}
	initial    []runtime.Object
	initialEnd bool
	bookmarks  bool
	lastRV     int64
	stopOnce   sync.Once
}

func (w *storeWatch) ResultChan() <-chan watch.Event { return w.result }

func (w *storeWatch) Stop() { w.stopOnce.Do(func() { close(w.done) }) }

func (w *storeWatch) send(e watch.Event) bool {
	select {
	case w.result <- e:
		return true
	case <-w.done:
		return false
	}
}

func (w *storeWatch) bookmark(initialEnd bool) watch.Event {
	obj := w.store.cfg.NewFunc()
	if a, err := meta.Accessor(obj); err == nil {
		a.SetResourceVersion(strconv.FormatInt(w.lastRV, 10))
		if initialEnd {
			a.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		}
	}
	return watch.Event{Type: watch.Bookmark, Object: obj}
}

func (w *storeWatch) run(ctx context.Context) {
	defer close(w.result)
	defer w.inner.Stop()
	for _, obj := range w.initial {
		if !w.send(watch.Event{Type: watch.Added, Object: w.store.encoded.wrap(obj)}) {
			return
		}
	}
	w.initial = nil
	if w.initialEnd && !w.send(w.bookmark(true)) {
		return
	}
	var tick <-chan time.Time
	if w.bookmarks {
		t := w.store.cfg.Clock.NewTicker(w.store.cfg.BookmarkInterval)
		defer t.Stop()
		tick = t.C()
	}
	for {
		select {
		case <-w.done:
			return
		case <-ctx.Done():
			return
		case <-tick:
			if !w.send(w.bookmark(false)) {
				return
			}
		case e, ok := <-w.inner.ResultChan():
			if !ok {
				return
			}
			if p, ok := e.Object.(*storage.Progress); ok && e.Type == watch.Bookmark {
				// Every change up to p.Revision has been sent: a bookmark
				// there, as kube-apiserver makes of etcd's progress
				// notifications, when the client asked for bookmarks.
				if w.bookmarks {
					w.lastRV = max(w.lastRV, p.Revision)
					if !w.send(w.bookmark(false)) {
						return
					}
				}
				continue
			}
			if e.Type != watch.Error {
				if rv, err := resourceVersion(e.Object); err == nil {
					w.lastRV = rv
				}
			}
			e, _ = w.store.apiEvent(e)
			if !w.send(e) || e.Type == watch.Error {
				return
			}
		}
	}
}

// apiEvent is what the API sends of a storage watch's event: its object
// wrapped to share its encodings among watchers, a storage error as the
// Status kube-apiserver sends, and no backend progress (*storage.Progress):
// storeWatch makes bookmarks of it for the clients that ask for them.
func (s *Store) apiEvent(e watch.Event) (watch.Event, bool) {
	switch e.Type {
	case watch.Error:
		if we, ok := e.Object.(*storage.WatchError); ok {
			e.Object = watchErrorStatus(we.Err)
		}
		return e, true
	case watch.Bookmark:
		if _, ok := e.Object.(*storage.Progress); ok {
			return e, false
		}
	}
	e.Object = s.encoded.wrap(e.Object)
	return e, true
}

type fieldErrorList = field.ErrorList

func setResourceVersion(obj runtime.Object, rv string) error {
	a, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	a.SetResourceVersion(rv)
	return nil
}

// guaranteedUpdate applies tryUpdate to the latest state of an object and
// writes the result, retrying on conflicts, with no strategy: what
// upstream's stores do with storage.GuaranteedUpdate (namespace
// termination, pod binding). tryUpdate gets a copy it may change.
func (s *Store) guaranteedUpdate(ctx context.Context, name string, pre *apistorage.Preconditions, dryRun bool, tryUpdate func(existing runtime.Object) (runtime.Object, error)) (runtime.Object, error) {
	key, err := s.key(ctx, name)
	if err != nil {
		return nil, err
	}
	gr := s.qualifiedResource(ctx)
	for {
		existing, err := s.cfg.Storage.Get(ctx, key, storage.GetOptions{})
		if err != nil {
			return nil, interpretUpdate(err, gr, name)
		}
		if pre != nil {
			if err := pre.Check(key, existing); err != nil {
				return nil, interpretUpdate(err, gr, name)
			}
		}
		rev, err := resourceVersion(existing)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		obj, err := tryUpdate(existing.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		if obj, err = s.normalize(obj); err != nil {
			return nil, err
		}
		if unchanged(obj, existing) {
			return existing, nil
		}
		if dryRun {
			return obj, nil
		}
		out, err := s.cfg.Storage.Update(ctx, key, obj, storage.UpdateOptions{ExpectedRevision: rev})
		if isCode(err, storage.ErrCodeConflict) {
			continue
		}
		if err != nil {
			return nil, interpretUpdate(err, gr, name)
		}
		return out, nil
	}
}

// errorWatch is a watch whose only event is an error.
func errorWatch(status *metav1.Status) watch.Interface {
	ch := make(chan watch.Event, 1)
	ch <- watch.Event{Type: watch.Error, Object: status}
	close(ch)
	return &closedWatch{ch: ch}
}

type closedWatch struct{ ch chan watch.Event }

func (w *closedWatch) Stop()                          {}
func (w *closedWatch) ResultChan() <-chan watch.Event { return w.ch }

// normalize gives obj what kube-apiserver's storage round trip gives it:
// conversion to the storage version, defaulting, conversion back. obj is
// the caller's to give: the conversions may share its memory, and the
// defaulting may write to it (a copy of the object at each step was two of
// the five copies of a pod a write made).
func (s *Store) normalize(obj runtime.Object) (runtime.Object, error) {
	if s.cfg.Scheme == nil || s.cfg.StorageVersion.Empty() {
		truncateServerTimes(obj)
		return obj, nil
	}
	versioned, err := s.cfg.Scheme.UnsafeConvertToVersion(obj, s.cfg.StorageVersion)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("unable to convert to the storage version %s: %w", s.cfg.StorageVersion, err))
	}
	s.cfg.Scheme.Default(versioned)
	internal, err := s.cfg.Scheme.UnsafeConvertToVersion(versioned, schema.GroupVersion{Group: s.cfg.StorageVersion.Group, Version: runtime.APIVersionInternal})
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("unable to convert from the storage version %s: %w", s.cfg.StorageVersion, err))
	}
	truncateServerTimes(internal)
	return internal, nil
}

// truncateServerTimes gives the times the server sets in an object's
// metadata (its creation and deletion, its managed fields' updates) the
// second precision of their serialized form, as kube-apiserver's storage
// round trip does. Otherwise the stored object holds nanoseconds that no
// client can send back: the first update that changes nothing (kubectl
// patch with the same data) would differ from it and be written, where
// kube-apiserver answers that nothing changed.
func truncateServerTimes(obj runtime.Object) {
	a, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	if t := a.GetCreationTimestamp(); t.Nanosecond() != 0 {
		a.SetCreationTimestamp(t.Rfc3339Copy())
	}
	if t := a.GetDeletionTimestamp(); t != nil && t.Nanosecond() != 0 {
		c := t.Rfc3339Copy()
		a.SetDeletionTimestamp(&c)
	}
	if _, ok := obj.(runtime.Unstructured); ok {
		return // its managed fields are read from, and written to, maps
	}
	entries := a.GetManagedFields()
	for i := range entries {
		if t := entries[i].Time; t != nil && t.Nanosecond() != 0 {
			c := t.Rfc3339Copy()
			entries[i].Time = &c
		}
	}
}

// Count is the number of objects stored, what kube-apiserver reports as
// apiserver_storage_objects.
func (s *Store) Count(ctx context.Context) (int64, error) {
	res, err := s.cfg.Storage.List(ctx, s.prefix, storage.ListOptions{Limit: 1})
	if err != nil {
		return 0, err
	}
	n := int64(len(res.Items))
	if res.RemainingItemCount != nil {
		n += *res.RemainingItemCount
	}
	return n, nil
}

// Stats counts the objects stored and estimates their average size from
// the first sample of them (their size in protobuf in the storage version,
// in JSON for types without one), what kube-apiserver's storage reports to API Priority and
// Fairness for the work estimates of lists.
func (s *Store) Stats(ctx context.Context, sample int64) (apistorage.Stats, error) {
	res, err := s.cfg.Storage.List(ctx, s.prefix, storage.ListOptions{Limit: sample})
	if err != nil {
		return apistorage.Stats{}, err
	}
	stats := apistorage.Stats{ObjectCount: int64(len(res.Items))}
	if res.RemainingItemCount != nil {
		stats.ObjectCount += *res.RemainingItemCount
	}
	var size int64
	for _, obj := range res.Items {
		if s.cfg.Scheme != nil && !s.cfg.StorageVersion.Empty() {
			// As stored: in the storage version.
			if versioned, err := s.cfg.Scheme.UnsafeConvertToVersion(obj.DeepCopyObject(), s.cfg.StorageVersion); err == nil {
				obj = versioned
			}
		}
		if sized, ok := obj.(interface{ Size() int }); ok {
			size += int64(sized.Size())
			continue
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return apistorage.Stats{}, err
		}
		size += int64(len(b))
	}
	if len(res.Items) > 0 {
		stats.EstimatedAverageObjectSizeBytes = size / int64(len(res.Items))
	}
	return stats, nil
}

// DeleteReturnsDeletedObject implements rest.MayReturnFullObjectDeleter:
// whether DELETE answers with the object rather than a Status, which
// kube-apiserver's OpenAPI documents.
func (s *Store) DeleteReturnsDeletedObject() bool { return s.cfg.ReturnDeletedObject }

// GetResetFields implements rest.ResetFieldsStrategy with the strategy's
// reset fields (for most kinds, status: a write of the main resource owns
// no status field), which managed fields leave out as kube-apiserver does.
func (s *Store) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	if r, ok := s.cfg.Strategy.(rest.ResetFieldsStrategy); ok {
		return r.GetResetFields()
	}
	return nil
}
