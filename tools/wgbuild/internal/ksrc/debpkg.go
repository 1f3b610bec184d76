package ksrc

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// kindDebPkg is the cache kind of unpacked Debian binary packages.
const kindDebPkg = "debpkg"

// DebianPackage unpacks the newest version of Debian binary package pkg
// in suite into the cache and returns the directory its files are under
// (usr/bin/wg of wireguard-tools is dir/usr/bin/wg) and the version. It
// uses the system's apt on a private configuration, as for linux-source:
// the system's apt state is untouched. The index is asked every time (a
// second of apt-get update); the unpacked package is cached by the
// SHA-256 the index gives, which the download is checked against.
func DebianPackage(ctx context.Context, opts Options, suite, pkg string) (dir, version string, err error) {
	f, cfg, unlock, err := privateApt(opts, suite, false)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	all, err := f.aptIndex(ctx, cfg, pkg)
	if err != nil {
		return "", "", err
	}
	if len(all) == 0 {
		return "", "", fmt.Errorf("the Debian archive (%s %s) has no package %s", cfg.Archive, suite, pkg)
	}
	p := all[0] // apt-cache show lists the newest first
	if p.SHA256 == "" {
		return "", "", fmt.Errorf("the %s index gives no SHA-256 for %s %s: cannot check a download", suite, pkg, p.Version)
	}
	key := cache.NewKey(kindDebPkg)
	key.AddString("deb-sha256", p.SHA256)
	dir, hit, err := f.Cache.Get(kindDebPkg, key.Sum(), func(out string) error {
		tmp, err := f.Cache.TempDir("deb")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		f.progress("downloading Debian's %s %s from %s (%s)", pkg, p.Version, suite, megabytes(p.Size))
		deb, err := f.Apt.Download(ctx, cfg, p, tmp)
		if err != nil {
			return err
		}
		sum, err := cache.FileSHA256(deb)
		if err != nil {
			return err
		}
		if sum != p.SHA256 {
			return fmt.Errorf("%s: SHA-256 is %s, but the package index says %s: the download is corrupt; nothing was cached, run again", filepath.Base(deb), sum, p.SHA256)
		}
		rc, err := f.Apt.DataTar(ctx, deb)
		if err != nil {
			return err
		}
		if err := untarFiles(rc, out); err != nil {
			rc.Close()
			return fmt.Errorf("%s: %w", filepath.Base(deb), err)
		}
		return rc.Close()
	})
	if err != nil {
		return "", "", err
	}
	if hit {
		f.progress("Debian's %s %s (%s): cached", pkg, p.Version, suite)
	}
	return dir, p.Version, nil
}

// privateApt is the fetcher of opts and the private apt configuration of
// suite (of its source packages when source is set), locked against other
// runs of the same configuration until unlock is called.
func privateApt(opts Options, suite string, source bool) (f *fetcher, cfg *AptConfig, unlock func(), err error) {
	if opts.Cache == nil {
		return nil, nil, nil, errors.New("ksrc: no cache")
	}
	f = &fetcher{Options: withDefaults(opts)}
	if cfg, err = f.aptConfig(suite); err != nil {
		return nil, nil, nil, err
	}
	lock := "apt-" + suite
	if source {
		cfg.Dir += "-src"
		cfg.Source = true
		lock += "-src"
	}
	if unlock, err = f.Cache.Lock(lock); err != nil {
		return nil, nil, nil, err
	}
	return f, cfg, unlock, nil
}

// untarFiles writes the directories, regular files and symbolic links of
// a package's data tar under dir. A name or link that would leave dir is
// an error, as is any other kind of entry.
func untarFiles(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the package's files: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("the package has a file outside its root: %q", h.Name)
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			w, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(h.Mode)&0o755)
			if err != nil {
				return err
			}
			if _, err := io.Copy(w, tr); err != nil {
				w.Close()
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			target := h.Linkname
			if path.IsAbs(target) {
				target = strings.TrimPrefix(path.Clean(target), "/")
			} else {
				target = path.Join(path.Dir(name), target)
			}
			if !filepath.IsLocal(target) {
				return fmt.Errorf("the package's link %q points outside its root: %q", h.Name, h.Linkname)
			}
			rel, err := filepath.Rel(filepath.Dir(p), filepath.Join(dir, target))
			if err != nil {
				return err
			}
			if err := os.Symlink(rel, p); err != nil {
				return err
			}
		case tar.TypeLink:
			target := path.Clean(strings.TrimPrefix(h.Linkname, "./"))
			if !filepath.IsLocal(target) {
				return fmt.Errorf("the package's hard link %q points outside its root: %q", h.Name, h.Linkname)
			}
			if err := os.Link(filepath.Join(dir, target), p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("the package has %q of tar type %q, which is not a file, directory or link", h.Name, h.Typeflag)
		}
	}
}
