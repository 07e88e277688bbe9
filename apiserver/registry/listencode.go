package registry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kubernetes/pkg/api/legacyscheme"

	"github.com/kubesim/kubesim/apiserver/storage"
)

// A list response is most of its items' conversions and encodings (in a
// list of 10,000 ConfigMaps, three quarters of the server's time). Stored
// objects do not change (a change stores a new object), so each item's
// encoding is made once per version and format and kept beside the stored
// version (storage.Attachment) until the object's next version: a later
// list copies the bytes.
//
// encodedList is a list whose response the API handler's encoder builds
// through runtime.CacheableObject: in JSON and protobuf, from the items'
// kept encodings, byte for byte what the encoder would write (its
// streaming collection encoders' format); in any other encoding, or for a
// version it cannot convert to, it hands the encoder the list itself.

// encodedListsKey marks a list request whose response is encoded as it is
// (not converted to a Table or to partial object metadata).
type encodedListsKey struct{}

// WithEncodedLists returns ctx for a list request whose response the
// handler encodes as it is: the store may answer with an encodedList.
func WithEncodedLists(ctx context.Context) context.Context {
	return context.WithValue(ctx, encodedListsKey{}, true)
}

func encodedLists(ctx context.Context) bool {
	v, _ := ctx.Value(encodedListsKey{}).(bool)
	return v
}

type encodedList struct {
	newList func() kruntime.Object
	// items are the stored objects: shared, never written.
	items []kruntime.Object
	// attachments are the items' keys' (storage.ListResult), where their
	// encodings are kept.
	attachments []*storage.Attachment
	listMeta    metav1.ListMeta

	once sync.Once
	list kruntime.Object
	err  error
}

var _ kruntime.CacheableObject = (*encodedList)(nil)

// GetObject implements runtime.CacheableObject: the internal list.
func (l *encodedList) GetObject() kruntime.Object {
	l.once.Do(func() {
		list := l.newList()
		if l.err = meta.SetList(list, l.items); l.err != nil {
			return
		}
		la, err := meta.ListAccessor(list)
		if l.err = err; err != nil {
			return
		}
		la.SetResourceVersion(l.listMeta.ResourceVersion)
		la.SetContinue(l.listMeta.Continue)
		la.SetRemainingItemCount(l.listMeta.RemainingItemCount)
		l.list = list
	})
	if l.err != nil {
		return &metav1.Status{Status: metav1.StatusFailure, Message: l.err.Error()}
	}
	return l.list
}

// GetObjectKind implements runtime.Object.
func (l *encodedList) GetObjectKind() schema.ObjectKind { return l.GetObject().GetObjectKind() }

// DeepCopyObject implements runtime.Object.
func (l *encodedList) DeepCopyObject() kruntime.Object { return l.GetObject().DeepCopyObject() }

// CacheEncode implements runtime.CacheableObject.
func (l *encodedList) CacheEncode(id kruntime.Identifier, encode func(kruntime.Object, io.Writer) error, w io.Writer) error {
	gv, format, ok := listEncoding(id)
	if !ok {
		return encode(l.GetObject(), w)
	}
	kinds, _, err := legacyscheme.Scheme.ObjectKinds(l.newList())
	if err != nil || !legacyscheme.Scheme.Recognizes(gv.WithKind(kinds[0].Kind)) {
		return encode(l.GetObject(), w)
	}
	items := make([][]byte, len(l.items))
	for i, item := range l.items {
		var attach *storage.Attachment
		if len(l.attachments) == len(l.items) {
			attach = l.attachments[i]
		}
		if items[i], err = itemEncoding(item, attach, gv, format); err != nil {
			return encode(l.GetObject(), w)
		}
	}
	typeMeta := metav1.TypeMeta{Kind: kinds[0].Kind, APIVersion: gv.String()}
	if format == formatProtobuf {
		return writeProtobufList(w, typeMeta, l.listMeta, items)
	}
	return writeJSONList(w, typeMeta, l.listMeta, items)
}

type encodingFormat int

const (
	formatJSON encodingFormat = iota
	formatProtobuf
)

// listEncoding reads a versioning encoder's identifier: the version and
// the format, when it is compact JSON or protobuf to one group version.
func listEncoding(id kruntime.Identifier) (schema.GroupVersion, encodingFormat, bool) {
	var codec struct {
		Name     string `json:"name"`
		EncodeGV string `json:"encodeGV"`
		Encoder  string `json:"encoder"`
	}
	if err := json.Unmarshal([]byte(id), &codec); err != nil || codec.Name != "versioning" {
		return schema.GroupVersion{}, 0, false
	}
	gv, err := schema.ParseGroupVersion(codec.EncodeGV)
	if err != nil || gv.Version == "" || gv.Version == kruntime.APIVersionInternal {
		return schema.GroupVersion{}, 0, false
	}
	if codec.Encoder == "protobuf" {
		return gv, formatProtobuf, true
	}
	var enc map[string]string
	if err := json.Unmarshal([]byte(codec.Encoder), &enc); err != nil {
		return schema.GroupVersion{}, 0, false
	}
	if enc["name"] == "json" && enc["yaml"] == "false" && enc["pretty"] == "false" {
		return gv, formatJSON, true
	}
	return schema.GroupVersion{}, 0, false
}

// itemEncodings are one stored object's encodings as a list item.
type itemEncodings struct {
	// obj is the object they are of: an attachment outlives a version
	// that was not the latest when a list read it.
	obj kruntime.Object
	mu  sync.Mutex
	// kept has one encoding for each version and format lists asked for
	// (a slice: a map of one or two costs several times the memory).
	kept []keptEncoding
}

type keptEncoding struct {
	key itemEncodingKey
	raw []byte
}

type itemEncodingKey struct {
	gv     schema.GroupVersion
	format encodingFormat
}

// itemEncoding returns obj's encoding as an item of a list in gv, kept in
// attach (nil: not kept).
func itemEncoding(obj kruntime.Object, attach *storage.Attachment, gv schema.GroupVersion, format encodingFormat) ([]byte, error) {
	if attach == nil {
		return encodeItem(obj, gv, format)
	}
	enc, _ := attach.Load().(*itemEncodings)
	if enc == nil || enc.obj != obj {
		enc = &itemEncodings{obj: obj}
		attach.Store(enc)
	}
	key := itemEncodingKey{gv, format}
	enc.mu.Lock()
	for _, k := range enc.kept {
		if k.key == key {
			enc.mu.Unlock()
			return k.raw, nil
		}
	}
	enc.mu.Unlock()
	raw, err := encodeItem(obj, gv, format)
	if err != nil {
		return nil, err
	}
	enc.mu.Lock()
	enc.kept = append(enc.kept, keptEncoding{key: key, raw: raw})
	enc.mu.Unlock()
	return raw, nil
}

// encodeItem converts obj to gv and encodes it as a list item (no kind or
// apiVersion: a typed list's items carry none).
func encodeItem(obj kruntime.Object, gv schema.GroupVersion, format encodingFormat) ([]byte, error) {
	out, err := legacyscheme.Scheme.ConvertToVersion(obj, gv)
	if err != nil {
		return nil, err
	}
	if out == obj {
		out = out.DeepCopyObject() // never write a stored object
	}
	out.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	if format == formatProtobuf {
		m, ok := out.(interface{ Marshal() ([]byte, error) })
		if !ok {
			return nil, errNotProtobuf
		}
		return m.Marshal()
	}
	return json.Marshal(out)
}

var errNotProtobuf = errors.New("not a protobuf message")

// listWriteBuffer is how much of a list is written to the response at a
// time (to its compressor, when the client takes gzip): the list is never
// in memory whole.
const listWriteBuffer = 64 << 10

// writeJSONList writes a list as k8s.io/apimachinery's JSON serializer
// streams a typed list (serializer/json/collections.go).
func writeJSONList(w io.Writer, typeMeta metav1.TypeMeta, listMeta metav1.ListMeta, items [][]byte) error {
	// "{" alone first, as the streaming encoder writes it: the API
	// handler's response writer recognises a streamed response by its
	// first write and buffers it to decide on gzip by its size.
	if _, err := w.Write([]byte(`{`)); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, listWriteBuffer)
	if typeMeta.Kind != "" {
		writeJSONPair(bw, "kind", typeMeta.Kind)
		bw.WriteString(",")
	}
	if typeMeta.APIVersion != "" {
		writeJSONPair(bw, "apiVersion", typeMeta.APIVersion)
		bw.WriteString(",")
	}
	writeJSONPair(bw, "metadata", listMeta)
	bw.WriteString(`,"items":[`)
	for i, it := range items {
		if i > 0 {
			bw.WriteString(",")
		}
		bw.Write(it)
	}
	bw.WriteString("]}\n")
	return bw.Flush() // the first write error, if any
}

func writeJSONPair(w *bufio.Writer, key string, value any) {
	k, _ := json.Marshal(key)
	v, _ := json.Marshal(value)
	w.Write(k)
	w.WriteString(":")
	w.Write(v)
}

// protobufPrefix starts every message of k8s.io/apimachinery's protobuf
// serializer.
var protobufPrefix = []byte{0x6b, 0x38, 0x73, 0x00}

// writeProtobufList writes a list as k8s.io/apimachinery's protobuf
// serializer streams a typed list (serializer/protobuf/collections.go):
// the prefix, then a runtime.Unknown whose raw bytes are the list's
// metadata (field 1) and its items (field 2).
func writeProtobufList(w io.Writer, typeMeta metav1.TypeMeta, listMeta metav1.ListMeta, items [][]byte) error {
	lm, err := listMeta.Marshal()
	if err != nil {
		return err
	}
	size := 1 + varintSize(uint64(len(lm))) + len(lm)
	for _, it := range items {
		size += 1 + varintSize(uint64(len(it))) + len(it)
	}
	// The prefix alone first, as the streaming encoder writes it (see
	// writeJSONList).
	if _, err := w.Write(protobufPrefix); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, listWriteBuffer)
	unk := kruntime.Unknown{TypeMeta: kruntime.TypeMeta{APIVersion: typeMeta.APIVersion, Kind: typeMeta.Kind}}
	var header []byte
	if _, err := unk.MarshalToWriter(bw, size, func(w io.Writer) (int, error) {
		n := 0
		for i := -1; i < len(items); i++ {
			tag, v := byte(0x12), lm
			if i < 0 {
				tag = 0xa
			} else {
				v = items[i]
			}
			header = appendVarint(append(header[:0], tag), uint64(len(v)))
			m, err := w.Write(header)
			n += m
			if err != nil {
				return n, err
			}
			m, err = w.Write(v)
			n += m
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}); err != nil {
		return err
	}
	return bw.Flush()
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 1<<7 {
		b = append(b, byte(v&0x7f|0x80))
		v >>= 7
	}
	return append(b, byte(v))
}

func varintSize(v uint64) int {
	n := 1
	for v >= 1<<7 {
		v >>= 7
		n++
	}
	return n
}
