package datadir

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"k8s.io/apimachinery/pkg/watch"
)

// formatVersion is the version of the data dir's layout and file formats
// this code writes and reads.
const formatVersion = 1

const (
	formatFile  = "FORMAT"
	formatMagic = "kubesim-data-dir"
	walDir      = "wal"
	snapDir     = "snap"
	walMagic    = "KSWAL\x00\x00\x01"
	snapMagic   = "KSSNAP\x00\x01"
	// snapObject and snapEnd start a snapshot's object and end records.
	snapObject = 'O'
	snapEnd    = 'E'
	// frameHeader is a frame's length and checksum, both uint32 LE.
	frameHeader = 8
	// maxFrame bounds a frame's length: a length beyond it is corruption,
	// not an allocation to try.
	maxFrame = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// changeTypes are the codes of watch event types in log records.
var changeTypes = map[watch.EventType]byte{watch.Added: 1, watch.Modified: 2, watch.Deleted: 3}

func changeType(b byte) (watch.EventType, bool) {
	for t, c := range changeTypes {
		if c == b {
			return t, true
		}
	}
	return "", false
}

// appendFrame appends a frame of payload to buf.
func appendFrame(buf, payload []byte) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(payload)))
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(payload, crcTable))
	return append(buf, payload...)
}

// record is one log record: a change at a revision.
type record struct {
	rev  int64
	typ  watch.EventType
	key  string
	data []byte
}

func (r record) appendPayload(buf []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(r.rev))
	buf = append(buf, changeTypes[r.typ])
	buf = binary.AppendUvarint(buf, uint64(len(r.key)))
	buf = append(buf, r.key...)
	return append(buf, r.data...)
}

func parseRecord(p []byte) (record, error) {
	var r record
	rev, n := binary.Uvarint(p)
	if n <= 0 || rev == 0 {
		return r, errors.New("bad revision")
	}
	p = p[n:]
	if len(p) == 0 {
		return r, errors.New("no change type")
	}
	typ, ok := changeType(p[0])
	if !ok {
		return r, fmt.Errorf("unknown change type %d", p[0])
	}
	p = p[1:]
	kl, n := binary.Uvarint(p)
	if n <= 0 || uint64(len(p)-n) < kl {
		return r, errors.New("bad key length")
	}
	r.rev, r.typ, r.key = int64(rev), typ, string(p[n:n+int(kl)])
	r.data = p[n+int(kl):]
	if typ != watch.Deleted && len(r.data) == 0 {
		return r, errors.New("no object")
	}
	return r, nil
}

// frameError is a frame that does not read back. truncated says the file
// ends inside it: the tail of an interrupted write.
type frameError struct {
	offset    int64
	truncated bool
	err       error
}

func (e *frameError) Error() string {
	if e.truncated {
		return fmt.Sprintf("record at offset %d cut short: %v", e.offset, e.err)
	}
	return fmt.Sprintf("record at offset %d: %v", e.offset, e.err)
}

// frameReader reads frames from a file.
type frameReader struct {
	r      *bufio.Reader
	offset int64 // of the next frame
	buf    []byte
}

// next returns the next frame's payload, io.EOF at a clean end, or a
// *frameError.
func (fr *frameReader) next() ([]byte, error) {
	var hdr [frameHeader]byte
	n, err := io.ReadFull(fr.r, hdr[:])
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, &frameError{offset: fr.offset, truncated: true, err: fmt.Errorf("%d of %d header bytes", n, frameHeader)}
	}
	length := binary.LittleEndian.Uint32(hdr[:4])
	sum := binary.LittleEndian.Uint32(hdr[4:])
	if length == 0 && sum == 0 {
		// Zeros where a frame should be: the rest of a preallocated or
		// torn block. It ends the log only if nothing but zeros follows.
		rest, _ := io.ReadAll(fr.r)
		for _, b := range rest {
			if b != 0 {
				return nil, &frameError{offset: fr.offset, err: errors.New("a zero frame followed by data")}
			}
		}
		return nil, &frameError{offset: fr.offset, truncated: true, err: errors.New("zeros")}
	}
	if length > maxFrame {
		return nil, &frameError{offset: fr.offset, err: fmt.Errorf("length %d is too large", length)}
	}
	if cap(fr.buf) < int(length) {
		fr.buf = make([]byte, length)
	}
	p := fr.buf[:length]
	if n, err := io.ReadFull(fr.r, p); err != nil {
		return nil, &frameError{offset: fr.offset, truncated: true, err: fmt.Errorf("%d of %d bytes", n, length)}
	}
	if crc32.Checksum(p, crcTable) != sum {
		return nil, &frameError{offset: fr.offset, err: errors.New("checksum mismatch")}
	}
	fr.offset += frameHeader + int64(length)
	return p, nil
}
