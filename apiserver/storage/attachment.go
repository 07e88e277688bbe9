package storage

import "sync/atomic"

// Attachment is where a layer above storage keeps what it derives from the
// latest stored version of one key (the registry: the object's encodings
// as a list item), beside the version, so that finding it costs a pointer
// rather than a lookup. A store whose lists share their objects
// (SharesObjects) returns one with each item of a list; the store empties
// it when the key gets a new version. What is kept should say which
// object it was derived from: a list at an older revision, or one read
// just before a write, holds another version than the latest. Safe for
// concurrent use; the zero value is empty.
type Attachment struct{ p atomic.Pointer[attached] }

type attached struct{ v any }

// Load returns what is attached, or nil.
func (a *Attachment) Load() any {
	if x := a.p.Load(); x != nil {
		return x.v
	}
	return nil
}

// Store attaches v, replacing what was.
func (a *Attachment) Store(v any) { a.p.Store(&attached{v}) }

// Clear empties the attachment.
func (a *Attachment) Clear() {
	if a.p.Load() != nil {
		a.p.Store(nil)
	}
}
