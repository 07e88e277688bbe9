package storage

import (
	"errors"
	"fmt"
)

// ErrorCode classifies storage errors.
type ErrorCode int

const (
	// ErrCodeNotFound: no object under the key.
	ErrCodeNotFound ErrorCode = iota + 1
	// ErrCodeKeyExists: an object already exists under the key.
	ErrCodeKeyExists
	// ErrCodeConflict: the object is not at the expected revision.
	ErrCodeConflict
	// ErrCodeExpired: the requested revision has been compacted.
	ErrCodeExpired
	// ErrCodeTooLargeRevision: the requested revision is ahead of the
	// backend and it did not catch up in time.
	ErrCodeTooLargeRevision
	// ErrCodeInvalidArgument: the request itself is malformed.
	ErrCodeInvalidArgument
)

// Sentinels to compare against with errors.Is.
var (
	ErrNotFound         = &Error{Code: ErrCodeNotFound}
	ErrKeyExists        = &Error{Code: ErrCodeKeyExists}
	ErrConflict         = &Error{Code: ErrCodeConflict}
	ErrExpired          = &Error{Code: ErrCodeExpired}
	ErrTooLargeRevision = &Error{Code: ErrCodeTooLargeRevision}
	ErrInvalidArgument  = &Error{Code: ErrCodeInvalidArgument}
)

// Error is the error every backend returns for the conditions above.
type Error struct {
	Code ErrorCode
	// Key is the key concerned, if any.
	Key string
	// Revision is the revision concerned, if any: the compacted revision for
	// ErrExpired, the current one for ErrTooLargeRevision.
	Revision int64
	// Requested is the revision that was asked for, if any.
	Requested int64
	// Message adds detail.
	Message string
}

func (e *Error) Error() string {
	var what string
	switch e.Code {
	case ErrCodeNotFound:
		what = "key not found"
	case ErrCodeKeyExists:
		what = "key exists"
	case ErrCodeConflict:
		what = "revision conflict"
	case ErrCodeExpired:
		what = "revision compacted"
	case ErrCodeTooLargeRevision:
		what = "revision too large"
	case ErrCodeInvalidArgument:
		what = "invalid argument"
	default:
		what = "storage error"
	}
	s := what
	if e.Key != "" {
		s = fmt.Sprintf("%s: %s", s, e.Key)
	}
	if e.Revision != 0 {
		s = fmt.Sprintf("%s (revision %d)", s, e.Revision)
	}
	if e.Message != "" {
		s = fmt.Sprintf("%s: %s", s, e.Message)
	}
	return s
}

// Is makes errors.Is match on the code alone.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code
}

// NewError returns an *Error with code, key, revision and message.
func NewError(code ErrorCode, key string, revision int64, format string, args ...any) *Error {
	return &Error{Code: code, Key: key, Revision: revision, Message: fmt.Sprintf(format, args...)}
}
