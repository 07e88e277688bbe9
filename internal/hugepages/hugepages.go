package hugepages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/metrics"
	"syscall"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubesim/kubesim/internal/hugepages/anon"
)

// MADV_HUGEPAGE and MADV_COLLAPSE (Linux 6.1); the syscall package names
// neither.
const (
	madvHugePage = 14
	madvCollapse = 25
)

// SystemModeFile holds the system's transparent huge page setting.
const SystemModeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// Options configures Advise.
type Options struct {
	// Interval is how often new mappings are looked for: the Go runtime maps
	// its heap in 64 MiB arenas as it grows, and pages it touches before the
	// mapping is marked are small ones (they are merged right after, with
	// MADV_COLLAPSE where the kernel has it). Default: 100ms.
	Interval time.Duration
	// Clock paces the loop. Default: the real clock.
	Clock clock.WithTicker
	// ModeFile is the system's THP setting. Default: SystemModeFile.
	ModeFile string
	// MapsFile lists the process's mappings. Default: /proc/self/maps.
	MapsFile string
	// Mapped is how much memory the process has mapped: the mappings are
	// read again only when it changed, so a process whose heap has stopped
	// growing pays nothing (reading /proc/self/maps every 100 ms cost about
	// 1% of 2 cores in a 7 GB process). Default: the Go runtime's
	// /memory/classes/total:bytes (a pure Go process maps nothing else
	// read-write).
	Mapped func() uint64

	// advise marks a range (tests replace the madvise calls).
	advise func(Range) error
}

func (o *Options) defaults() {
	if o.Interval <= 0 {
		o.Interval = 100 * time.Millisecond
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.ModeFile == "" {
		o.ModeFile = SystemModeFile
	}
	if o.MapsFile == "" {
		o.MapsFile = anon.MapsFile
	}
	if o.Mapped == nil {
		o.Mapped = runtimeMapped
	}
	if o.advise == nil {
		o.advise = madvise
	}
}

// runtimeMapped is the memory the Go runtime has mapped read-write.
func runtimeMapped() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Mode is the system's transparent huge page setting ("always", "madvise",
// "never"), or "" where the kernel has none.
func Mode(modeFile string) string {
	b, err := os.ReadFile(modeFile)
	if err != nil {
		return ""
	}
	for _, f := range bytes.Fields(b) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			return string(f[1 : len(f)-1])
		}
	}
	return ""
}

// Advise marks the process's anonymous memory for transparent huge pages
// until ctx ends, when the system's setting is "madvise". It blocks; run it
// in its own goroutine. It returns nil at once where there is nothing to do.
func Advise(ctx context.Context, opts Options) error {
	opts.defaults()
	logger := klog.FromContext(ctx)
	if mode := Mode(opts.ModeFile); mode != "madvise" {
		logger.V(2).Info("Transparent huge pages are not left to the process", "mode", mode)
		return nil
	}
	advised := map[Range]bool{}
	t := opts.Clock.NewTicker(opts.Interval)
	defer t.Stop()
	var mapped uint64
	for first := true; ; first = false {
		// Read before the mappings: what is mapped after the read is seen
		// in the next round.
		if m := opts.Mapped(); first || m != mapped {
			mapped = m
			n, err := adviseOnce(opts.MapsFile, advised, opts.advise)
			if err != nil {
				return err
			}
			if n > 0 {
				logger.V(4).Info("Marked mappings for transparent huge pages", "mappings", n, "mappedBytes", m)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// Range is a mapping's address range, [Start, End).
type Range = anon.Range

// adviseOnce marks the anonymous private read-write mappings not marked
// before, and forgets those gone; it returns how many it marked.
func adviseOnce(mapsFile string, advised map[Range]bool, advise func(Range) error) (int, error) {
	ranges, err := anonymousRanges(mapsFile)
	if err != nil {
		return 0, err
	}
	seen := make(map[Range]bool, len(ranges))
	n := 0
	for _, r := range ranges {
		seen[r] = true
		if advised[r] {
			continue
		}
		// A mapping that went away between the read and now gives ENOMEM;
		// the next round sees what replaced it.
		if err := advise(r); err != nil && !errors.Is(err, syscall.ENOMEM) {
			return n, fmt.Errorf("unable to advise huge pages for %#x-%#x: %w", r.Start, r.End, err)
		}
		advised[r] = true
		n++
	}
	for r := range advised {
		if !seen[r] {
			delete(advised, r)
		}
	}
	return n, nil
}

// anonymousRanges returns the mappings that can hold huge pages.
func anonymousRanges(mapsFile string) ([]Range, error) { return anon.Ranges(mapsFile) }

// madvise marks r for huge pages, then merges the small pages already in
// it. The merge is best effort: kernels before 6.1 have no MADV_COLLAPSE
// (khugepaged merges in the background there), and it fails where no huge
// page is free.
func madvise(r Range) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r.Start, r.End-r.Start, madvHugePage); errno != 0 {
		return errno
	}
	syscall.Syscall(syscall.SYS_MADVISE, r.Start, r.End-r.Start, madvCollapse)
	return nil
}
