package startgc

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func settings() (int, int64) {
	percent := debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1)
}

// withSettings sets the collector's settings for the test, and puts the
// process's back after it.
func withSettings(t *testing.T, percent int, limit int64) {
	oldPercent, oldLimit := settings()
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	debug.SetGCPercent(percent)
	debug.SetMemoryLimit(limit)
}

func TestPause(t *testing.T) {
	withSettings(t, 150, 1<<40)

	t.Run("resumed by the caller", func(t *testing.T) {
		resume := Pause(DefaultLimit)
		if p, l := settings(); p != -1 || l != DefaultLimit {
			t.Fatalf("paused: GOGC %d, limit %d; want off, %d", p, l, DefaultLimit)
		}
		resume()
		resume()
		if p, l := settings(); p != 150 || l != 1<<40 {
			t.Fatalf("resumed: GOGC %d, limit %d; want 150, %d", p, l, int64(1<<40))
		}
	})
	t.Run("resumed by the first collection", func(t *testing.T) {
		resume := Pause(DefaultLimit)
		defer resume()
		// What reaching the limit does: collections. The first may not
		// free the sentinel (allocated during a cycle under way, it lives
		// through it; under -race on a loaded machine the test once waited
		// the whole minute after one runtime.GC), so collect until resumed.
		deadline := time.Now().Add(time.Minute)
		for {
			runtime.GC()
			if p, l := settings(); p == 150 && l == 1<<40 {
				break
			}
			if time.Now().After(deadline) {
				p, l := settings()
				t.Fatalf("after collections: GOGC %d, limit %d; want 150, %d", p, l, int64(1<<40))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("a lower limit of the process's is kept", func(t *testing.T) {
		debug.SetMemoryLimit(64 << 20)
		defer debug.SetMemoryLimit(1 << 40)
		resume := Pause(DefaultLimit)
		if _, l := settings(); l != 64<<20 {
			t.Errorf("paused: limit %d, want %d", l, 64<<20)
		}
		resume()
	})
	t.Run("GOGC=off", func(t *testing.T) {
		debug.SetGCPercent(-1)
		defer debug.SetGCPercent(150)
		resume := Pause(DefaultLimit)
		if p, l := settings(); p != -1 || l != 1<<40 {
			t.Errorf("paused: GOGC %d, limit %d; want off, unchanged", p, l)
		}
		resume()
		if p, _ := settings(); p != -1 {
			t.Errorf("resumed: GOGC %d, want off", p)
		}
	})
}

func TestHold(t *testing.T) {
	withSettings(t, 150, 1<<40)

	Hold(DefaultLimit)
	Hold(64 << 20) // held already: nothing changes
	if p, l := settings(); p != -1 || l != DefaultLimit {
		t.Fatalf("held: GOGC %d, limit %d; want off, %d", p, l, DefaultLimit)
	}
	Release()
	if p, l := settings(); p != 150 || l != 1<<40 {
		t.Fatalf("released: GOGC %d, limit %d; want 150, %d", p, l, int64(1<<40))
	}
	Release() // nothing held: nothing changes
	debug.SetGCPercent(120)
	Release()
	if p, _ := settings(); p != 120 {
		t.Fatalf("a second Release: GOGC %d, want 120", p)
	}
}
