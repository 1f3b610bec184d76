package ksrc

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// SourceDirEnv names a directory of local kernel tarballs that --kernel
// X.Y looks in before kernel.org (wgbuild's --source-dir).
const SourceDirEnv = "WGKIT_KERNEL_SOURCES"

// localName matches the tarballs a source directory may hold:
// linux-5.6.4.tar.xz, linux-6.6.tar.gz, linux-7.0-rc3.tar.zst.
var localName = regexp.MustCompile(`^linux-(\d+\.\d+(?:\.\d+)?)(-rc\d+)?\.tar(?:\.(?:xz|gz|bz2|zst))?$`)

// LocalTarball is a kernel tarball found in a source directory.
type LocalTarball struct {
	Path    string
	Version Version // from the name; the tree's Makefile has the last word
}

// ScanSourceDir lists the kernel tarballs in dir, newest first. Files that
// are not named linux-X.Y[.Z].tar[.xz|.gz|.bz2|.zst] are ignored.
func ScanSourceDir(dir string) ([]LocalTarball, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("kernel source directory (--source-dir, $%s): %w", SourceDirEnv, err)
	}
	var ts []LocalTarball
	for _, e := range ents {
		m := localName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		v, err := ParseVersion(m[1])
		if err != nil {
			continue
		}
		ts = append(ts, LocalTarball{Path: dir + string(os.PathSeparator) + e.Name(), Version: v})
	}
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].Version.newer(ts[j].Version) })
	return ts, nil
}

// newer orders releases: 6.1.10 > 6.1.9 > 6.1 (a bare series is x.y.0).
func (v Version) newer(w Version) bool {
	if v.Major != w.Major {
		return v.Major > w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor > w.Minor
	}
	return max(v.Patch, 0) > max(w.Patch, 0)
}

// pickLocal returns the newest tarball of ts that answers want, or nil.
func pickLocal(ts []LocalTarball, want Version) *LocalTarball {
	for i := range ts {
		if want.Matches(ts[i].Version.String()) {
			return &ts[i]
		}
	}
	return nil
}

// fromSourceDir unpacks the tarball of SourceDir that answers want into
// the cache; found is false if there is none.
func (f *fetcher) fromSourceDir(ctx context.Context, want Version) (t *Tree, found bool, err error) {
	ts, err := ScanSourceDir(f.SourceDir)
	if err != nil {
		return nil, false, err
	}
	lt := pickLocal(ts, want)
	if lt == nil {
		var have []string
		for _, t := range ts {
			have = append(have, t.Version.String())
		}
		f.progress("kernel %s: not in %s (it has %s)", want, f.SourceDir, orNone(have))
		return nil, false, nil
	}
	f.progress("kernel %s: local tarball %s", want, lt.Path)
	lf := *f
	lf.Source = lt.Path
	t, err = lf.local(ctx, want)
	if err != nil {
		return nil, true, err
	}
	t.Origin = "local tarball " + lt.Path
	return t, true, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no kernel tarballs"
	}
	return strings.Join(s, ", ")
}
