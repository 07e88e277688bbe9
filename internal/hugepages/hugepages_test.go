package hugepages

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	testingclock "k8s.io/utils/clock/testing"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMode(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{"always [madvise] never\n", "madvise"},
		{"[always] madvise never\n", "always"},
		{"always madvise [never]\n", "never"},
		{"", ""},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := Mode(writeFile(t, tc.content)); got != tc.want {
				t.Errorf("Mode(%q) = %q, want %q", tc.content, got, tc.want)
			}
		})
	}
	if got := Mode(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("Mode of a missing file = %q, want \"\"", got)
	}
}

const maps = `00400000-00ca1000 r-xp 00000000 fd:01 123 /usr/bin/kubesim
00ca1000-01500000 rw-p 008a1000 fd:01 123 /usr/bin/kubesim
01500000-01600000 rw-p 00000000 00:00 0
c000000000-c004000000 rw-p 00000000 00:00 0
c004000000-c008000000 ---p 00000000 00:00 0
7f0000000000-7f0000400000 rw-p 00000000 00:00 0 [heap]
7f1000000000-7f1000001000 rw-p 00000000 00:00 0
7f2000000000-7f2000600000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00400000 rw-p 00000000 00:00 0 [stack]
`

func TestAnonymousRanges(t *testing.T) {
	got, err := anonymousRanges(writeFile(t, maps))
	if err != nil {
		t.Fatal(err)
	}
	// Not the binary's data, not the reserved (---p) arenas, not the named
	// mappings, not the one-page mapping.
	want := []Range{{Start: 0xc000000000, End: 0xc004000000}, {Start: 0x7f2000000000, End: 0x7f2000600000}}
	if !slices.Equal(got, want) {
		t.Errorf("anonymousRanges = %#v, want %#v", got, want)
	}
}

func TestAdviseOnceMarksNewMappingsOnce(t *testing.T) {
	var calls []Range
	record := func(r Range) error { calls = append(calls, r); return nil }
	advised := map[Range]bool{}

	file := writeFile(t, maps)
	if n, err := adviseOnce(file, advised, record); err != nil || n != 2 {
		t.Fatalf("first round: %d marked, %v; want 2, nil", n, err)
	}
	if n, err := adviseOnce(file, advised, record); err != nil || n != 0 {
		t.Fatalf("second round, nothing new: %d marked, %v; want 0, nil", n, err)
	}
	// The heap grew: the arena mapping is longer now, and the other one is gone.
	grown := strings.Replace(maps, "c000000000-c004000000 rw-p", "c000000000-c008000000 rw-p", 1)
	grown = strings.Replace(grown, "7f2000000000-7f2000600000 rw-p 00000000 00:00 0\n", "", 1)
	if n, err := adviseOnce(writeFile(t, grown), advised, record); err != nil || n != 1 {
		t.Fatalf("after growth: %d marked, %v; want 1, nil", n, err)
	}
	want := []Range{{Start: 0xc000000000, End: 0xc004000000}, {Start: 0x7f2000000000, End: 0x7f2000600000}, {Start: 0xc000000000, End: 0xc008000000}}
	if !slices.Equal(calls, want) {
		t.Errorf("madvise calls = %#v, want %#v", calls, want)
	}
	if len(advised) != 1 {
		t.Errorf("%d mappings remembered, want 1 (the gone one forgotten)", len(advised))
	}
}

// TestAdviseMarksTheGoHeap checks with the kernel: after one round, the
// mapping that holds a fresh 64 MiB heap object carries the hugepage flag.
func TestAdviseMarksTheGoHeap(t *testing.T) {
	if Mode(SystemModeFile) == "" {
		t.Skip("this kernel has no transparent huge pages")
	}
	buf := make([]byte, 64<<20)
	addr := uintptr(unsafe.Pointer(&buf[0]))
	if _, err := adviseOnce("/proc/self/maps", map[Range]bool{}, madvise); err != nil {
		t.Fatal(err)
	}
	if flags := vmFlags(t, addr); !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("the heap mapping holding %#x has VmFlags %q, want hg (MADV_HUGEPAGE)", addr, flags)
	}
	buf[0] = 1
}

// vmFlags returns the VmFlags line of the mapping holding addr.
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	in := false
	for s.Scan() {
		line := s.Text()
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			lo, hi, _ := strings.Cut(fields[0], "-")
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}

func TestAdviseActsOnlyInMadviseMode(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		wantError bool // it read the (missing) mappings file
	}{
		{"always [madvise] never", true},
		{"[always] madvise never", false},
		{"always madvise [never]", false},
		{"", false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := Advise(ctx, Options{ModeFile: writeFile(t, tc.mode), MapsFile: filepath.Join(t.TempDir(), "missing")})
			if (err != nil) != tc.wantError {
				t.Errorf("Advise with THP %q: error %v, want an error: %v", tc.mode, err, tc.wantError)
			}
		})
	}
}

// TestAdviseReadsMappingsOnlyWhenMappedMemoryChanges drives Advise's loop
// on a fake clock: a round whose mapped memory is what it was does not read
// the mappings, so a heap that grew then is seen in the next round whose
// mapped memory changed.
func TestAdviseReadsMappingsOnlyWhenMappedMemoryChanges(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	file := writeFile(t, maps)
	// A round starts by asking for the mapped memory: the loop waits there,
	// the round before it finished, until the test answers.
	asked, mapped := make(chan struct{}), make(chan uint64)
	var calls []Range
	opts := Options{
		Interval: time.Second, Clock: clk, ModeFile: writeFile(t, "always [madvise] never"), MapsFile: file,
		Mapped: func() uint64 { asked <- struct{}{}; return <-mapped },
		advise: func(r Range) error { calls = append(calls, r); return nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Advise(ctx, opts) }()
	next := func() {
		t.Helper()
		select {
		case <-asked:
		case <-time.After(time.Minute):
			t.Fatal("Advise did not start a round")
		}
	}

	next()
	mapped <- 100 // the first round reads the mappings whatever
	clk.Step(time.Second)
	next()
	if want := []Range{{Start: 0xc000000000, End: 0xc004000000}, {Start: 0x7f2000000000, End: 0x7f2000600000}}; !slices.Equal(calls, want) {
		t.Fatalf("after the first round, madvise calls = %#v, want %#v", calls, want)
	}
	grown := strings.Replace(maps, "c000000000-c004000000 rw-p", "c000000000-c008000000 rw-p", 1)
	if err := os.WriteFile(file, []byte(grown), 0o644); err != nil {
		t.Fatal(err)
	}
	mapped <- 100 // unchanged: not read
	clk.Step(time.Second)
	next()
	if len(calls) != 2 {
		t.Fatalf("after a round whose mapped memory did not change, madvise calls = %#v, want the first round's two", calls)
	}
	mapped <- 200 // changed: read
	clk.Step(time.Second)
	next()
	if want := (Range{Start: 0xc000000000, End: 0xc008000000}); len(calls) != 3 || calls[2] != want {
		t.Fatalf("after the round whose mapped memory changed, madvise calls = %#v, want the grown arena %#v third", calls, want)
	}
	cancel()
	mapped <- 200
	if err := <-done; err != nil {
		t.Fatalf("Advise: %v", err)
	}
}

func TestRuntimeMapped(t *testing.T) {
	before := runtimeMapped()
	if before == 0 {
		t.Fatal("runtimeMapped = 0, want the Go runtime's mapped memory")
	}
	// At least the live buffer: a comparison with before would not hold
	// when the test runs again (-count) in a heap that has the room.
	buf := make([]byte, 256<<20)
	if after := runtimeMapped(); after < uint64(len(buf)) {
		t.Errorf("runtimeMapped with a live 256 MiB buffer = %d, want at least %d", after, len(buf))
	}
	buf[0] = 1
}
