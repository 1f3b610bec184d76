// Package ksrc gets kernel source trees: from wgbuild's cache, a local
// tarball or tree, Debian's linux-source-X.Y package (fetched under a
// private apt configuration, so the system's sources and packages never
// change), or a kernel.org release tarball checked against the published
// SHA-256 sums.
//
// A fetched tree is unpacked into the content-addressed cache, keyed by the
// SHA-256 of what it was unpacked from (the .deb or the tarball); a small
// reference file remembers which entry answered a request such as "Debian
// 6.12", so that a second run needs neither apt nor the network.
package ksrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// Where a source comes from (Options.From).
const (
	FromAuto      = "auto"       // Debian for the series it packages, else kernel.org
	FromDebian    = "debian"     // only Debian's linux-source packages
	FromKernelOrg = "kernel.org" // only kernel.org release tarballs
	FromLocal     = "local"      // only the tarballs in Options.SourceDir
)

// DefaultMirror is where kernel.org publishes release tarballs and their
// sha256sums.asc, one vN.x directory per major version.
const DefaultMirror = "https://cdn.kernel.org/pub/linux/kernel"

// Cache kinds: unpacked trees, and the references that name them.
const (
	kindTree = "ksrc"
	kindRef  = "ksrc-refs"
)

// Options configures Fetch.
type Options struct {
	// Cache stores unpacked trees, the private apt state and downloads.
	Cache *cache.Cache
	// Version is the kernel asked for: "6.12" or "6.1.192". With Source it
	// is optional and only checked against the tree's Makefile.
	Version string
	// Source is a local .tar.xz/.tar.gz/.tar tarball, unpacked into the
	// cache, or an unpacked tree, used in place.
	Source string
	// From restricts where a Version comes from: FromAuto (""),
	// FromDebian, FromKernelOrg or FromLocal.
	From string
	// SourceDir is a directory of kernel tarballs
	// (linux-X.Y[.Z].tar.xz...) that answer a Version Debian does not
	// package, before kernel.org is asked; "" means none.
	SourceDir string
	// Update asks apt or kernel.org again even when the cache already
	// answered the same request (a newer Debian package, say).
	Update bool

	// Apt runs apt-get, apt-cache and dpkg-deb; nil means the system's.
	Apt Apt
	// DebianMirror is the Debian archive to fetch from; "" means the one
	// the system's own apt sources name (under Root).
	DebianMirror string
	// Root is the file system root whose /etc/apt is read; "" means "/".
	Root string
	// Keyring verifies the private apt sources; "" means DebianKeyring.
	Keyring string

	// Mirror is the base URL of kernel.org's tarballs (http(s)://, file://
	// or a directory); "" means DefaultMirror.
	Mirror string
	// SHA256Sums is the checksum file (URL or path) for Mirror's tarballs;
	// "" means <Mirror>/vN.x/sha256sums.asc.
	SHA256Sums string
	// HTTPClient fetches http(s) URLs; nil means http.DefaultClient.
	HTTPClient *http.Client

	// Progress receives one line per step; nil discards them.
	Progress func(format string, args ...any)
}

// Tree is an unpacked kernel source tree.
type Tree struct {
	// Dir is the root of the tree (the directory holding its Makefile).
	Dir string
	// Version is the release the Makefile declares, e.g. "6.12.117".
	Version string
	// Origin says where the tree came from, for people:
	// "Debian linux-source-6.12 6.12.117-1 (trixie)".
	Origin string
	// SHA256 is the digest of the .deb or tarball it was unpacked from;
	// "" for a tree used in place.
	SHA256 string
	// Key is the cache key; "" for a tree used in place.
	Key string
	// Hit reports that nothing was downloaded or unpacked.
	Hit bool
	// InPlace reports a local tree used where it is, not copied.
	InPlace bool
}

// Fetch returns an unpacked source tree for opts.Version or opts.Source.
func Fetch(ctx context.Context, opts Options) (*Tree, error) {
	if opts.Cache == nil {
		return nil, errors.New("ksrc: no cache")
	}
	f := &fetcher{Options: withDefaults(opts)}
	o := f.Options

	var v Version
	if o.Version != "" {
		var err error
		if v, err = ParseVersion(o.Version); err != nil {
			return nil, err
		}
	}
	if o.Source != "" {
		return f.local(ctx, v)
	}
	if o.Version == "" {
		return nil, errors.New("no kernel asked for: give a version (6.12, 6.1.192) or a local source")
	}
	suite := DebianSuite(v.Series())
	switch o.From {
	case FromAuto:
		if suite != "" {
			return f.debian(ctx, v, suite)
		}
		if o.SourceDir != "" {
			if t, found, err := f.fromSourceDir(ctx, v); found || err != nil {
				return t, err
			}
		}
		return f.kernelOrg(ctx, v)
	case FromLocal:
		if o.SourceDir == "" {
			return nil, fmt.Errorf("--from %s needs a directory of kernel tarballs: --source-dir DIR or $%s", FromLocal, SourceDirEnv)
		}
		t, found, err := f.fromSourceDir(ctx, v)
		if !found && err == nil {
			err = &UnknownVersionError{Version: v, Reason: fmt.Errorf("%s has no linux-%s tarball", o.SourceDir, v)}
		}
		return t, err
	case FromDebian:
		if suite == "" {
			return nil, &UnknownVersionError{Version: v, Reason: fmt.Errorf("there is no linux-source-%s in Debian", v.Series())}
		}
		return f.debian(ctx, v, suite)
	case FromKernelOrg:
		return f.kernelOrg(ctx, v)
	}
	return nil, fmt.Errorf("unknown source %q: want %s, %s, %s or %s", o.From, FromAuto, FromDebian, FromKernelOrg, FromLocal)
}

// withDefaults fills in what opts leaves empty.
func withDefaults(opts Options) Options {
	o := opts
	if o.From == "" {
		o.From = FromAuto
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Keyring == "" {
		o.Keyring = DebianKeyring
	}
	if o.Mirror == "" {
		o.Mirror = DefaultMirror
	}
	o.Mirror = strings.TrimRight(o.Mirror, "/")
	if o.Apt == nil {
		o.Apt = &SystemApt{}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	return o
}

// Choices lists what Fetch can supply, for error messages and --help.
func Choices() string {
	var series []string
	for _, s := range debianSuites {
		series = append(series, s.series+" ("+s.suite+")")
	}
	return "What can be fetched:\n" +
		"  --kernel " + strings.Join(series, ", ") + "\n" +
		"      Debian's linux-source-X.Y packages (an exact X.Y.Z if Debian has that release)\n" +
		"  --kernel X.Y or X.Y.Z\n" +
		"      any other release: a tarball linux-X.Y[.Z].tar.xz from the directory that\n" +
		"      --source-dir DIR or $" + SourceDirEnv + " names, else from kernel.org (needs\n" +
		"      internet access to cdn.kernel.org, or a copy given with --mirror URL and\n" +
		"      --sha256sums FILE)\n" +
		"  --kernel-source PATH\n" +
		"      a local .tar.xz, .tar.gz or .tar of a kernel tree, or an unpacked tree"
}

// UnknownVersionError is a version that no source could supply.
type UnknownVersionError struct {
	Version Version
	Reason  error
}

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("cannot get kernel %s: %v\n%s", e.Version, e.Reason, Choices())
}

func (e *UnknownVersionError) Unwrap() error { return e.Reason }

// fetcher is one Fetch call with its defaults filled in.
type fetcher struct {
	Options
}

func (f *fetcher) progress(format string, args ...any) { f.Progress(format, args...) }

// local uses a tree in place or unpacks a tarball into the cache.
func (f *fetcher) local(ctx context.Context, want Version) (*Tree, error) {
	src, err := filepath.Abs(f.Source)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("kernel source: %w", err)
	}
	var t *Tree
	if fi.IsDir() {
		ver, err := ReadMakefileVersion(src)
		if err != nil {
			return nil, err
		}
		f.progress("%s is an unpacked tree: using it in place, not copying it", src)
		t = &Tree{Dir: src, Version: ver, Origin: "local tree " + src, Hit: true, InPlace: true}
	} else {
		f.progress("hashing %s", src)
		sum, err := cache.FileSHA256(src)
		if err != nil {
			return nil, err
		}
		t, err = f.install(ctx, tarballKey(sum), func(dir string) error {
			return untarFile(ctx, src, dir)
		})
		if err != nil {
			return nil, fmt.Errorf("unpacking %s: %w", src, err)
		}
		t.SHA256 = sum
		t.Origin = "local tarball " + src
	}
	if f.Version != "" && !want.Matches(t.Version) {
		return nil, fmt.Errorf("%s holds kernel %s, not %s: drop --kernel, or ask for %s", t.Origin, t.Version, want, t.Version)
	}
	return t, nil
}

func tarballKey(sum string) string {
	k := cache.NewKey(kindTree)
	k.AddString("tarball-sha256", sum)
	return k.Sum()
}

func debKey(sum string) string {
	k := cache.NewKey(kindTree)
	k.AddString("deb-sha256", sum)
	return k.Sum()
}

// cached returns the tree of entry key if it is in the cache.
func (f *fetcher) cached(key string) (*Tree, bool) {
	dir := f.Cache.Path(kindTree, key)
	ver, err := ReadMakefileVersion(dir)
	if err != nil {
		return nil, false
	}
	f.Cache.Touch(kindTree, key) // found without Cache.Get: mark it used
	return &Tree{Dir: dir, Version: ver, Key: key, Hit: true}, true
}

// install returns the tree of entry key, calling unpack to fill a private
// directory with a tarball's contents first if the entry does not exist.
// The tarball's top-level directory (linux-6.12.117/) is removed, so that
// the entry itself is the tree.
func (f *fetcher) install(ctx context.Context, key string, unpack func(dir string) error) (*Tree, error) {
	if t, ok := f.cached(key); ok {
		return t, nil
	}
	dir, hit, err := f.Cache.Get(kindTree, key, func(dir string) error {
		if err := unpack(dir); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return hoistTree(dir)
	})
	if err != nil {
		// A half-unpacked tree is no help in finding out what went wrong,
		// and can be a gigabyte: drop it.
		var be *cache.BuildError
		if errors.As(err, &be) {
			_ = os.RemoveAll(be.Dir)
			_ = os.Remove(filepath.Dir(be.Dir)) // if now empty
			err = be.Err
		}
		return nil, fmt.Errorf("%w (nothing was cached)", err)
	}
	ver, err := ReadMakefileVersion(dir)
	if err != nil {
		return nil, fmt.Errorf("cache entry %s: %w (remove it and fetch again)", dir, err)
	}
	return &Tree{Dir: dir, Version: ver, Key: key, Hit: hit}, nil
}

// hoistTree makes dir the root of the kernel tree unpacked into it: if the
// Makefile sits one directory down, in the tarball's only top-level
// directory, that directory's contents move up.
func hoistTree(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "Makefile")); err == nil {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(ents) != 1 || !ents[0].IsDir() {
		return fmt.Errorf("not a kernel source tarball: no Makefile at its top or in a single top-level directory (it holds %s)", listSome(names))
	}
	// Rename first, so that a child named like its parent cannot clash.
	top := filepath.Join(dir, ".wgkit-unpack")
	if err := os.Rename(filepath.Join(dir, ents[0].Name()), top); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(top, "Makefile")); err != nil {
		return fmt.Errorf("not a kernel source tarball: %s/ has no Makefile", ents[0].Name())
	}
	kids, err := os.ReadDir(top)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := os.Rename(filepath.Join(top, k.Name()), filepath.Join(dir, k.Name())); err != nil {
			return err
		}
	}
	return os.Remove(top)
}

func listSome(names []string) string {
	if len(names) == 0 {
		return "nothing"
	}
	if len(names) > 5 {
		names = append(names[:5:5], "...")
	}
	return strings.Join(names, ", ")
}

// untarFile unpacks a tarball into dir; GNU tar recognises gzip, xz, bzip2
// and zstd compression itself, and on a 140 MB kernel tarball is several
// times faster than a Go decompressor.
func untarFile(ctx context.Context, tarball, dir string) error {
	return runTar(ctx, nil, "-xf", tarball, "-C", dir, "--no-same-owner")
}

// untarXZ unpacks an xz-compressed tar stream into dir.
func untarXZ(ctx context.Context, r io.Reader, dir string) error {
	return runTar(ctx, r, "-xJf", "-", "-C", dir, "--no-same-owner")
}

func runTar(ctx context.Context, stdin io.Reader, args ...string) error {
	if _, err := exec.LookPath("tar"); err != nil {
		return errors.New("tar not found: run `apt-get install tar xz-utils`")
	}
	cmd := exec.CommandContext(ctx, "tar", args...)
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("tar %s: %v: %s (is the tarball complete?)", strings.Join(args, " "), err, firstLines(out.String(), 3))
	}
	return nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "; ")
}

// A ref remembers which cache entry answered a request, with what a person
// wants to know about it, so that the request can be answered offline.
type ref struct {
	Key    string `json:"key"`
	Origin string `json:"origin"`
	SHA256 string `json:"sha256"`
}

func (f *fetcher) refPath(name string) string {
	return filepath.Join(f.Cache.Dir, kindRef, name+".json")
}

// fromRef returns the cached tree that last answered request name, if its
// entry still exists.
func (f *fetcher) fromRef(name string) (*Tree, bool) {
	b, err := os.ReadFile(f.refPath(name))
	if err != nil {
		return nil, false
	}
	var r ref
	if json.Unmarshal(b, &r) != nil || r.Key == "" {
		return nil, false
	}
	t, ok := f.cached(r.Key)
	if !ok {
		return nil, false
	}
	t.Origin, t.SHA256 = r.Origin, r.SHA256
	return t, true
}

// writeRef records t as the answer to request name. It is written to a
// temporary file and renamed, so a reader sees the old or the new one.
func (f *fetcher) writeRef(name string, t *Tree) error {
	b, err := json.MarshalIndent(ref{Key: t.Key, Origin: t.Origin, SHA256: t.SHA256}, "", "\t")
	if err != nil {
		return err
	}
	p := f.refPath(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".ref-")
	if err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
