package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGetRebuildsDamagedEntry(t *testing.T) {
	tests := []struct {
		name   string
		damage func(dir string) error
		warn   string
	}{
		{"truncated", func(dir string) error { return os.Truncate(filepath.Join(dir, "sub", "base.cpio"), 3) }, "sub/base.cpio has 3 bytes, 6 when it was built"},
		{"same size, other bytes", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "sub", "base.cpio"), []byte("CORRUP"), 0o644)
		}, "sub/base.cpio changed since it was built"},
		{"file gone", func(dir string) error { return os.Remove(filepath.Join(dir, "log")) }, "log: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var warnings []string
			c.Warnf = func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }
			builds := 0
			build := func(dir string) error {
				builds++
				if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, "log"), []byte("built"), 0o644); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(dir, "sub", "base.cpio"), []byte("070701"), 0o644)
			}
			dir, _, err := c.Get("initramfs-base", "k", build)
			if err != nil {
				t.Fatal(err)
			}
			if _, hit, err := c.Get("initramfs-base", "k", build); err != nil || !hit || builds != 1 {
				t.Fatalf("an intact entry: hit=%v err=%v builds=%d, want a hit", hit, err, builds)
			}
			if err := tt.damage(dir); err != nil {
				t.Fatal(err)
			}
			dir, hit, err := c.Get("initramfs-base", "k", build)
			if err != nil || hit || builds != 2 {
				t.Fatalf("a damaged entry: hit=%v err=%v builds=%d, want it built again", hit, err, builds)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "sub", "base.cpio")); err != nil || string(b) != "070701" {
				t.Errorf("rebuilt entry holds %q, %v", b, err)
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0], c.Path("initramfs-base", "k")+" is damaged") || !strings.Contains(warnings[0], tt.warn) {
				t.Errorf("warnings = %q, want one naming the entry and %q", warnings, tt.warn)
			}
			if _, hit, err := c.Get("initramfs-base", "k", build); err != nil || !hit {
				t.Errorf("the rebuilt entry: hit=%v err=%v, want a hit", hit, err)
			}
			if ents, _ := os.ReadDir(filepath.Join(c.Dir, "tmp")); len(ents) != 0 {
				t.Errorf("temp dirs left behind: %v", ents)
			}
			ents, err := c.Entries()
			if err != nil || len(ents) != 1 || ents[0].Kind != "initramfs-base" {
				t.Errorf("Entries = %v, %v; want the one entry (seals are not entries)", ents, err)
			}
		})
	}
}

// TestSealSizesOnly: in an entry too large to hash on every hit, a
// truncated file is still found, by its size.
func TestSealSizesOnly(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, sealHashLimit+1)
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := makeSeal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Files) != 1 || s.Files[0].Size != sealHashLimit+1 || s.Files[0].SHA256 != "" {
		t.Errorf("seal = %+v, want the size and no hash", s)
	}
}

func TestRemoveRemovesSeal(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get("module", "k", func(dir string) error { return os.WriteFile(filepath.Join(dir, "x"), nil, 0o644) }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.sealPath("module", "k")); err != nil {
		t.Fatalf("no seal after Get: %v", err)
	}
	if err := c.Remove(Entry{Kind: "module", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.sealPath("module", "k")); !os.IsNotExist(err) {
		t.Errorf("seal left after Remove: %v", err)
	}
}

// TestGetSealsOldEntry: an entry made before seals is sealed at its first
// use, and its damage is found after that.
func TestGetSealsOldEntry(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c.Warnf = func(string, ...any) {}
	dir := c.Path("module", "k")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wireguard.ko"), []byte("ELF..."), 0o644); err != nil {
		t.Fatal(err)
	}
	builds := 0
	build := func(dir string) error {
		builds++
		return os.WriteFile(filepath.Join(dir, "wireguard.ko"), []byte("ELF..."), 0o644)
	}
	if _, hit, err := c.Get("module", "k", build); err != nil || !hit || builds != 0 {
		t.Fatalf("an old entry: hit=%v err=%v builds=%d, want a hit", hit, err, builds)
	}
	if _, err := os.Stat(c.sealPath("module", "k")); err != nil {
		t.Fatalf("not sealed at its first use: %v", err)
	}
	if err := os.Truncate(filepath.Join(dir, "wireguard.ko"), 0); err != nil {
		t.Fatal(err)
	}
	if _, hit, err := c.Get("module", "k", build); err != nil || hit || builds != 1 {
		t.Errorf("the old entry damaged: hit=%v err=%v builds=%d, want it built again", hit, err, builds)
	}
}
