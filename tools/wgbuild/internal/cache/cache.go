// Package cache is wgbuild's content-addressed artifact store.
//
// An entry is a directory named by the hash of everything that went into it.
// Entries are built in a private temporary directory and renamed into place,
// so a reader sees either a complete entry or none; a per-entry flock keeps
// two concurrent wgbuild runs from building the same entry twice.
package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Schema versions every key. Bump it when the layout or meaning of an entry
// changes so that old entries are never reused.
const Schema = "wgkit-cache-v1"

// Cache is a cache rooted at a directory.
type Cache struct {
	Dir string
	// Warnf, if set, gets warnings, such as a damaged entry being built
	// again; they go to stderr as wgbuild's progress lines otherwise.
	Warnf func(format string, args ...any)
}

// DefaultDir returns the cache directory used when none is given:
// $WGKIT_CACHE, else $XDG_CACHE_HOME/wgkit, else ~/.cache/wgkit.
func DefaultDir() (string, error) {
	if d := os.Getenv("WGKIT_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "wgkit"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find a cache directory (set WGKIT_CACHE or pass --cache DIR): %w", err)
	}
	return filepath.Join(home, ".cache", "wgkit"), nil
}

// Open creates the cache directory if needed.
func Open(dir string) (*Cache, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"", "tmp", "locks"} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o755); err != nil {
			return nil, fmt.Errorf("cache: cannot create %s (pass --cache DIR or set WGKIT_CACHE to a writable directory): %w", abs, err)
		}
	}
	c := &Cache{Dir: abs}
	c.pruneTmp(24 * time.Hour)
	return c, nil
}

// Path returns the path of the entry kind/key, whether or not it exists.
func (c *Cache) Path(kind, key string) string {
	return filepath.Join(c.Dir, kind, key)
}

// BuildFunc fills dir, an empty private directory, with an entry's files.
type BuildFunc func(dir string) error

// Get returns the directory of entry kind/key, calling build to create it if
// it does not exist yet. hit reports whether the entry already existed. When
// build fails, its partial output is kept under <cache>/failed/<kind>/<key>
// (replacing an older failure) so logs survive, and failedDir names it.
//
// An entry whose files differ from what they were when it was installed
// (see seal.go) is damaged: Get warns, removes it and builds it again. An
// entry made before seals existed is sealed as it is at its first use.
func (c *Cache) Get(kind, key string, build BuildFunc) (dir string, hit bool, err error) {
	dir = c.Path(kind, key)
	if isDir(dir) {
		if sealed, damage := c.checkSeal(kind, key); sealed && damage == nil {
			c.Touch(kind, key) // mtime is "last used", for wgbuild cache prune
			return dir, true, nil
		}
	}
	unlock, err := c.Lock(kind + "-" + key)
	if err != nil {
		return "", false, err
	}
	defer unlock()
	// Someone else may have built it while we waited for the lock.
	if isDir(dir) {
		sealed, damage := c.checkSeal(kind, key)
		if damage == nil {
			if !sealed {
				// Best effort: unsealed, it is just not checked.
				_ = c.writeSeal(kind, key, dir)
			}
			c.Touch(kind, key)
			return dir, true, nil
		}
		c.warnf("cache: entry %s is damaged: %v; building it again", dir, damage)
		if err := c.discard(kind, key); err != nil {
			return "", false, err
		}
	}
	tmp, err := c.TempDir(kind)
	if err != nil {
		return "", false, err
	}
	if err := build(tmp); err != nil {
		failed := filepath.Join(c.Dir, "failed", kind, key)
		_ = os.RemoveAll(failed)
		if mkErr := os.MkdirAll(filepath.Dir(failed), 0o755); mkErr == nil {
			if os.Rename(tmp, failed) == nil {
				return "", false, &BuildError{Err: err, Dir: failed}
			}
		}
		_ = os.RemoveAll(tmp)
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, err
	}
	if err := c.writeSeal(kind, key, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, fmt.Errorf("cache: installing entry %s: %w", dir, err)
	}
	return dir, false, nil
}

// BuildError is a failed build whose partial output was kept in Dir.
type BuildError struct {
	Err error
	Dir string
}

func (e *BuildError) Error() string { return e.Err.Error() }
func (e *BuildError) Unwrap() error { return e.Err }

// TempDir returns a new private directory inside the cache (on the same file
// system as the entries, so a rename can install it).
func (c *Cache) TempDir(prefix string) (string, error) {
	d, err := os.MkdirTemp(filepath.Join(c.Dir, "tmp"), prefix+"-")
	if err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	return d, nil
}

// Lock takes an exclusive flock on <cache>/locks/<name>.lock, waiting for
// other holders, and returns the function that releases it.
func (c *Cache) Lock(name string) (unlock func(), err error) {
	_, unlock, err = c.LockFile(name)
	return unlock, err
}

// LockFile is Lock that also returns the locked file: a child process
// that inherits it (exec.Cmd.ExtraFiles) keeps the lock held until it
// exits, even if this process dies first.
func (c *Cache) LockFile(name string) (f *os.File, unlock func(), err error) {
	p := filepath.Join(c.Dir, "locks", name+".lock")
	f, err = os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("cache: lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("cache: lock %s: %w", p, err)
	}
	return f, func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// pruneTmp removes temporary directories left behind by interrupted runs.
func (c *Cache) pruneTmp(age time.Duration) {
	ents, err := os.ReadDir(filepath.Join(c.Dir, "tmp"))
	if err != nil {
		return
	}
	for _, e := range ents {
		info, err := e.Info()
		if err == nil && time.Since(info.ModTime()) > age {
			_ = os.RemoveAll(filepath.Join(c.Dir, "tmp", e.Name()))
		}
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// A Key accumulates named inputs into a content hash. Each field is framed
// with its name and length, so no two different input lists hash alike.
type Key struct {
	h hash.Hash
}

// NewKey returns a Key already seeded with Schema and the kind of entry.
func NewKey(kind string) *Key {
	k := &Key{h: sha256.New()}
	k.Add("schema", []byte(Schema))
	k.Add("kind", []byte(kind))
	return k
}

// Add adds one named input.
func (k *Key) Add(name string, data []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	k.h.Write(n[:])
	io.WriteString(k.h, name)
	binary.BigEndian.PutUint64(n[:], uint64(len(data)))
	k.h.Write(n[:])
	k.h.Write(data)
}

// AddString adds one named string input.
func (k *Key) AddString(name, value string) { k.Add(name, []byte(value)) }

// AddFile adds a file's contents under name.
func (k *Key) AddFile(name, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	k.Add(name, b)
	return nil
}

// AddFileHash adds the sha256 of a file (not its contents) under name; use it
// for large inputs whose digest is what matters.
func (k *Key) AddFileHash(name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	k.Add(name, h.Sum(nil))
	return nil
}

// Sum returns the key as 64 hex digits.
func (k *Key) Sum() string { return hex.EncodeToString(k.h.Sum(nil)) }

// Short abbreviates a key for display.
func Short(key string) string {
	if len(key) > 12 {
		return key[:12]
	}
	return key
}
