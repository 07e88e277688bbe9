package experiment

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress shows pods placed, pods/s and the time left: a bar that
// rewrites itself on a terminal, a line every interval otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	interval time.Duration
	name     string
	total    int

	start      time.Time
	lastLine   time.Time
	lastPlaced int
	lastT      time.Time
	rate       float64
	wrote      bool
}

func newProgress(w io.Writer, terminal bool, interval time.Duration, name string, total int) *progress {
	now := time.Now()
	return &progress{w: w, terminal: terminal, interval: interval, name: name, total: total, start: now, lastLine: now, lastT: now}
}

func (p *progress) update(now time.Time, placed int) {
	if dt := now.Sub(p.lastT).Seconds(); dt > 0 {
		inst := float64(placed-p.lastPlaced) / dt
		// A moving average over a few seconds steadies the ETA.
		p.rate = 0.5*p.rate + 0.5*inst
	}
	p.lastPlaced, p.lastT = placed, now
	eta := "?"
	if p.rate > 0 && p.total > placed {
		eta = (time.Duration(float64(p.total-placed)/p.rate) * time.Second).Round(time.Second).String()
	} else if p.total > 0 && placed >= p.total {
		eta = "0s"
	}
	elapsed := now.Sub(p.start).Round(time.Second)
	if p.terminal {
		const width = 30
		filled := 0
		if p.total > 0 {
			filled = min(width, width*placed/p.total)
		}
		bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
		fmt.Fprintf(p.w, "\r\x1b[K%s [%s] %d/%d pods placed  %.0f pods/s  ETA %s  (%s)", p.name, bar, placed, p.total, p.rate, eta, elapsed)
		p.wrote = true
		return
	}
	if now.Sub(p.lastLine) >= p.interval {
		p.lastLine = now
		fmt.Fprintf(p.w, "%s: %d/%d pods placed, %.0f pods/s, ETA %s, %s elapsed\n", p.name, placed, p.total, p.rate, eta, elapsed)
	}
}

func (p *progress) done() {
	if p.terminal && p.wrote {
		fmt.Fprintln(p.w)
	}
}
