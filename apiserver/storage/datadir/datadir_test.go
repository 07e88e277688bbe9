package datadir

import (
	"context"
	"testing"
	"time"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/storagetest"
)

func open(t testing.TB, dir string, cfg Config) *Store {
	t.Helper()
	cfg.Dir = dir
	cfg.Codec = storagetest.Codec(t)
	if cfg.FutureRevisionWait == 0 {
		cfg.FutureRevisionWait = 50 * time.Millisecond
	}
	if cfg.CompactionInterval == 0 {
		cfg.CompactionInterval = -1
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	storagetest.RunContractTests(t, func(t *testing.T) storage.Interface {
		s := open(t, t.TempDir(), Config{})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestContractSnapshots runs the contract with a snapshot after every few
// writes.
func TestContractSnapshots(t *testing.T) {
	storagetest.RunContractTests(t, func(t *testing.T) storage.Interface {
		s := open(t, t.TempDir(), Config{SnapshotBytes: 512})
		t.Cleanup(func() { s.Close() })
		return s
	})
}
