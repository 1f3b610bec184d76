package ksrc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// kindDebSrc is the cache kind of unpacked Debian source packages.
const kindDebSrc = "debsrc"

// DebianSourcePackage unpacks the newest version of Debian source package
// pkg in suite into the cache, Debian's patches applied (apt-get source,
// which checks every file against the signed index), and returns the
// directory of the unpacked tree and the version. It uses a private apt
// configuration with deb-src lines, as for linux-source: the system's apt
// state is untouched. The unpacked tree is cached by the SHA-256 of the
// .dsc that the index gives.
func DebianSourcePackage(ctx context.Context, opts Options, suite, pkg string) (dir, version string, err error) {
	f, cfg, unlock, err := privateApt(opts, suite, true)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	if err := cfg.Setup(); err != nil {
		return "", "", err
	}
	if err := f.Apt.Update(ctx, cfg); err != nil {
		return "", "", err
	}
	sys := &SystemApt{}
	out, err := sys.run(ctx, "", "apt-cache showsrc "+pkg, "apt-cache", append(append([]string{"-q"}, cfg.Options()...), "showsrc", pkg)...)
	if err != nil {
		return "", "", fmt.Errorf("%s %s has no source package %s: %w", cfg.Archive, suite, pkg, err)
	}
	srcs := ParseSources(out)
	if len(srcs) == 0 {
		return "", "", fmt.Errorf("apt-cache showsrc %s: no version with a .dsc checksum in its output", pkg)
	}
	p := srcs[0]
	key := cache.NewKey(kindDebSrc)
	key.AddString("dsc-sha256", p.SHA256)
	entry, hit, err := f.Cache.Get(kindDebSrc, key.Sum(), func(out string) error {
		f.progress("downloading and unpacking Debian's source package %s %s from %s", pkg, p.Version, suite)
		spec := pkg + "=" + p.Version
		if _, err := sys.run(ctx, out, "apt-get source "+spec, "apt-get", append(append([]string{"-q"}, cfg.Options()...), "source", spec)...); err != nil {
			return err
		}
		if _, err := treeOf(out); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	if hit {
		f.progress("Debian's source package %s %s (%s): cached", pkg, p.Version, suite)
	}
	tree, err := treeOf(entry)
	if err != nil {
		return "", "", err
	}
	return tree, p.Version, nil
}

// treeOf is the one directory apt-get source unpacked into dir.
func treeOf(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) != 1 {
		return "", fmt.Errorf("apt-get source left %d directories in %s, want 1 (is dpkg-dev installed?)", len(dirs), dir)
	}
	return filepath.Join(dir, dirs[0]), nil
}

// ParseSources parses apt-cache showsrc's output: one stanza per version,
// SHA256 being the .dsc's (from Checksums-Sha256). Stanzas without one are
// left out.
func ParseSources(out []byte) []*Package {
	var ps []*Package
	p := &Package{}
	inSums := false
	flush := func() {
		if p.Name != "" && p.Version != "" && p.SHA256 != "" {
			ps = append(ps, p)
		}
		p, inSums = &Package{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if f := strings.Fields(line); inSums && len(f) == 3 && strings.HasSuffix(f[2], ".dsc") {
				p.SHA256 = strings.ToLower(f[0])
				p.Filename = f[2]
			}
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		inSums = k == "Checksums-Sha256"
		switch k {
		case "Package":
			p.Name = v
		case "Version":
			p.Version = v
		}
	}
	flush()
	return ps
}
