package initramfs

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
	"github.com/u-root/u-root/pkg/ldd"
	"github.com/wgkit/wgkit/initramfs/manifest"
)

// Overlay is the part of the image that changes from run to run. It is
// written directly (no Go compile) as a cpio archive that goes after the
// base archive; the kernel unpacks concatenated archives in order.
type Overlay struct {
	rec   []cpio.Record
	dirs  map[string]bool
	files map[string]bool
}

// NewOverlay returns an empty overlay.
func NewOverlay() *Overlay {
	return &Overlay{dirs: map[string]bool{}, files: map[string]bool{}}
}

func clean(guest string) string {
	return strings.TrimPrefix(path.Clean("/"+guest), "/")
}

// mkdirAll adds directory records for guest path p and its parents. Paths
// the base archive already has are added too: the kernel keeps existing
// directories, so only their mode (always 0755 here) is applied again.
func (o *Overlay) mkdirAll(p string) {
	p = clean(p)
	if p == "" || p == "." || o.dirs[p] {
		return
	}
	o.mkdirAll(path.Dir(p))
	o.dirs[p] = true
	o.rec = append(o.rec, cpio.Directory(p, 0o755))
}

// AddBytes adds a file with the given contents and permissions.
func (o *Overlay) AddBytes(guest string, data []byte, perm os.FileMode) error {
	g := clean(guest)
	if o.files[g] {
		return fmt.Errorf("initramfs: %s added twice", guest)
	}
	o.mkdirAll(path.Dir(g))
	o.files[g] = true
	o.rec = append(o.rec, cpio.StaticRecord(data, cpio.Info{
		Name:  g,
		Mode:  cpio.S_IFREG | uint64(perm.Perm()),
		NLink: 1,
	}))
	return nil
}

// AddSymlink adds a symbolic link at a guest path.
func (o *Overlay) AddSymlink(guest, target string) error {
	g := clean(guest)
	if o.files[g] {
		return fmt.Errorf("initramfs: %s added twice", guest)
	}
	o.mkdirAll(path.Dir(g))
	o.files[g] = true
	o.rec = append(o.rec, cpio.Symlink(g, target))
	return nil
}

// AddLibraries adds the regular files of a host directory that match
// pattern (filepath.Match), such as plugins a program opens at run time,
// each with the shared libraries it needs, at the same guest path.
func (o *Overlay) AddLibraries(dir, pattern string) (int, error) {
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return 0, fmt.Errorf("initramfs: %w", err)
	}
	if len(files) == 0 {
		return 0, fmt.Errorf("initramfs: no %s in %s", pattern, dir)
	}
	n := 0
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() || o.files[clean(f)] {
			continue
		}
		if err := o.AddExecutable(f, f); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// AddFile adds a host file (symlinks followed) at a guest path, keeping its
// permissions.
func (o *Overlay) AddFile(host, guest string) error {
	fi, err := os.Stat(host)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	b, err := os.ReadFile(host)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return o.AddBytes(guest, b, fi.Mode())
}

// AddExecutable adds a host ELF executable at a guest path with the shared
// libraries and the dynamic loader it needs, each at the path the host
// loader found it (e.g. /lib64/ld-linux-x86-64.so.2,
// /lib/x86_64-linux-gnu/libc.so.6). Static binaries add only themselves.
func (o *Overlay) AddExecutable(host, guest string) error {
	if err := o.AddFile(host, guest); err != nil {
		return err
	}
	libs, err := ldd.List(host)
	if err != nil {
		return fmt.Errorf("initramfs: finding the libraries of %s: %w", host, err)
	}
	sort.Strings(libs)
	for _, l := range libs {
		if l == host || o.files[clean(l)] {
			continue
		}
		if err := o.AddFile(l, l); err != nil {
			return err
		}
	}
	return nil
}

// AddModules adds kernel modules, decompressed, under manifest.ModulesDir,
// and returns their manifest entries in the same order.
func (o *Overlay) AddModules(mods []*Module) ([]manifest.Module, error) {
	var out []manifest.Module
	var order strings.Builder
	for _, m := range mods {
		b, err := ReadModuleFile(m.Path)
		if err != nil {
			return nil, err
		}
		g := path.Join(manifest.ModulesDir, m.Name+".ko")
		if err := o.AddBytes(g, b, 0o644); err != nil {
			return nil, err
		}
		out = append(out, manifest.Module{Name: m.Name, Path: g})
		fmt.Fprintln(&order, g)
	}
	if err := o.AddBytes(manifest.ModulesList, []byte(order.String()), 0o644); err != nil {
		return nil, err
	}
	return out, nil
}

// AddManifest adds the manifest.
func (o *Overlay) AddManifest(m *manifest.Manifest) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return o.AddBytes(manifest.Path, b, 0o644)
}

// WriteTo writes the overlay as a newc cpio archive with a trailer.
func (o *Overlay) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	rw := cpio.Newc.Writer(cw)
	if err := cpio.WriteRecords(rw, o.rec); err != nil {
		return cw.n, fmt.Errorf("initramfs: writing overlay: %w", err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return cw.n, fmt.Errorf("initramfs: writing overlay: %w", err)
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Concat writes the image the kernel boots: the base archive, then each
// overlay written to out. The result is what QEMU's -initrd takes.
func Concat(out string, base string, overlays ...*Overlay) error {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	in, err := os.Open(base)
	if err != nil {
		f.Close()
		return fmt.Errorf("initramfs: %w", err)
	}
	_, err = io.Copy(f, in)
	in.Close()
	if err == nil {
		// newc archives are 4-byte aligned; the kernel also skips zero
		// padding between concatenated archives.
		for _, o := range overlays {
			if _, err = o.WriteTo(f); err != nil {
				break
			}
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return fmt.Errorf("initramfs: writing %s: %w", filepath.Base(out), err)
	}
	return nil
}
