package kbuild

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMakeRunCancelDoesNotHang cancels a make whose recipe leaves a child
// holding make's output open: the run must end promptly, not when the
// child would have.
func TestMakeRunCancelDoesNotHang(t *testing.T) {
	dir := t.TempDir()
	mk := "all:\n\tsleep 300 & sleep 300\n"
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	m := &makeRun{dir: dir, args: []string{"all"}, log: io.Discard, rep: nopReporter{}, what: "test"}
	start := time.Now()
	err := m.run(ctx)
	if err == nil {
		t.Fatal("a cancelled make reported success")
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("cancelled make took %v to return", took)
	}
}

func TestStatusWriterCountsSteps(t *testing.T) {
	var got []string
	rep := recReporter{status: &got}
	w := &statusWriter{log: io.Discard, rep: rep, what: "build"}
	io.WriteString(w, "  CC      kernel/fork.o\nmake[1]: Entering directory\n  CC [M]  drivers/net/veth.o\n  LD [M]  drivers/net/veth.ko")
	w.flush()
	want := []string{"build: 1 steps, CC kernel/fork.o", "build: 2 steps, CC drivers/net/veth.o", "build: 3 steps, LD drivers/net/veth.ko"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("status %d = %q, want %q", i, got[i], want[i])
		}
	}
}

type recReporter struct{ status *[]string }

func (recReporter) Phase(string, ...any) {}
func (r recReporter) Status(s string)    { *r.status = append(*r.status, s) }
