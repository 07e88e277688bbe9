package early

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kubesim/kubesim/internal/hugepages/anon"
)

func TestUp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"up"}, true},
		{[]string{"up", "--port", "0"}, true},
		{[]string{"-v", "4", "up"}, true},
		{[]string{"--v=4", "up"}, true},
		{[]string{"--v", "2", "up", "--kubeconfig", "up"}, true},
		{nil, false},
		{[]string{"version"}, false},
		{[]string{"node", "--name", "up"}, false},
		{[]string{"-v", "up"}, false}, // up is -v's value: cobra refuses it
		{[]string{"experiment", "run", "up"}, false},
		{[]string{"--help"}, false},
	} {
		if got := Up(tc.args); got != tc.want {
			t.Errorf("Up(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestWanted(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"up"}, true},
		{[]string{"up", "--huge-pages"}, true},
		{[]string{"up", "--huge-pages=true"}, true},
		{[]string{"up", "--huge-pages=false"}, false},
		{[]string{"up", "--port", "0", "-huge-pages=0"}, false},
		{[]string{"--v=2", "up", "--huge-pages=F"}, false},
		{[]string{"up", "--huge-pages=maybe"}, true}, // cobra refuses it
		{[]string{"up", "--", "--huge-pages=false"}, true},
		{[]string{"up", "--kubeconfig", "huge-pages=false"}, true}, // a value, not a flag
		{[]string{"version", "--huge-pages=true"}, false},
		{[]string{"node", "up"}, false},
	} {
		if got := Wanted(tc.args); got != tc.want {
			t.Errorf("Wanted(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

// TestMarker: each anonymous mapping that can hold a huge page is marked
// once, a new one on the next round, and the loop ends on stop.
func TestMarker(t *testing.T) {
	maps := filepath.Join(t.TempDir(), "maps")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(maps, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const first = "c000000000-c004000000 rw-p 00000000 00:00 0 \n" +
		"7f2000000000-7f2000001000 rw-p 00000000 00:00 0 \n" + // smaller than a huge page
		"55d000000000-55d000400000 r-xp 00000000 08:01 1234 /usr/bin/kubesim\n" +
		"7ffd00000000-7ffd00400000 rw-p 00000000 00:00 0 [stack]\n"
	write(first)
	var calls []anon.Range
	m := &marker{mapsFile: maps, advised: map[anon.Range]bool{}, advise: func(r anon.Range) error {
		calls = append(calls, r)
		return nil
	}}
	m.mark()
	m.mark()
	if want := []anon.Range{{Start: 0xc000000000, End: 0xc004000000}}; !slices.Equal(calls, want) {
		t.Fatalf("after two rounds marked %#x, want %#x", calls, want)
	}

	write(first + "c004000000-c004800000 rw-p 00000000 00:00 0 \n")
	tick, stop, ended := make(chan time.Time), make(chan struct{}), make(chan struct{})
	go func() { defer close(ended); m.run(stop, tick, nil) }()
	tick <- time.Time{}
	tick <- time.Time{} // the first round is done once the second is taken
	close(stop)
	<-ended
	if want := []anon.Range{{Start: 0xc000000000, End: 0xc004000000}, {Start: 0xc004000000, End: 0xc004800000}}; !slices.Equal(calls, want) {
		t.Errorf("marked %#x, want %#x", calls, want)
	}

	// A deadline ends the loop too.
	done := make(chan time.Time, 1)
	done <- time.Time{}
	m.run(make(chan struct{}), make(chan time.Time), done)

	// The maps file gone: nothing marked, no panic.
	os.Remove(maps)
	m.mark()
	if len(calls) != 2 {
		t.Errorf("marked %d ranges with no maps file, want 2 in all", len(calls))
	}
}

// TestStopTwice: kubesim up calls Stop once ready; more calls are harmless.
func TestStopTwice(t *testing.T) {
	Stop()
	Stop()
	select {
	case <-stop:
	default:
		t.Fatal("stop not closed")
	}
}
