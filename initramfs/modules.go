package initramfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// A Module is a kernel module ready to go into the image.
type Module struct {
	// Name is the module's name as the kernel knows it (modinfo name=,
	// with '-' folded to '_').
	Name string
	// Path is the host file, possibly compressed (.ko.xz, .ko.zst, .ko.gz).
	Path string
	// Depends are the names of the modules this one needs (modinfo depends=).
	Depends []string
}

// ModName folds a module or file name the way the kernel does: without
// directory and .ko[.xz|.zst|.gz] suffix, with '-' turned into '_'.
func ModName(s string) string {
	s = filepath.Base(s)
	for _, suf := range []string{".xz", ".zst", ".gz"} {
		s = strings.TrimSuffix(s, suf)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// ReadModuleFile returns a module file's contents, decompressed.
func ReadModuleFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".xz"):
		r, err = xz.NewReader(bytes.NewReader(b))
	case strings.HasSuffix(path, ".zst"):
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(b))
		if err == nil {
			defer d.Close()
			r = d
		}
	case strings.HasSuffix(path, ".gz"):
		r, err = gzip.NewReader(bytes.NewReader(b))
	default:
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", path, err)
	}
	return out, nil
}

// ModInfo returns the key=value pairs of an ELF module's .modinfo section.
// Keys that repeat (alias=, parm=) keep their last value.
func ModInfo(ko []byte) (map[string]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("not an ELF kernel module: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section: not a kernel module")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo: %w", err)
	}
	return parseModInfo(data), nil
}

func parseModInfo(data []byte) map[string]string {
	info := map[string]string{}
	for _, field := range bytes.Split(data, []byte{0}) {
		if k, v, ok := strings.Cut(string(field), "="); ok && k != "" {
			info[k] = v
		}
	}
	return info
}

// LoadModule reads a module file's name and dependencies.
func LoadModule(path string) (*Module, error) {
	b, err := ReadModuleFile(path)
	if err != nil {
		return nil, err
	}
	info, err := ModInfo(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m := &Module{Name: ModName(path), Path: path}
	if n := info["name"]; n != "" {
		m.Name = ModName(n)
	}
	for _, d := range strings.Split(info["depends"], ",") {
		if d = strings.TrimSpace(d); d != "" {
			m.Depends = append(m.Depends, ModName(d))
		}
	}
	return m, nil
}

// ModuleIndex locates a kernel's modules by name, from modules.dep and
// modules.builtin in its /lib/modules/<release> directory.
type ModuleIndex struct {
	Dir     string
	paths   map[string]string // name -> absolute path
	builtin map[string]bool
}

// OpenModuleIndex reads dir/modules.dep and dir/modules.builtin.
func OpenModuleIndex(dir string) (*ModuleIndex, error) {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("reading the kernel's module index: %w (reinstall the kernel package, or run depmod)", err)
	}
	defer f.Close()
	idx := &ModuleIndex{Dir: dir, paths: map[string]string{}, builtin: map[string]bool{}}
	if err := idx.parseDep(f); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				idx.builtin[ModName(l)] = true
			}
		}
	}
	return idx, nil
}

func (idx *ModuleIndex) parseDep(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		mod, _, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		p := mod
		if !filepath.IsAbs(p) {
			p = filepath.Join(idx.Dir, p)
		}
		idx.paths[ModName(mod)] = p
	}
	return sc.Err()
}

// Lookup returns the path of a module by name.
func (idx *ModuleIndex) Lookup(name string) (string, bool) {
	p, ok := idx.paths[ModName(name)]
	return p, ok
}

// Builtin reports whether a module is built into the kernel.
func (idx *ModuleIndex) Builtin(name string) bool {
	return idx.builtin[ModName(name)]
}

// Resolve returns modules in an order the kernel can load them in: every
// module after the modules it depends on. It starts from the named modules
// (looked up in the index; built-in ones are skipped) and module files (such
// as our out-of-tree wireguard.ko), in that order, and pulls in their
// dependencies, recursively, from the index. A name may list alternatives,
// "pvpanic_mmio|pvpanic": the first that the kernel has is taken, for a
// module that was renamed or split between kernel versions.
func (idx *ModuleIndex) Resolve(names []string, files []string) ([]*Module, error) {
	return idx.resolve(names, files, LoadModule)
}

func (idx *ModuleIndex) resolve(names, files []string, load func(string) (*Module, error)) ([]*Module, error) {
	r := resolver{idx: idx, state: map[string]int{}, load: load}
	for _, alts := range names {
		p, builtin, err := idx.pick(alts)
		if err != nil {
			return nil, err
		}
		if builtin {
			continue
		}
		if err := r.visitPath(p, nil); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if err := r.visitPath(f, nil); err != nil {
			return nil, err
		}
	}
	return r.order, nil
}

// pick returns the first of the alternatives a|b|c that is a module of the
// index (its path) or built in.
func (idx *ModuleIndex) pick(alts string) (path string, builtin bool, err error) {
	for _, n := range strings.Split(alts, "|") {
		n = ModName(n)
		if idx.Builtin(n) {
			return "", true, nil
		}
		if p, ok := idx.Lookup(n); ok {
			return p, false, nil
		}
	}
	return "", false, fmt.Errorf("kernel module %s is neither in %s nor built in", strings.ReplaceAll(alts, "|", " or "), filepath.Join(idx.Dir, "modules.dep"))
}

type resolver struct {
	idx   *ModuleIndex
	state map[string]int // 1: visiting, 2: done
	order []*Module
	load  func(path string) (*Module, error)
}

func (r *resolver) visitPath(path string, chain []string) error {
	m, err := r.load(path)
	if err != nil {
		return err
	}
	return r.visit(m, chain)
}

func (r *resolver) visit(m *Module, chain []string) error {
	switch r.state[m.Name] {
	case 2:
		return nil
	case 1:
		return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(chain, " -> "), m.Name)
	}
	r.state[m.Name] = 1
	chain = append(chain, m.Name)
	for _, d := range m.Depends {
		if r.state[d] == 2 {
			continue
		}
		p, ok := r.idx.Lookup(d)
		if !ok {
			if r.idx.Builtin(d) {
				continue
			}
			return fmt.Errorf("module %s depends on %s, which kernel modules in %s do not have", m.Name, d, r.idx.Dir)
		}
		if err := r.visitPath(p, chain); err != nil {
			return err
		}
	}
	r.state[m.Name] = 2
	r.order = append(r.order, m)
	return nil
}
