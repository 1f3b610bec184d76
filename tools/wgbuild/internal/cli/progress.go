package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// display shows progress on stderr: phase lines, and the live status of a
// long step (make's current object), redrawn in place on a terminal and
// sampled every statusEvery in a log.
type display struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	shown    bool // a status line is on screen
	lastDraw time.Time
	start    time.Time // of the current phase
}

const (
	statusEvery = 30 * time.Second
	drawEvery   = 100 * time.Millisecond
	statusWidth = 110
)

func newDisplay(w io.Writer) *display {
	d := &display{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			d.tty = true
		}
	}
	return d
}

func (d *display) clear() {
	if d.shown {
		fmt.Fprint(d.w, "\r\033[K")
		d.shown = false
	}
}

// Phase prints one progress line.
func (d *display) Phase(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clear()
	fmt.Fprintf(d.w, "wgbuild: "+format+"\n", args...)
	d.start, d.lastDraw = time.Now(), time.Now()
}

// Status shows the live state of the current phase.
func (d *display) Status(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	el := now.Sub(d.start).Truncate(time.Second)
	if d.tty {
		if now.Sub(d.lastDraw) < drawEvery {
			return
		}
		line := fmt.Sprintf("wgbuild: [%s] %s", el, s)
		if len(line) > statusWidth {
			line = line[:statusWidth]
		}
		fmt.Fprint(d.w, "\r\033[K"+line)
		d.shown, d.lastDraw = true, now
		return
	}
	if now.Sub(d.lastDraw) >= statusEvery {
		fmt.Fprintf(d.w, "wgbuild: [%s] %s\n", el, s)
		d.lastDraw = now
	}
}
