package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// dirSeals holds seals/<kind>/<key>.json: what each entry held when Get
// installed it, so that a damaged entry (a file truncated by a crash before
// the data reached the disk, or by a full disk, or edited by hand) is found
// and rebuilt instead of used. Entries made before seals existed are
// sealed at their first use, as they are then.
const dirSeals = "seals"

// sealHashLimit bounds the entries whose files' contents are hashed (and
// checked on every hit); above it, a hit checks only that each file is
// there with its size, which costs a stat per file.
const sealHashLimit = 64 << 20

// seal is what an entry held when it was installed.
type seal struct {
	Files []sealedFile `json:"files"`
}

// sealedFile is one regular file of an entry; SHA256 is "" in an entry
// larger than sealHashLimit.
type sealedFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

func (c *Cache) sealPath(kind, key string) string {
	return filepath.Join(c.Dir, dirSeals, kind, key+".json")
}

// makeSeal describes the regular files under dir.
func makeSeal(dir string) (*seal, error) {
	s := &seal{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		s.Files = append(s.Files, sealedFile{Path: filepath.ToSlash(rel), Size: fi.Size()})
		total += fi.Size()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if total <= sealHashLimit {
		for i := range s.Files {
			sum, err := FileSHA256(filepath.Join(dir, filepath.FromSlash(s.Files[i].Path)))
			if err != nil {
				return nil, err
			}
			s.Files[i].SHA256 = sum
		}
	}
	return s, nil
}

// writeSeal seals the entry being built in dir as kind/key.
func (c *Cache) writeSeal(kind, key, dir string) error {
	s, err := makeSeal(dir)
	if err != nil {
		return fmt.Errorf("cache: sealing %s/%s: %w", kind, Short(key), err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	p := c.sealPath(kind, key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".seal-")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("cache: sealing %s/%s: %w", kind, Short(key), err)
	}
	return nil
}

// checkSeal reports whether the entry kind/key has a seal, and how the
// entry differs from it (nil if it does not, or has none).
func (c *Cache) checkSeal(kind, key string) (sealed bool, damage error) {
	b, err := os.ReadFile(c.sealPath(kind, key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	var s seal
	if err := json.Unmarshal(b, &s); err != nil {
		return true, fmt.Errorf("its seal %s is unreadable: %v", c.sealPath(kind, key), err)
	}
	dir := c.Path(kind, key)
	for _, f := range s.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			return true, fmt.Errorf("%s: %v", f.Path, err)
		case fi.Size() != f.Size:
			return true, fmt.Errorf("%s has %d bytes, %d when it was built", f.Path, fi.Size(), f.Size)
		case f.SHA256 == "":
			continue
		}
		sum, err := FileSHA256(p)
		if err != nil {
			return true, fmt.Errorf("%s: %v", f.Path, err)
		}
		if sum != f.SHA256 {
			return true, fmt.Errorf("%s changed since it was built (sha256 %s, was %s)", f.Path, Short(sum), Short(f.SHA256))
		}
	}
	return true, nil
}

// discard removes a damaged entry so that it can be built again: it is
// renamed away at once, then deleted. The caller holds the entry's lock.
func (c *Cache) discard(kind, key string) error {
	trash, err := c.TempDir("damaged-" + kind)
	if err != nil {
		return err
	}
	if err := os.Rename(c.Path(kind, key), filepath.Join(trash, "entry")); err != nil {
		_ = os.Remove(trash)
		return fmt.Errorf("cache: removing the damaged entry %s: %w (remove it by hand)", c.Path(kind, key), err)
	}
	_ = os.Remove(c.sealPath(kind, key))
	_ = removeAll(trash)
	return nil
}

func (c *Cache) warnf(format string, args ...any) {
	if c.Warnf != nil {
		c.Warnf(format, args...)
		return
	}
	fmt.Fprintf(os.Stderr, "wgbuild: "+format+"\n", args...)
}

// FileSHA256 is the hex SHA-256 of a file's contents.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
