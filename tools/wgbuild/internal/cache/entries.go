package cache

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Top-level directories of the cache that are not kinds of entry, or whose
// entries sit deeper.
const (
	dirTmp    = "tmp"       // private build directories, pruned by Open
	dirLocks  = "locks"     // flock files; never removed (see Remove)
	dirApt    = "apt"       // ksrc's private apt configurations and downloads
	dirFailed = "failed"    // failed/<kind>/<key>: kept output of failed builds
	dirRuns   = "runs"      // runs/<time>-<pid>: one vmtest or interop run each
	dirRefs   = "ksrc-refs" // small JSON files naming ksrc entries
	kindKsrc  = "ksrc"
)

// Entry is one removable thing in the cache: an entry <cache>/<kind>/<key>,
// a run directory (kind "runs") or a failed build's kept output (kind
// "failed/<kind>").
type Entry struct {
	Kind string
	Key  string
	Path string
	// Size is the bytes of the entry's files. Each inode counts once in
	// a listing: a file hard-linked into several entries (worktree holds
	// `cp -al` copies of ksrc trees) counts toward the first one listed,
	// and kinds are listed in name order, so ksrc before worktree.
	Size int64
	// Used is when the entry was last used: its directory's mtime, which
	// Get refreshes on a hit, and Touch for entries used without Get (ksrc
	// trees found through their references, kbuild's worktrees).
	Used time.Time
	// What says what the entry is, for people: "6.1.192 minimal" for a
	// kernel, the release and origin for a source tree; "" if unknown.
	What string
}

// Touch marks entry kind/key as used now, by setting its directory's mtime.
// Errors are ignored: an entry that cannot be touched just looks older.
func (c *Cache) Touch(kind, key string) {
	now := time.Now()
	_ = os.Chtimes(c.Path(kind, key), now, now)
}

// Entries lists every entry in the cache, sorted by kind then key. The
// private apt state, locks, temporary directories, ksrc's reference files,
// the entries' seals and loose files at the top of the cache are not
// entries.
func (c *Cache) Entries() ([]Entry, error) {
	top, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("cache: listing %s: %w (pass --cache DIR or set WGKIT_CACHE to the cache directory)", c.Dir, err)
	}
	var kinds []string
	for _, d := range top {
		if !d.IsDir() {
			continue
		}
		switch name := d.Name(); name {
		case dirTmp, dirLocks, dirApt, dirRefs, dirSeals:
		case dirFailed:
			sub, err := os.ReadDir(filepath.Join(c.Dir, dirFailed))
			if err != nil {
				return nil, fmt.Errorf("cache: %w", err)
			}
			for _, s := range sub {
				if s.IsDir() {
					kinds = append(kinds, dirFailed+"/"+s.Name())
				}
			}
		default:
			kinds = append(kinds, name)
		}
	}
	slices.Sort(kinds)
	refs := c.refs()
	seen := map[fileID]bool{}
	var ents []Entry
	for _, kind := range kinds {
		dir := filepath.Join(c.Dir, filepath.FromSlash(kind))
		kids, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while we looked
			}
			return nil, fmt.Errorf("cache: %w", err)
		}
		for _, k := range kids {
			if !k.IsDir() {
				continue
			}
			p := filepath.Join(dir, k.Name())
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			e := Entry{Kind: kind, Key: k.Name(), Path: p, Used: fi.ModTime()}
			e.Size = treeSize(p, seen)
			e.What = describe(kind, p, refs[e.Key])
			ents = append(ents, e)
		}
	}
	return ents, nil
}

type fileID struct{ dev, ino uint64 }

// treeSize adds up the sizes of the files under dir, skipping inodes in
// seen and adding those it counts. Parts it cannot read count as nothing.
func treeSize(dir string, seen map[fileID]bool) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			id := fileID{uint64(st.Dev), st.Ino}
			if seen[id] {
				return nil
			}
			seen[id] = true
		}
		n += fi.Size()
		return nil
	})
	return n
}

// describe says what an entry holds; origin is what the ksrc reference
// naming the entry says about it ("" if none does).
func describe(kind, dir, origin string) string {
	switch kind {
	case "kernel", "intree":
		b, err := os.ReadFile(filepath.Join(dir, "info.json"))
		if err != nil {
			return ""
		}
		// The fields of kbuild's kernelInfo that say what a kernel is.
		var info struct {
			Release string `json:"release"`
			Config  string `json:"config"`
			InTree  bool   `json:"in_tree"`
		}
		if json.Unmarshal(b, &info) != nil {
			return ""
		}
		s := strings.TrimSpace(info.Release + " " + info.Config)
		if info.InTree {
			s += " in-tree"
		}
		return s
	case kindKsrc:
		v := treeVersion(dir)
		if origin == "" {
			return v
		}
		if v == "" {
			return origin
		}
		return v + " from " + origin
	}
	return ""
}

// treeVersion reads the release from the Makefile of the kernel tree at
// dir or in its only subdirectory; "" if there is none.
func treeVersion(dir string) string {
	if v := makefileVersion(filepath.Join(dir, "Makefile")); v != "" {
		return v
	}
	kids, err := os.ReadDir(dir)
	if err != nil || len(kids) != 1 || !kids[0].IsDir() {
		return ""
	}
	return makefileVersion(filepath.Join(dir, kids[0].Name(), "Makefile"))
}

// makefileVersion is VERSION.PATCHLEVEL.SUBLEVEL(EXTRAVERSION) from the top
// of a kernel Makefile, as ksrc reads it.
func makefileVersion(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for i := 0; i < 20 && sc.Scan(); i++ {
		name, value, ok := strings.Cut(sc.Text(), "=")
		if ok {
			vars[strings.TrimSpace(name)] = strings.TrimSpace(value)
		}
	}
	var nums []string
	for _, name := range []string{"VERSION", "PATCHLEVEL", "SUBLEVEL"} {
		if _, err := strconv.Atoi(vars[name]); err != nil {
			return ""
		}
		nums = append(nums, vars[name])
	}
	return strings.Join(nums, ".") + vars["EXTRAVERSION"]
}

// ref is the part of a ksrc reference file (<cache>/ksrc-refs/<name>.json)
// that the cache needs: the key of the ksrc entry it names.
type ref struct {
	Key    string `json:"key"`
	Origin string `json:"origin"`
}

// refFiles returns the reference files with what they hold; files being
// written (ksrc writes a hidden temporary file and renames it) are left out.
func (c *Cache) refFiles() map[string]ref {
	dir := filepath.Join(c.Dir, dirRefs)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]ref{}
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var r ref
		if json.Unmarshal(b, &r) != nil {
			continue
		}
		out[p] = r
	}
	return out
}

// refs maps ksrc keys to the origin their reference files give.
func (c *Cache) refs() map[string]string {
	m := map[string]string{}
	for _, r := range c.refFiles() {
		if r.Key != "" && (m[r.Key] == "" || r.Origin < m[r.Key]) {
			m[r.Key] = r.Origin
		}
	}
	return m
}

// CleanRefs removes the ksrc reference files whose entry is gone, and
// returns their paths. Such a reference does no harm (ksrc then fetches
// again) but says something that is no longer true.
func (c *Cache) CleanRefs() ([]string, error) {
	var removed []string
	var errs []error
	for p, r := range c.refFiles() {
		if r.Key == "" || strings.ContainsAny(r.Key, `/\`) || isDir(c.Path(kindKsrc, r.Key)) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	slices.Sort(removed)
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("cache: removing stale ksrc references: %w (remove them by hand)", err)
	}
	return removed, nil
}

// ErrInUse is returned by Remove for an entry whose lock another process
// holds: a build is writing it, or (worktree) building in it.
var ErrInUse = errors.New("in use by a running wgbuild")

// Remove deletes an entry. It takes the entry's lock without waiting (the
// one Get holds while building kind/key, and kbuild while using a
// worktree), failing with ErrInUse if another process holds it, then
// renames the entry into <cache>/tmp, so that it disappears at once, and
// deletes it there. Lock files are kept: deleting a lock file that another
// process has open would let two processes hold "the" lock.
func (c *Cache) Remove(e Entry) error {
	kind, key := e.Kind, e.Key
	if kind == "" || key == "" || key == "." || key == ".." || strings.ContainsAny(key, `/\`) {
		return fmt.Errorf("cache: %q/%q is not an entry", kind, key)
	}
	lockKind := kind
	switch {
	case kind == dirTmp || kind == dirLocks || kind == dirApt || kind == dirRefs || kind == dirSeals || kind == dirFailed:
		return fmt.Errorf("cache: %s is not a kind of entry that can be removed", kind)
	case strings.HasPrefix(kind, dirFailed+"/"):
		lockKind = strings.TrimPrefix(kind, dirFailed+"/")
	case strings.Contains(kind, "/") || kind == "." || kind == "..":
		return fmt.Errorf("cache: %q is not a kind of entry", kind)
	}
	path := filepath.Join(c.Dir, filepath.FromSlash(kind), key)
	if e.Path != "" && filepath.Clean(e.Path) != path {
		return fmt.Errorf("cache: entry %s/%s is at %s, not %s", kind, key, path, e.Path)
	}
	if kind != dirRuns { // runs are not built under a lock
		unlock, ok, err := c.tryLock(lockKind + "-" + key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("cache: %s/%s: %w", kind, Short(key), ErrInUse)
		}
		defer unlock()
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, dirTmp), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	trash, err := os.MkdirTemp(filepath.Join(c.Dir, dirTmp), "removing-"+strings.ReplaceAll(kind, "/", "-")+"-")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(path, filepath.Join(trash, "entry")); err != nil {
		_ = os.Remove(trash)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // someone else removed it
		}
		return fmt.Errorf("cache: removing %s: %w (check the permissions of %s)", path, err, filepath.Dir(path))
	}
	_ = os.Remove(c.sealPath(kind, key))
	if kind == kindKsrc {
		if _, err := c.CleanRefs(); err != nil {
			return err
		}
	}
	if err := removeAll(trash); err != nil {
		return fmt.Errorf("cache: %s is gone from the cache but deleting it failed: %w (delete %s by hand)", path, err, trash)
	}
	return nil
}

// removeAll is os.RemoveAll that also empties directories without write
// permission (a build may leave some behind).
func removeAll(dir string) error {
	if os.RemoveAll(dir) == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// tryLock is Lock without waiting: ok is false if another holder has it.
func (c *Cache) tryLock(name string) (unlock func(), ok bool, err error) {
	p := filepath.Join(c.Dir, dirLocks, name+".lock")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, false, fmt.Errorf("cache: lock: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("cache: lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("cache: lock %s: %w", p, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, true, nil
}
