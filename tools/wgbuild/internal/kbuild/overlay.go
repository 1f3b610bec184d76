package kbuild

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/compat"
)

// Overlay is what an in-tree build writes over a kernel source tree: the
// driver's files under drivers/net/wireguard (replacing upstream's), its
// uapi header, and its Kconfig entry spliced into drivers/net/Kconfig. For
// a tree older than the API the driver is written for, the generated compat
// header is added and force-included by the driver's Makefile: that part is
// wgbuild's, never the driver's or the patch series'.
type Overlay struct {
	// Files maps a path relative to the tree's root to its content.
	Files map[string][]byte
	// Compat lists the compat fallbacks in use ("" when none).
	Compat string
}

// DriverDir is where the driver sits in a kernel tree.
const DriverDir = "drivers/net/wireguard"

// uapiPath is where the driver's uapi header goes.
const uapiPath = "include/uapi/linux/wireguard.h"

// NewOverlay computes the overlay of the driver in srcDir, with the Kconfig
// entry in kconfigFile, for the kernel tree at tree.
func NewOverlay(srcDir, kconfigFile, tree string) (*Overlay, error) {
	files, err := readSources(srcDir)
	if err != nil {
		return nil, err
	}
	roots := []string{filepath.Join(tree, "include"), filepath.Join(tree, "arch", "x86", "include")}
	if files, err = editSources(files, roots, compat.Probes); err != nil {
		return nil, err
	}
	o := &Overlay{Files: map[string][]byte{}}
	for _, f := range files {
		o.Files[TreePath(f.rel)] = f.data
	}
	entry, err := os.ReadFile(kconfigFile)
	if err != nil {
		return nil, fmt.Errorf("reading the driver's Kconfig entry: %w", err)
	}
	entry = kconfigCompat(tree, entry)
	netKconfig := filepath.Join(tree, "drivers", "net", "Kconfig")
	orig, err := os.ReadFile(netKconfig)
	if err != nil {
		return nil, err
	}
	patched, err := SpliceKconfig(orig, entry)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", netKconfig, err)
	}
	o.Files["drivers/net/Kconfig"] = patched

	// Compat, only where the tree lacks an API the driver uses.
	missing, err := compat.Missing(roots, compat.Probes)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		h, err := compat.GenerateFrom(roots, compat.Probes, "")
		if err != nil {
			return nil, err
		}
		stubs, err := compat.StubsFrom(roots, compat.Probes)
		if err != nil {
			return nil, err
		}
		o.Files[path.Join(DriverDir, "compat", "compat.h")] = h
		for rel, data := range stubs {
			o.Files[path.Join(DriverDir, compat.StubDir, rel)] = data
		}
		mk := path.Join(DriverDir, "Makefile")
		// $(src) is relative to the source tree before 6.10, absolute
		// since.
		o.Files[mk] = append(slices.Clone(o.Files[mk]), []byte("\n# Added by wgbuild for an older kernel; not part of the driver.\n"+
			"wg-compat := $(if $(filter /%,$(src)),$(src),$(srctree)/$(src))/compat\n"+
			"ccflags-y += -include $(wg-compat)/compat.h"+map[bool]string{true: " -I$(wg-compat)/include", false: ""}[len(stubs) > 0]+"\n")...)
		o.Compat = strings.Join(missing, ", ")
	}
	return o, nil
}

// kconfigCompat adds to the driver's Kconfig entry the selects that an
// older tree needs: before 5.17 the BLAKE2s library was its own option.
func kconfigCompat(tree string, entry []byte) []byte {
	b, err := os.ReadFile(filepath.Join(tree, "lib", "crypto", "Kconfig"))
	if err != nil || !regexp.MustCompile(`(?m)^config CRYPTO_LIB_BLAKE2S\s*$`).Match(b) {
		return entry
	}
	return regexp.MustCompile(`(?m)^(\tselect NET_UDP_TUNNEL\n)`).ReplaceAll(entry, []byte("${1}\tselect CRYPTO_LIB_BLAKE2S\n"))
}

// SpliceKconfig replaces the WIREGUARD and WIREGUARD_DEBUG entries of
// drivers/net/Kconfig with entry. An entry runs from its "config" line to
// the next line that starts in the first column.
func SpliceKconfig(orig, entry []byte) ([]byte, error) {
	lines := strings.SplitAfter(string(orig), "\n")
	var out strings.Builder
	inserted, skipping := false, false
	for _, l := range lines {
		trim := strings.TrimRight(l, "\n")
		if trim == "config WIREGUARD" || trim == "config WIREGUARD_DEBUG" {
			skipping = true
			if !inserted {
				out.Write(bytes.TrimRight(entry, "\n"))
				out.WriteString("\n\n")
				inserted = true
			}
			continue
		}
		if skipping {
			if trim == "" || l[0] == '\t' || l[0] == ' ' {
				continue
			}
			skipping = false
		}
		out.WriteString(l)
	}
	if !inserted {
		return nil, errors.New("no \"config WIREGUARD\" entry to replace: in-tree builds need a kernel that has WireGuard (5.6 or newer)")
	}
	return []byte(out.String()), nil
}

// Apply writes the overlay into tree, which may share its files with a
// pristine tree through hard links: every file written is unlinked first,
// never modified in place. Files of drivers/net/wireguard that the overlay
// does not have (upstream's sources) are removed. It reports whether
// anything changed.
func (o *Overlay) Apply(tree string) (changed bool, err error) {
	keep := map[string]bool{}
	for rel := range o.Files {
		keep[rel] = true
	}
	drv := filepath.Join(tree, filepath.FromSlash(DriverDir))
	err = filepath.WalkDir(drv, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		if !keep[filepath.ToSlash(rel)] {
			changed = true
			return os.Remove(p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	for _, rel := range slices.Sorted(maps.Keys(o.Files)) {
		p := filepath.Join(tree, filepath.FromSlash(rel))
		if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, o.Files[rel]) {
			continue
		}
		changed = true
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return false, err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		if err := os.WriteFile(p, o.Files[rel], 0o644); err != nil {
			return false, err
		}
	}
	return changed, nil
}
