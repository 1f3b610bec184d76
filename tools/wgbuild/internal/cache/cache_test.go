package cache

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

func TestKeyFraming(t *testing.T) {
	tests := []struct {
		name string
		a, b func(*Key)
		same bool
	}{
		{"identical", func(k *Key) { k.AddString("x", "1") }, func(k *Key) { k.AddString("x", "1") }, true},
		{"value differs", func(k *Key) { k.AddString("x", "1") }, func(k *Key) { k.AddString("x", "2") }, false},
		{"name differs", func(k *Key) { k.AddString("x", "1") }, func(k *Key) { k.AddString("y", "1") }, false},
		{"boundary shift", func(k *Key) { k.AddString("a", "bc") }, func(k *Key) { k.AddString("ab", "c") }, false},
		{"split field", func(k *Key) { k.AddString("a", "bc") }, func(k *Key) { k.AddString("a", "b"); k.AddString("", "c") }, false},
		{"order", func(k *Key) { k.AddString("a", "1"); k.AddString("b", "2") }, func(k *Key) { k.AddString("b", "2"); k.AddString("a", "1") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := NewKey("k"), NewKey("k")
			tt.a(ka)
			tt.b(kb)
			if got := ka.Sum() == kb.Sum(); got != tt.same {
				t.Errorf("same = %v, want %v", got, tt.same)
			}
		})
	}
	if NewKey("a").Sum() == NewKey("b").Sum() {
		t.Error("kind is not part of the key")
	}
}

func TestGetBuildsOnceAndAtomically(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var builds atomic.Int32
	build := func(dir string) error {
		builds.Add(1)
		return os.WriteFile(filepath.Join(dir, "out"), []byte("ok"), 0o644)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir, _, err := c.Get("mod", "k1", build)
			if err != nil {
				t.Error(err)
				return
			}
			if b, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || string(b) != "ok" {
				t.Errorf("entry content = %q, %v", b, err)
			}
		}()
	}
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("built %d times, want 1", n)
	}
	if _, hit, err := c.Get("mod", "k1", build); err != nil || !hit {
		t.Errorf("second Get: hit=%v err=%v, want hit", hit, err)
	}
}

func TestGetFailureLeavesNoEntry(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, _, err = c.Get("mod", "k2", func(dir string) error {
		os.WriteFile(filepath.Join(dir, "build.log"), []byte("error: x"), 0o644)
		return boom
	})
	var be *BuildError
	if !errors.As(err, &be) || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want BuildError wrapping boom", err)
	}
	if _, err := os.Stat(c.Path("mod", "k2")); !os.IsNotExist(err) {
		t.Errorf("failed build left an entry: %v", err)
	}
	if _, err := os.Stat(filepath.Join(be.Dir, "build.log")); err != nil {
		t.Errorf("failed build's log not kept: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(c.Dir, "tmp")); len(ents) != 0 {
		t.Errorf("temp dirs left behind: %v", ents)
	}
}
