package cache

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	keyKernel = "aaaa000000000000000000000000000000000000000000000000000000000001"
	keyInTree = "aaaa000000000000000000000000000000000000000000000000000000000002"
	keyTree   = "aaaa000000000000000000000000000000000000000000000000000000000003"
	keyTree2  = "aaaa000000000000000000000000000000000000000000000000000000000004"
	keyWork   = "aaaa000000000000000000000000000000000000000000000000000000000005"
	keyModule = "aaaa000000000000000000000000000000000000000000000000000000000006"
	keyFailed = "aaaa000000000000000000000000000000000000000000000000000000000007"
	runName   = "20260101-000000-42"
)

// fakeCache makes a cache with one entry of each kind, and the things that
// are not entries. The worktree's src/big is a hard link to ksrc's big.
func fakeCache(t *testing.T) *Cache {
	t.Helper()
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	write := func(rel string, size int, data string) {
		t.Helper()
		p := filepath.Join(c.Dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if data == "" {
			data = strings.Repeat("x", size)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kernel/"+keyKernel+"/info.json", 0, `{"release": "6.1.192", "version": "6.1.192", "config": "minimal", "build_seconds": 3}`)
	write("kernel/"+keyKernel+"/bzImage", 1000, "")
	write("intree/"+keyInTree+"/info.json", 0, `{"release": "6.12.118", "config": "debug", "in_tree": true}`)
	write("ksrc/"+keyTree+"/Makefile", 0, "# SPDX\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\nNAME = x\n")
	write("ksrc/"+keyTree+"/big", 5000, "")
	write("ksrc/"+keyTree2+"/linux-5.10.262/Makefile", 0, "VERSION = 5\nPATCHLEVEL = 10\nSUBLEVEL = 262\nEXTRAVERSION = -rc1\n")
	write("worktree/"+keyWork+"/build/vmlinux", 300, "")
	if err := os.MkdirAll(filepath.Join(c.Dir, "worktree", keyWork, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(c.Dir, "ksrc", keyTree, "big"), filepath.Join(c.Dir, "worktree", keyWork, "src", "big")); err != nil {
		t.Fatal(err)
	}
	write("module/"+keyModule+"/wireguard.ko", 200, "")
	// A hard-linked pair inside one entry counts once too.
	if err := os.Link(filepath.Join(c.Dir, "module", keyModule, "wireguard.ko"), filepath.Join(c.Dir, "module", keyModule, "copy.ko")); err != nil {
		t.Fatal(err)
	}
	write("runs/"+runName+"/console.log", 10, "")
	write("failed/module/"+keyFailed+"/build.log", 20, "")
	write("ksrc-refs/debian-6.1.json", 0, `{"key": "`+keyTree+`", "origin": "Debian linux-source-6.1 6.1.192-2 (bookworm)", "sha256": "x"}`)
	write("ksrc-refs/debian-5.10.json", 0, `{"key": "`+keyTree2+`", "origin": "Debian linux-source-5.10", "sha256": "y"}`)
	write("apt/bookworm/lists/x", 10, "")
	write("tmp/kernel-123/partial", 10, "")
	write("kvm-probe-1234", 4, "")
	unlock, err := c.Lock("module-" + keyModule) // leaves a lock file
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	return c
}

func TestEntries(t *testing.T) {
	c := fakeCache(t)
	used := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(c.Path("module", keyModule), used, used); err != nil {
		t.Fatal(err)
	}
	ents, err := c.Entries()
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Kind: "failed/module", Key: keyFailed, Size: 20},
		{Kind: "intree", Key: keyInTree, Size: int64(len(`{"release": "6.12.118", "config": "debug", "in_tree": true}`)), What: "6.12.118 debug in-tree"},
		{Kind: "kernel", Key: keyKernel, Size: 1000 + int64(len(`{"release": "6.1.192", "version": "6.1.192", "config": "minimal", "build_seconds": 3}`)), What: "6.1.192 minimal"},
		{Kind: "ksrc", Key: keyTree, Size: 5000 + int64(len("# SPDX\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\nNAME = x\n")),
			What: "6.1.192 from Debian linux-source-6.1 6.1.192-2 (bookworm)"},
		{Kind: "ksrc", Key: keyTree2, Size: int64(len("VERSION = 5\nPATCHLEVEL = 10\nSUBLEVEL = 262\nEXTRAVERSION = -rc1\n")),
			What: "5.10.262-rc1 from Debian linux-source-5.10"},
		{Kind: "module", Key: keyModule, Size: 200, Used: used},
		{Kind: "runs", Key: runName, Size: 10},
		// src/big is ksrc's, counted there.
		{Kind: "worktree", Key: keyWork, Size: 300},
	}
	if len(ents) != len(want) {
		var got []string
		for _, e := range ents {
			got = append(got, e.Kind+"/"+e.Key)
		}
		t.Fatalf("got %d entries, want %d: %v", len(ents), len(want), got)
	}
	for i, w := range want {
		t.Run(w.Kind+"/"+Short(w.Key), func(t *testing.T) {
			g := ents[i]
			if g.Kind != w.Kind || g.Key != w.Key {
				t.Fatalf("entry %d is %s/%s, want %s/%s", i, g.Kind, g.Key, w.Kind, w.Key)
			}
			if wp := filepath.Join(c.Dir, filepath.FromSlash(w.Kind), w.Key); g.Path != wp {
				t.Errorf("Path = %s, want %s", g.Path, wp)
			}
			if g.Size != w.Size {
				t.Errorf("Size = %d, want %d", g.Size, w.Size)
			}
			if g.What != w.What {
				t.Errorf("What = %q, want %q", g.What, w.What)
			}
			if !w.Used.IsZero() && !g.Used.Equal(w.Used) {
				t.Errorf("Used = %v, want %v", g.Used, w.Used)
			}
			if time.Since(g.Used) > time.Hour && w.Used.IsZero() {
				t.Errorf("Used = %v, want about now", g.Used)
			}
		})
	}
}

func TestGetHitTouches(t *testing.T) {
	c := fakeCache(t)
	old := time.Now().Add(-100 * 24 * time.Hour)
	if err := os.Chtimes(c.Path("module", keyModule), old, old); err != nil {
		t.Fatal(err)
	}
	_, hit, err := c.Get("module", keyModule, func(string) error { return errors.New("must not build") })
	if err != nil || !hit {
		t.Fatalf("Get: hit=%v err=%v, want a hit", hit, err)
	}
	fi, err := os.Stat(c.Path("module", keyModule))
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(fi.ModTime()) > time.Hour {
		t.Errorf("mtime after a hit is %v, want now", fi.ModTime())
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name     string
		kind     string
		key      string
		hold     string // lock held by someone else
		wantErr  error  // errors.Is target; nil: success
		errHas   string // for errors without a target
		gone     []string
		kept     []string
		refsLeft []string
	}{
		{name: "module", kind: "module", key: keyModule, gone: []string{"module/" + keyModule}, kept: []string{"locks/module-" + keyModule + ".lock"},
			refsLeft: []string{"debian-5.10.json", "debian-6.1.json"}},
		{name: "kernel in use", kind: "kernel", key: keyKernel, hold: "kernel-" + keyKernel, wantErr: ErrInUse, kept: []string{"kernel/" + keyKernel}},
		{name: "worktree", kind: "worktree", key: keyWork, gone: []string{"worktree/" + keyWork}, kept: []string{"ksrc/" + keyTree + "/big"}},
		{name: "worktree in use", kind: "worktree", key: keyWork, hold: "worktree-" + keyWork, wantErr: ErrInUse},
		{name: "failed build", kind: "failed/module", key: keyFailed, gone: []string{"failed/module/" + keyFailed}},
		{name: "failed build being replaced", kind: "failed/module", key: keyFailed, hold: "module-" + keyFailed, wantErr: ErrInUse},
		{name: "run", kind: "runs", key: runName, gone: []string{"runs/" + runName}},
		{name: "ksrc drops its refs", kind: "ksrc", key: keyTree, gone: []string{"ksrc/" + keyTree, "ksrc-refs/debian-6.1.json"},
			kept: []string{"worktree/" + keyWork + "/src/big"}, refsLeft: []string{"debian-5.10.json"}},
		{name: "ksrc in subdirectory", kind: "ksrc", key: keyTree2, gone: []string{"ksrc/" + keyTree2, "ksrc-refs/debian-5.10.json"},
			refsLeft: []string{"debian-6.1.json"}},
		{name: "already gone", kind: "module", key: strings.Repeat("b", 64)},
		{name: "tmp", kind: "tmp", key: "kernel-123", errHas: "not a kind of entry", kept: []string{"tmp/kernel-123"}},
		{name: "apt", kind: "apt", key: "bookworm", errHas: "not a kind of entry", kept: []string{"apt/bookworm"}},
		{name: "escape", kind: "module", key: "..", errHas: "not an entry"},
		{name: "deep kind", kind: "module/../apt", key: "bookworm", errHas: "not a kind of entry", kept: []string{"apt/bookworm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeCache(t)
			if tt.hold != "" {
				unlock, err := c.Lock(tt.hold)
				if err != nil {
					t.Fatal(err)
				}
				defer unlock()
			}
			err := c.Remove(Entry{Kind: tt.kind, Key: tt.key})
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
			case tt.errHas != "":
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("err = %v, want one saying %q", err, tt.errHas)
				}
			case err != nil:
				t.Errorf("err = %v", err)
			}
			for _, p := range tt.gone {
				if _, err := os.Lstat(filepath.Join(c.Dir, p)); !os.IsNotExist(err) {
					t.Errorf("%s still there (%v)", p, err)
				}
			}
			for _, p := range tt.kept {
				if _, err := os.Lstat(filepath.Join(c.Dir, p)); err != nil {
					t.Errorf("%s is gone: %v", p, err)
				}
			}
			if tt.refsLeft != nil {
				ents, _ := os.ReadDir(filepath.Join(c.Dir, "ksrc-refs"))
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				if !slices.Equal(names, tt.refsLeft) {
					t.Errorf("refs left %v, want %v", names, tt.refsLeft)
				}
			}
			tmp, _ := os.ReadDir(filepath.Join(c.Dir, "tmp"))
			if len(tmp) != 1 || tmp[0].Name() != "kernel-123" {
				t.Errorf("tmp holds %v, want only kernel-123 (the removed entry was left there)", tmp)
			}
		})
	}
}

func TestRemoveUnwritableDirectory(t *testing.T) {
	c := fakeCache(t)
	ro := filepath.Join(c.Path("module", keyModule), "ro")
	if err := os.MkdirAll(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(Entry{Kind: "module", Key: keyModule}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Path("module", keyModule)); !os.IsNotExist(err) {
		t.Errorf("entry still there: %v", err)
	}
}

func TestCleanRefs(t *testing.T) {
	c := fakeCache(t)
	// The 5.10 tree vanished some other way; a corrupt ref and a ref being
	// written are not ksrc's to lose.
	if err := os.RemoveAll(c.Path("ksrc", keyTree2)); err != nil {
		t.Fatal(err)
	}
	refs := filepath.Join(c.Dir, "ksrc-refs")
	os.WriteFile(filepath.Join(refs, "corrupt.json"), []byte("{"), 0o644)
	os.WriteFile(filepath.Join(refs, ".ref-123"), []byte(`{"key": "gone"}`), 0o644)
	removed, err := c.CleanRefs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(refs, "debian-5.10.json")}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	ents, _ := os.ReadDir(refs)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{".ref-123", "corrupt.json", "debian-6.1.json"}; !slices.Equal(names, want) {
		t.Errorf("refs left %v, want %v", names, want)
	}
}
