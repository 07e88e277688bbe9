package datadir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	api "k8s.io/kubernetes/pkg/apis/core"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/storagetest"
)

func key(name string) string { return "/registry/core/configmaps/ns/" + name }

func configMap(name, value string) *api.ConfigMap {
	return &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Data: map[string]string{"v": value}}
}

// crash abandons the store as kill -9 would: nothing queued is written,
// the files are closed.
func (s *Store) crash() {
	close(s.closing)
	s.mu.Lock()
	s.pending = nil
	s.mu.Unlock()
	<-s.done
	s.seg.Close()
	s.lock.Close()
}

// workload writes creates, updates and deletes, and returns what should be
// there: value by name, and the last revision.
func workload(t *testing.T, s *Store, n int, want map[string]string) (map[string]string, int64) {
	t.Helper()
	ctx := context.Background()
	if want == nil {
		want = map[string]string{}
	}
	var rev int64
	for i := range n {
		name := fmt.Sprintf("c%d", i%7)
		var obj runtime.Object
		var err error
		if _, ok := want[name]; !ok {
			obj, err = s.Create(ctx, key(name), configMap(name, fmt.Sprint(i)))
			want[name] = fmt.Sprint(i)
		} else if i%5 == 0 {
			obj, err = s.Delete(ctx, key(name), storage.DeleteOptions{})
			delete(want, name)
		} else {
			obj, err = s.Update(ctx, key(name), configMap(name, fmt.Sprint(i)), storage.UpdateOptions{})
			want[name] = fmt.Sprint(i)
		}
		if err != nil {
			t.Fatal(err)
		}
		fmt.Sscan(obj.(*api.ConfigMap).ResourceVersion, &rev)
	}
	return want, rev
}

func check(t *testing.T, s *Store, want map[string]string, rev int64) {
	t.Helper()
	ctx := context.Background()
	if got, _ := s.CurrentRevision(ctx); got != rev {
		t.Fatalf("revision after restart: %d, want %d", got, rev)
	}
	res, err := s.List(ctx, "/registry/core/configmaps/", storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range res.Items {
		cm := o.(*api.ConfigMap)
		got[cm.Name] = cm.Data["v"]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("objects after restart:\n got %v\nwant %v", got, want)
	}
}

func TestRestart(t *testing.T) {
	// Objects kept encoded (as Events are) once one more revision follows
	// their change: recovery replays updates and deletions of them.
	encoded := Config{FreezeAfter: 1, EncodedPrefixes: []string{"/registry/core/configmaps/"}}
	for _, tc := range []struct {
		name     string
		snapshot int64
		crash    bool
		cfg      Config
	}{
		{"close", 0, false, Config{}},
		{"crash", 0, true, Config{}},
		{"crash with snapshots", 300, true, Config{}},
		{"close with snapshots", 300, false, Config{}},
		{"crash, objects encoded", 0, true, encoded},
		{"crash with snapshots, objects encoded", 300, true, encoded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := tc.cfg
			cfg.SnapshotBytes = tc.snapshot
			s := open(t, dir, cfg)
			want, rev := workload(t, s, 200, nil)
			if tc.crash {
				s.crash()
			} else if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for round := range 3 {
				s = open(t, dir, cfg)
				check(t, s, want, rev)
				// Revisions go on from the last one.
				var next int64
				want, next = workload(t, s, 30+round, want)
				if first := next - int64(30+round) + 1; first != rev+1 {
					t.Fatalf("first revision after restart %d, want %d", first, rev+1)
				}
				rev = next
				s.crash()
			}
			if tc.snapshot > 0 {
				segs, _, _ := files(filepath.Join(dir, walDir), ".wal")
				snaps, _, _ := files(filepath.Join(dir, snapDir), ".snap")
				if len(snaps) != 1 || len(segs) > 3 {
					t.Errorf("after snapshots: %d snapshots and %d log segments, want 1 and at most 3", len(snaps), len(segs))
				}
			}
		})
	}
}

// TestWatchAcrossRestart: a watch resumed after a restart from an
// acknowledged revision sees the changes after it, once each.
func TestWatchAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Config{})
	ctx := context.Background()
	want, mid := workload(t, s, 20, nil)
	_, last := workload(t, s, 10, want)
	s.crash()
	s = open(t, dir, Config{})
	defer s.Close()
	w, err := s.Watch(ctx, "/registry/core/configmaps/", storage.WatchOptions{Revision: mid})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for want := mid + 1; want <= last; want++ {
		e := <-w.ResultChan()
		var got int64
		fmt.Sscan(e.Object.(*api.ConfigMap).ResourceVersion, &got)
		if got != want {
			t.Fatalf("event %s at revision %d, want %d", e.Type, got, want)
		}
	}
}

func lastSegment(t *testing.T, dir string) string {
	segs, _, err := files(filepath.Join(dir, walDir), ".wal")
	if err != nil || len(segs) == 0 {
		t.Fatalf("no log segment: %v", err)
	}
	return segs[len(segs)-1]
}

func TestBadDataDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage changes the data dir of a store closed after a workload.
		damage func(t *testing.T, dir string)
		// wantErr is in the error of the next Open; empty: it opens, at
		// the last acknowledged revision.
		wantErr string
	}{
		{"truncated final record", func(t *testing.T, dir string) {
			seg := lastSegment(t, dir)
			fi, _ := os.Stat(seg)
			if err := os.Truncate(seg, fi.Size()-3); err != nil {
				t.Fatal(err)
			}
		}, "dropped"},
		{"torn header of a final record", func(t *testing.T, dir string) {
			appendBytes(t, lastSegment(t, dir), []byte{40, 0, 0})
		}, ""},
		{"zeros after the last record", func(t *testing.T, dir string) {
			appendBytes(t, lastSegment(t, dir), make([]byte, 4096))
		}, ""},
		{"checksum mismatch in the log", func(t *testing.T, dir string) {
			seg := lastSegment(t, dir)
			b, _ := os.ReadFile(seg)
			b[len(b)/2] ^= 0xff
			os.WriteFile(seg, b, 0o600)
		}, "does not read back"},
		{"newer format", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, formatFile), []byte("kubesim-data-dir 2\n"), 0o600)
		}, "written by a newer kubesim (format 2"},
		{"not a data dir", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, formatFile), []byte("something else\n"), 0o600)
		}, "is not a kubesim data dir"},
		{"log without format file", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, formatFile))
		}, "but no"},
		{"missing revisions", func(t *testing.T, dir string) {
			// A segment that starts after a gap.
			seg := filepath.Join(dir, walDir, fileName(1000, ".wal"))
			buf := appendFrame([]byte(walMagic), record{rev: 1000, typ: watch.Added, key: key("zz"), data: []byte("x")}.appendPayload(nil))
			os.WriteFile(seg, buf, 0o600)
		}, "revisions are missing"},
		{"a foreign file in the log", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, walDir, "notes.wal"), []byte("hello"), 0o600)
		}, "unexpected file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Config{})
			want, rev := workload(t, s, 50, nil)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.name == "truncated final record" {
				// The last record is cut: the store comes back one
				// revision earlier, as if that write never happened
				// (it was never acknowledged, in a crash).
				s := open(t, dir, Config{})
				s.crash()
				tc.damage(t, dir)
				s = open(t, dir, Config{})
				defer s.Close()
				if got, _ := s.CurrentRevision(context.Background()); got != rev-1 {
					t.Fatalf("revision %d, want %d", got, rev-1)
				}
				return
			}
			tc.damage(t, dir)
			cfg := Config{Dir: dir, Codec: storagetest.Codec(t), CompactionInterval: -1}
			s, err := Open(context.Background(), cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				check(t, s, want, rev)
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("Open: no error, want %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Open: %v, want %q", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("the error names no file of %s: %v", dir, err)
			}
		})
	}
}

func appendBytes(t *testing.T, p string, b []byte) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(b)
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Config{})
	defer s.Close()
	_, err := Open(context.Background(), Config{Dir: dir, Codec: storagetest.Codec(t)})
	if err == nil || !strings.Contains(err.Error(), "in use by another kubesim process") {
		t.Fatalf("second Open: %v", err)
	}
}

// TestDiskFull: on a full disk writes fail with an error naming the log
// and what to do; what was acknowledged before is there after a restart.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "kubesim-test", dir).CombinedOutput(); err != nil {
		t.Skipf("unable to mount a tmpfs: %v: %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	s := open(t, dir, Config{})
	ctx := context.Background()
	big := strings.Repeat("x", 16<<10)
	var acked []string
	var werr error
	for i := range 100 {
		name := fmt.Sprintf("c%d", i)
		if _, werr = s.Create(ctx, key(name), configMap(name, big)); werr != nil {
			break
		}
		acked = append(acked, name)
	}
	if werr == nil {
		t.Fatal("no write failed on a 256k file system")
	}
	if !strings.Contains(werr.Error(), "no space left on device") || !strings.Contains(werr.Error(), filepath.Join(dir, walDir)) || !strings.Contains(werr.Error(), "free space") {
		t.Errorf("write error: %v", werr)
	}
	// Later writes fail too; reads go on.
	if _, err := s.Create(ctx, key("small"), configMap("small", "")); err == nil || errors.Is(err, storage.ErrKeyExists) {
		t.Errorf("write after the failure: %v", err)
	}
	if _, err := s.Get(ctx, key(acked[0]), storage.GetOptions{}); err != nil {
		t.Errorf("read after the failure: %v", err)
	}
	s.crash()
	// Space freed (here: a larger file system under the same files).
	if out, err := exec.Command("mount", "-o", "remount,size=8m", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	s = open(t, dir, Config{})
	defer s.Close()
	for _, name := range acked {
		if _, err := s.Get(ctx, key(name), storage.GetOptions{}); err != nil {
			t.Errorf("acknowledged %s lost: %v", name, err)
		}
	}
	if _, err := s.Create(ctx, key("after"), configMap("after", "")); err != nil {
		t.Errorf("write after restart: %v", err)
	}
}
