package datadir

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/encoding"
	"github.com/kubesim/kubesim/apiserver/storage/memory"
)

// Config configures a Store.
type Config struct {
	// Dir is the data dir; created if missing. Required.
	Dir string
	// Clock drives compaction. Default: the real clock.
	Clock clock.WithTicker
	// CompactionInterval and FutureRevisionWait are the memory store's
	// (see memory.Config). Defaults: 5m and 3s.
	CompactionInterval time.Duration
	FutureRevisionWait time.Duration
	// SnapshotBytes is how much log is written after a snapshot before
	// the next one is taken (and the log before it removed). Default:
	// 64 MiB.
	SnapshotBytes int64
	// Codec encodes objects. Default: encoding.NewCodec().
	Codec *encoding.Codec
	// FreezeAfter and EncodedPrefixes are the memory store's (see
	// memory.Config).
	FreezeAfter     int64
	EncodedPrefixes []string
}

// Store is a memory store made durable by a data dir.
type Store struct {
	*memory.Store
	cfg   Config
	codec *encoding.Codec
	lock  *os.File

	// mu guards pending; the writer takes it to swap the queue.
	mu      sync.Mutex
	pending []memory.Change
	kick    chan struct{}
	closing chan struct{}
	done    chan struct{}

	// The fields below belong to the writer goroutine (and to Open
	// before it starts).
	seg          *os.File
	segPath      string
	sinceSnap    int64 // log bytes written since the last snapshot
	lastWritten  int64
	failed       bool
	snapshotting chan struct{} // closed when the running snapshot ends; nil if none
	buf          []byte
}

var (
	_ storage.Interface = (*Store)(nil)
	_ memory.Journal    = (*Store)(nil)
)

// Open validates and defaults cfg, locks the data dir, recovers its state
// and starts writing the log. Close releases it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("unable to open the data dir: Dir is required")
	}
	if cfg.SnapshotBytes == 0 {
		cfg.SnapshotBytes = 64 << 20
	}
	if cfg.SnapshotBytes < 0 {
		return nil, fmt.Errorf("unable to open the data dir: SnapshotBytes %d is negative", cfg.SnapshotBytes)
	}
	codec := cfg.Codec
	if codec == nil {
		var err error
		if codec, err = encoding.NewCodec(); err != nil {
			return nil, err
		}
	}
	s := &Store{cfg: cfg, codec: codec, kick: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{})}
	mem, err := memory.New(memory.Config{Clock: cfg.Clock, CompactionInterval: cfg.CompactionInterval, FutureRevisionWait: cfg.FutureRevisionWait, Journal: s, Codec: codec, FreezeAfter: cfg.FreezeAfter, EncodedPrefixes: cfg.EncodedPrefixes})
	if err != nil {
		return nil, err
	}
	s.Store = mem
	if err := s.lockDir(); err != nil {
		return nil, err
	}
	if err := s.recover(ctx); err != nil {
		s.lock.Close()
		if s.seg != nil {
			s.seg.Close()
		}
		return nil, err
	}
	go s.writeLoop(klog.FromContext(ctx))
	return s, nil
}

func (s *Store) path(parts ...string) string {
	return filepath.Join(append([]string{s.cfg.Dir}, parts...)...)
}

// lockDir creates the data dir if need be, checks its format and takes its
// lock.
func (s *Store) lockDir() error {
	for _, d := range []string{s.cfg.Dir, s.path(walDir), s.path(snapDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("unable to create the data dir: %w", err)
		}
	}
	f, err := os.OpenFile(s.path("LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("unable to open the data dir's lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("data dir %s is in use by another kubesim process (%s is locked): stop it, or use another --data-dir", s.cfg.Dir, s.path("LOCK"))
	}
	s.lock = f
	if err := s.checkFormat(); err != nil {
		f.Close()
		return err
	}
	return nil
}

func (s *Store) checkFormat() error {
	p := s.path(formatFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		wals, _ := os.ReadDir(s.path(walDir))
		snaps, _ := os.ReadDir(s.path(snapDir))
		if len(wals)+len(snaps) > 0 {
			return fmt.Errorf("data dir %s has a log or snapshots but no %s: it was not written by kubesim, or is damaged; move it away to start empty", s.cfg.Dir, p)
		}
		return writeFileSync(p, []byte(fmt.Sprintf("%s %d\n", formatMagic, formatVersion)))
	}
	if err != nil {
		return fmt.Errorf("unable to read %s: %w", p, err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 || fields[0] != formatMagic {
		return fmt.Errorf("%s does not name a kubesim data dir format (%q): this is not a kubesim data dir", p, strings.TrimSpace(string(b)))
	}
	v, err := strconv.Atoi(fields[1])
	if err != nil || v < 1 {
		return fmt.Errorf("%s names an unknown format version %q", p, fields[1])
	}
	if v > formatVersion {
		return fmt.Errorf("data dir %s was written by a newer kubesim (format %d; this kubesim reads format %d): run that version, or move the directory away to start empty", s.cfg.Dir, v, formatVersion)
	}
	return nil
}

// writeFileSync writes a file through a temporary one, fsynced and renamed
// into place, and fsyncs its directory.
func writeFileSync(p string, b []byte) error {
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("unable to write %s: %w", p, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("unable to write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("unable to write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("unable to write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("unable to write %s: %w", p, err)
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return fmt.Errorf("unable to sync %s: %w", d, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("unable to sync %s: %w", d, err)
	}
	return nil
}

// files returns the files of dir with suffix, by the revision their names
// start with, ascending.
func files(dir, suffix string) ([]string, []int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("unable to read %s: %w", dir, err)
	}
	type f struct {
		name string
		rev  int64
	}
	var fs []f
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			// An interrupted snapshot: never renamed into place.
			os.Remove(filepath.Join(dir, name))
			continue
		}
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		rev, err := strconv.ParseInt(base, 16, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("unexpected file %s in the data dir: move it away", filepath.Join(dir, name))
		}
		fs = append(fs, f{name, rev})
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].rev < fs[j].rev })
	var names []string
	var revs []int64
	for _, x := range fs {
		names = append(names, filepath.Join(dir, x.name))
		revs = append(revs, x.rev)
	}
	return names, revs, nil
}

func fileName(rev int64, suffix string) string { return fmt.Sprintf("%016x%s", rev, suffix) }

// corrupt is the error of a file that does not read back.
func (s *Store) corrupt(file string, err error) error {
	return fmt.Errorf("data dir file %s does not read back: %v; kubesim will not start from a partial state: restore %s from a backup, or move it away to start empty", file, err, s.cfg.Dir)
}

// recover loads the newest snapshot and replays the log after it.
func (s *Store) recover(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	start := time.Now()
	snaps, snapRevs, err := files(s.path(snapDir), ".snap")
	if err != nil {
		return err
	}
	var snapRev int64
	if len(snaps) > 0 {
		last := snaps[len(snaps)-1]
		objs, rev, err := s.readSnapshot(last)
		if err != nil {
			return s.corrupt(last, err)
		}
		if rev != snapRevs[len(snapRevs)-1] {
			return s.corrupt(last, fmt.Errorf("it holds revision %d, its name says %d", rev, snapRevs[len(snapRevs)-1]))
		}
		if err := s.Store.LoadSnapshot(rev, objs); err != nil {
			return s.corrupt(last, err)
		}
		snapRev = rev
	}
	segs, segRevs, err := files(s.path(walDir), ".wal")
	if err != nil {
		return err
	}
	rev := snapRev
	if rev == 0 {
		rev = 1 // an empty store's revision
	}
	records := 0
	for i, seg := range segs {
		last := i == len(segs)-1
		n, size, err := s.replaySegment(seg, last, &rev, snapRev)
		if err != nil {
			return err
		}
		records += n
		if rev > snapRev {
			s.sinceSnap += size
		}
		if last {
			if s.seg, err = os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
				return fmt.Errorf("unable to open %s: %w", seg, err)
			}
			s.segPath = seg
		}
		_ = segRevs
	}
	s.lastWritten = rev
	if s.seg == nil {
		if err := s.newSegment(rev + 1); err != nil {
			return err
		}
	}
	if len(snaps) > 0 || len(segs) > 0 {
		logger.Info("Recovered the data dir", "dir", s.cfg.Dir, "revision", rev, "snapshotRevision", snapRev, "logRecords", records, "duration", time.Since(start))
	}
	return nil
}

// replaySegment replays the records of one log segment after snapRev; rev
// is the store's revision, advanced. A record cut short at the end of the
// last segment is dropped (the file is truncated before it).
func (s *Store) replaySegment(path string, last bool, rev *int64, snapRev int64) (records int, size int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("unable to open %s: %w", path, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(walMagic))
	if n, err := io.ReadFull(br, magic); err != nil {
		if last {
			// Created, but its header not fully written: rewrite it.
			klog.Background().Info("Rewriting the header of a log segment cut short", "file", path, "bytes", n)
			if err := f.Truncate(0); err != nil {
				return 0, 0, fmt.Errorf("unable to truncate %s: %w", path, err)
			}
			if _, err := f.WriteAt([]byte(walMagic), 0); err != nil {
				return 0, 0, fmt.Errorf("unable to write %s: %w", path, err)
			}
			return 0, 0, f.Sync()
		}
		return 0, 0, s.corrupt(path, fmt.Errorf("no header (%d bytes)", n))
	}
	if string(magic) != walMagic {
		return 0, 0, s.corrupt(path, fmt.Errorf("it is not a kubesim log segment (header %q)", magic))
	}
	fr := &frameReader{r: br, offset: int64(len(walMagic))}
	for {
		p, err := fr.next()
		if err == io.EOF {
			return records, fr.offset, nil
		}
		var fe *frameError
		if errors.As(err, &fe) {
			if fe.truncated && last {
				klog.Background().Info("Dropping a log record cut short by a crash: it was never acknowledged", "file", path, "offset", fe.offset, "revision", *rev+1, "reason", fe.err.Error())
				if err := f.Truncate(fe.offset); err != nil {
					return 0, 0, fmt.Errorf("unable to truncate %s: %w", path, err)
				}
				return records, fe.offset, f.Sync()
			}
			return 0, 0, s.corrupt(path, err)
		}
		rec, err := parseRecord(p)
		if err != nil {
			return 0, 0, s.corrupt(path, fmt.Errorf("record at offset %d: %v", fr.offset, err))
		}
		if rec.rev <= snapRev {
			continue
		}
		if rec.rev != *rev+1 {
			return 0, 0, s.corrupt(path, fmt.Errorf("record at offset %d is revision %d, after %d: revisions are missing", fr.offset, rec.rev, *rev))
		}
		var obj runtime.Object
		if rec.typ != watch.Deleted {
			if obj, err = s.codec.Decode(rec.key, rec.data); err != nil {
				return 0, 0, s.corrupt(path, fmt.Errorf("revision %d: %v", rec.rev, err))
			}
		}
		if err := s.Store.Replay(rec.rev, rec.typ, rec.key, obj); err != nil {
			return 0, 0, s.corrupt(path, err)
		}
		*rev = rec.rev
		records++
	}
}

// newSegment starts a log segment whose first record is revision first.
func (s *Store) newSegment(first int64) error {
	p := s.path(walDir, fileName(first, ".wal"))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("unable to create the log segment %s: %w", p, err)
	}
	if _, err := f.Write([]byte(walMagic)); err != nil {
		f.Close()
		return fmt.Errorf("unable to write %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("unable to sync %s: %w", p, err)
	}
	if err := syncDir(s.path(walDir)); err != nil {
		f.Close()
		return err
	}
	if s.seg != nil {
		s.seg.Close()
	}
	s.seg, s.segPath = f, p
	return nil
}

// Encode implements memory.Journal.
func (s *Store) Encode(key string, obj runtime.Object) ([]byte, error) {
	return s.codec.Encode(key, obj)
}

// Append implements memory.Journal.
func (s *Store) Append(c memory.Change) {
	s.mu.Lock()
	s.pending = append(s.pending, c)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// writeLoop writes, fsyncs and publishes the queued changes until Close.
func (s *Store) writeLoop(logger klog.Logger) {
	defer close(s.done)
	var batch []memory.Change
	for {
		closing := false
		select {
		case <-s.kick:
		case <-s.closing:
			closing = true
		}
		s.mu.Lock()
		batch, s.pending = s.pending, batch[:0]
		s.mu.Unlock()
		if len(batch) > 0 && !s.failed {
			s.write(logger, batch)
		}
		clear(batch)
		if closing {
			if s.snapshotting != nil {
				<-s.snapshotting
			}
			return
		}
	}
}

// write persists a batch of changes and publishes them.
func (s *Store) write(logger klog.Logger, batch []memory.Change) {
	buf := s.buf[:0]
	var payload []byte
	for _, c := range batch {
		payload = record{rev: c.Revision, typ: c.Type, key: c.Key, data: c.Data}.appendPayload(payload[:0])
		buf = appendFrame(buf, payload)
	}
	if cap(buf) <= 4<<20 {
		s.buf = buf
	}
	if _, err := s.seg.Write(buf); err != nil {
		s.fail(fmt.Errorf("unable to write the data dir's log %s: %w", s.segPath, err))
		return
	}
	if err := syscall.Fdatasync(int(s.seg.Fd())); err != nil {
		s.fail(fmt.Errorf("unable to sync the data dir's log %s: %w", s.segPath, err))
		return
	}
	last := batch[len(batch)-1].Revision
	s.lastWritten = last
	s.Store.Durable(last)
	s.sinceSnap += int64(len(buf))
	if s.sinceSnap >= s.cfg.SnapshotBytes && s.snapshotting == nil {
		// Later writes go to a new segment: the snapshot at last makes
		// every older segment redundant.
		if err := s.newSegment(last + 1); err != nil {
			s.fail(err)
			return
		}
		s.sinceSnap = 0
		s.snapshotting = make(chan struct{})
		go s.snapshot(logger, last, s.snapshotting)
	} else if s.snapshotting != nil {
		select {
		case <-s.snapshotting:
			s.snapshotting = nil
		default:
		}
	}
}

func (s *Store) fail(err error) {
	s.failed = true
	klog.Background().Error(err, "The data dir cannot persist writes: every write fails until kubesim is restarted", "dir", s.cfg.Dir, "lastDurableRevision", s.lastWritten)
	s.Store.Fail(fmt.Errorf("%w; writes after revision %d are not persisted: free space or fix the disk, then restart kubesim", err, s.lastWritten))
}

// snapshot writes the live objects at rev and removes the log and
// snapshots before it.
func (s *Store) snapshot(logger klog.Logger, rev int64, done chan struct{}) {
	defer close(done)
	start := time.Now()
	entries, err := s.Store.Entries(rev)
	if err != nil {
		logger.Error(err, "Unable to take a snapshot of the data dir", "revision", rev)
		return
	}
	p := s.path(snapDir, fileName(rev, ".snap"))
	if err := s.writeSnapshot(p, rev, entries); err != nil {
		logger.Error(err, "Unable to take a snapshot of the data dir", "revision", rev)
		return
	}
	// Every segment before the one starting after rev holds only
	// revisions up to rev.
	segs, segRevs, err := files(s.path(walDir), ".wal")
	if err == nil {
		for i, seg := range segs {
			if segRevs[i] <= rev {
				os.Remove(seg)
			}
		}
	}
	snaps, snapRevs, err := files(s.path(snapDir), ".snap")
	if err == nil {
		for i, sn := range snaps {
			if snapRevs[i] < rev {
				os.Remove(sn)
			}
		}
	}
	logger.V(2).Info("Took a snapshot of the data dir", "revision", rev, "objects", len(entries), "duration", time.Since(start))
}

func (s *Store) writeSnapshot(p string, rev int64, entries []memory.Entry) error {
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("unable to create %s: %w", tmp, err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	bw.WriteString(snapMagic)
	var buf, payload []byte
	buf = appendFrame(buf, binary.AppendUvarint(nil, uint64(rev)))
	bw.Write(buf)
	for _, e := range entries {
		a, err := meta.Accessor(e.Object)
		if err != nil {
			return fmt.Errorf("unable to snapshot %s: %w", e.Key, err)
		}
		orev, err := strconv.ParseInt(a.GetResourceVersion(), 10, 64)
		if err != nil {
			return fmt.Errorf("unable to snapshot %s: resourceVersion %q", e.Key, a.GetResourceVersion())
		}
		// A copy: stored objects are shared with readers, and encoding
		// sets and restores an object's TypeMeta.
		data, err := s.codec.Encode(e.Key, e.Object.DeepCopyObject())
		if err != nil {
			return err
		}
		payload = append(payload[:0], snapObject)
		payload = binary.AppendUvarint(payload, uint64(orev))
		payload = binary.AppendUvarint(payload, uint64(len(e.Key)))
		payload = append(payload, e.Key...)
		payload = append(payload, data...)
		buf = appendFrame(buf[:0], payload)
		bw.Write(buf)
	}
	buf = appendFrame(buf[:0], binary.AppendUvarint([]byte{snapEnd}, uint64(len(entries))))
	bw.Write(buf)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("unable to write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("unable to sync %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("unable to rename %s: %w", tmp, err)
	}
	return syncDir(filepath.Dir(p))
}

func (s *Store) readSnapshot(p string) (map[string]runtime.Object, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapMagic {
		return nil, 0, fmt.Errorf("it is not a kubesim snapshot (header %q)", magic)
	}
	fr := &frameReader{r: br, offset: int64(len(snapMagic))}
	p0, err := fr.next()
	if err != nil {
		return nil, 0, err
	}
	rev, n := binary.Uvarint(p0)
	if n <= 0 || rev == 0 {
		return nil, 0, errors.New("bad revision")
	}
	objs := map[string]runtime.Object{}
	for {
		pl, err := fr.next()
		if err == io.EOF {
			return nil, 0, errors.New("it ends without its end record")
		}
		if err != nil {
			return nil, 0, err
		}
		if len(pl) == 0 || (pl[0] != snapObject && pl[0] != snapEnd) {
			return nil, 0, fmt.Errorf("record at offset %d: unknown type", fr.offset)
		}
		if pl[0] == snapEnd {
			count, n := binary.Uvarint(pl[1:])
			if n <= 0 || count != uint64(len(objs)) {
				return nil, 0, fmt.Errorf("its end record counts %d objects, it holds %d", count, len(objs))
			}
			return objs, int64(rev), nil
		}
		pl = pl[1:]
		orev, n := binary.Uvarint(pl)
		if n <= 0 {
			return nil, 0, fmt.Errorf("record at offset %d: bad revision", fr.offset)
		}
		pl = pl[n:]
		kl, n := binary.Uvarint(pl)
		if n <= 0 || uint64(len(pl)-n) < kl {
			return nil, 0, fmt.Errorf("record at offset %d: bad key", fr.offset)
		}
		key := string(pl[n : n+int(kl)])
		obj, err := s.codec.Decode(key, pl[n+int(kl):])
		if err != nil {
			return nil, 0, err
		}
		a, err := meta.Accessor(obj)
		if err != nil {
			return nil, 0, err
		}
		a.SetResourceVersion(strconv.FormatUint(orev, 10))
		objs[key] = obj
	}
}

// Start runs the memory store's compaction until ctx is done.
func (s *Store) Start(ctx context.Context) error {
	return s.Store.Start(ctx)
}

// Close writes what is queued, waits for a running snapshot and releases
// the data dir. Writes after Close are never acknowledged.
func (s *Store) Close() error {
	select {
	case <-s.closing:
		return nil
	default:
	}
	close(s.closing)
	<-s.done
	// A write after the last batch is refused, not left waiting.
	s.Store.Fail(fmt.Errorf("the data dir %s is closed", s.cfg.Dir))
	var err error
	if s.seg != nil {
		err = s.seg.Close()
	}
	s.lock.Close()
	return err
}
