package registry

import (
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apistorage "k8s.io/apiserver/pkg/storage"
	storeerr "k8s.io/apiserver/pkg/storage/errors"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// toAPIStorageError maps a kubesim storage error onto k8s.io/apiserver's
// storage error, so that upstream's interpreters produce exactly the API
// errors kube-apiserver produces.
func toAPIStorageError(err error) error {
	var se *storage.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case storage.ErrCodeNotFound:
		return apistorage.NewKeyNotFoundError(se.Key, 0)
	case storage.ErrCodeKeyExists:
		return apistorage.NewKeyExistsError(se.Key, 0)
	case storage.ErrCodeConflict:
		return apistorage.NewResourceVersionConflictsError(se.Key, se.Revision)
	case storage.ErrCodeTooLargeRevision:
		return apistorage.NewTooLargeResourceVersionError(uint64(se.Requested), uint64(se.Revision), 1)
	case storage.ErrCodeInvalidArgument:
		return apierrors.NewBadRequest(se.Error())
	}
	return err
}

// expired is kube-apiserver's 410 for a compacted revision.
func expired(err error) error {
	var se *storage.Error
	errors.As(err, &se)
	return apierrors.NewResourceExpired("too old resource version: " + se.Message)
}

func isCode(err error, code storage.ErrorCode) bool {
	var se *storage.Error
	return errors.As(err, &se) && se.Code == code
}

func interpretGet(err error, gr schema.GroupResource, name string) error {
	return storeerr.InterpretGetError(toAPIStorageError(err), gr, name)
}

func interpretCreate(err error, gr schema.GroupResource, name string) error {
	return storeerr.InterpretCreateError(toAPIStorageError(err), gr, name)
}

func interpretUpdate(err error, gr schema.GroupResource, name string) error {
	return storeerr.InterpretUpdateError(toAPIStorageError(err), gr, name)
}

func interpretDelete(err error, gr schema.GroupResource, name string) error {
	return storeerr.InterpretDeleteError(toAPIStorageError(err), gr, name)
}

func interpretList(err error, gr schema.GroupResource) error {
	if isCode(err, storage.ErrCodeExpired) {
		return expired(err)
	}
	return storeerr.InterpretListError(toAPIStorageError(err), gr)
}

// watchErrorStatus turns the error that ended a storage watch into the
// Status kube-apiserver sends in a watch ERROR event.
func watchErrorStatus(err *storage.Error) *metav1.Status {
	if err.Code == storage.ErrCodeExpired {
		s := expired(err).(apierrors.APIStatus).Status()
		return &s
	}
	s := apierrors.NewInternalError(err).Status()
	return &s
}

// kube-apiserver's words for lists past compaction (storage/etcd3).
const (
	listExpired          = "The resourceVersion for the provided list is too old."
	inconsistentContinue = "The provided continue parameter is too old " +
		"to display a consistent list result. You can start a new list without " +
		"the continue parameter, or use the continue token in this response to " +
		"retrieve the remainder of the results. Continuing with the provided " +
		"token results in an inconsistent list - objects that were created, " +
		"modified, or deleted between the time the first chunk was returned " +
		"and now may show up in the list."
)

// continueExpired is the 410 of a paginated list whose snapshot was
// compacted: it carries a token that continues at the latest revision.
func continueExpired(startKey, prefix string) error {
	if startKey == "" {
		startKey = prefix
	}
	token, err := apistorage.EncodeContinue(startKey, prefix, -1)
	if err != nil {
		return apierrors.NewResourceExpired(listExpired)
	}
	e := apierrors.NewResourceExpired(inconsistentContinue)
	e.ErrStatus.ListMeta.Continue = token
	return e
}
