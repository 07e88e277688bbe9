package anon

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// HugePageSize is the size of a transparent huge page on x86-64 and arm64
// (4 KiB base pages): a mapping smaller than it cannot hold one.
const HugePageSize = 2 << 20

// MapsFile lists the process's mappings.
const MapsFile = "/proc/self/maps"

// Range is a mapping's address range, [Start, End).
type Range struct{ Start, End uintptr }

// Ranges returns the private read-write mappings of no file in mapsFile
// (/proc/PID/maps) that can hold a huge page: the Go heap's arenas,
// goroutine stacks' spans and the runtime's own metadata.
func Ranges(mapsFile string) ([]Range, error) {
	f, err := os.Open(mapsFile)
	if err != nil {
		return nil, fmt.Errorf("unable to read the process's mappings: %w", err)
	}
	defer f.Close()
	var out []Range
	s := bufio.NewScanner(f)
	for s.Scan() {
		// start-end perms offset dev inode [path]
		fields := bytes.Fields(s.Bytes())
		if len(fields) < 5 || string(fields[1]) != "rw-p" || string(fields[4]) != "0" {
			continue
		}
		if len(fields) > 5 {
			continue // a named mapping: [stack], [heap] (C malloc), [vvar], a file
		}
		start, end, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		lo, err1 := strconv.ParseUint(string(start), 16, 64)
		hi, err2 := strconv.ParseUint(string(end), 16, 64)
		if err1 != nil || err2 != nil || hi-lo < HugePageSize {
			continue
		}
		out = append(out, Range{Start: uintptr(lo), End: uintptr(hi)})
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("unable to read the process's mappings: %w", err)
	}
	return out, nil
}
