package cli

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestExplainNoSpace(t *testing.T) {
	boom := errors.New("module build failed: exit status 2")
	// The test's temporary directory is on a disk with room (or the test
	// could not run): the error is left alone.
	dir := t.TempDir()
	if got := explainNoSpace(boom, dir); got != boom {
		t.Errorf("with room: %v, want the error unchanged", got)
	}
	if got := explainNoSpace(boom, dir+"/missing"); got != boom {
		t.Errorf("no such directory: %v, want the error unchanged", got)
	}
	if got := explainNoSpace(nil, dir); got != nil {
		t.Errorf("no error: %v", got)
	}

	// A full file system: a small tmpfs, as root.
	full := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "wgkit-test", full).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", full).Run() })
	got := explainNoSpace(boom, full)
	if !errors.Is(got, boom) || !strings.Contains(got.Error(), "no space left on device") || !strings.Contains(got.Error(), full) {
		t.Errorf("on a full disk: %v, want boom, no space left and the cache named", got)
	}
	if got := explainNoSpace(context.Canceled, full); got != context.Canceled {
		t.Errorf("an interruption: %v, want it unchanged", got)
	}
}
