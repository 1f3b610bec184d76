// Package dkms packages the driver for DKMS: it generates a DKMS source
// tree from kernel/ (the driver's sources, dkms.conf, a build wrapper and a
// POSIX sh port of the compat probes, so that the build needs no Go), and
// drives Debian's dkms to add, build, install and remove it, on the real
// system or in private trees for the tests.
package dkms

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/compat"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
)

// PackageName is the DKMS package name. It is not "wireguard": Debian's
// wireguard-dkms (buster and bullseye, from wireguard-linux-compat)
// registered the DKMS module "wireguard" with its sources in
// /usr/src/wireguard-<version>, and a machine may still have it. The module
// built and installed is still wireguard.ko (ModuleName).
const PackageName = "wgkit-wireguard"

// ModuleName is the kernel module DKMS builds and installs.
const ModuleName = kbuild.ModuleName

// DestModuleLocation is where DKMS installs the module under
// /lib/modules/<release>. Debian's dkms uses updates/dkms whatever
// dkms.conf says; depmod searches updates/ before the kernel's own
// modules, so ours wins over the distribution's wireguard.ko.
const DestModuleLocation = "/updates/dkms"

// MakeScriptName is the build wrapper DKMS runs (MAKE[0]).
const MakeScriptName = "dkms-make.sh"

// Kernels is the range of kernels the driver supports: it is written for
// 7.3's API, and the compat probes take it back to 5.6, the first kernel
// with WireGuard (wgbuild matrix builds and tests 5.6, 5.10, 6.1, 6.12, 7.2
// and 7.3). DKMS skips other kernels ("not applicable", exit 77) instead of
// failing to build.
var Kernels = KernelRange{Min: Version{5, 6}, Max: Version{7, 3}}

// Arch is the only architecture the compat probes look at
// (arch/x86/include).
const Arch = "x86_64"

// RequiredConfig are the kernel options whose symbols the module imports.
// DKMS skips a kernel whose .config lacks one (BUILD_EXCLUSIVE_CONFIG).
var RequiredConfig = []string{
	"CONFIG_NET_UDP_TUNNEL", "CONFIG_DST_CACHE", "CONFIG_GRO_CELLS",
	"CONFIG_CRYPTO_LIB_CHACHA20POLY1305", "CONFIG_CRYPTO_LIB_CURVE25519",
}

// Tree is a DKMS source tree to write.
type Tree struct {
	Name    string // PackageName unless a test needs another
	Version string // from kernel/version.h
	Sources []kbuild.Source
}

var versionRe = regexp.MustCompile(`(?m)^#define\s+WIREGUARD_VERSION\s+"([^"]+)"`)

// ReadVersion returns the driver's version, WIREGUARD_VERSION in
// srcDir/version.h: what MODULE_VERSION puts in the module, and so
// PACKAGE_VERSION.
func ReadVersion(srcDir string) (string, error) {
	p := filepath.Join(srcDir, "version.h")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("reading the driver's version: %w", err)
	}
	m := versionRe.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s has no #define WIREGUARD_VERSION \"x.y.z\"", p)
	}
	v := string(m[1])
	if !regexp.MustCompile(`^[0-9][0-9A-Za-z.+~-]*$`).MatchString(v) {
		return "", fmt.Errorf("%s: WIREGUARD_VERSION %q is not a usable DKMS version (digits, letters, . + ~ -)", p, v)
	}
	return v, nil
}

// NewTree reads the driver in srcDir (the repository's kernel/).
func NewTree(srcDir string) (*Tree, error) {
	v, err := ReadVersion(srcDir)
	if err != nil {
		return nil, err
	}
	src, err := kbuild.Sources(srcDir)
	if err != nil {
		return nil, err
	}
	return &Tree{Name: PackageName, Version: v, Sources: src}, nil
}

// Files returns the tree's files by slash-separated path, with their modes.
func (t *Tree) Files() (map[string]File, error) {
	files := map[string]File{}
	for _, s := range t.Sources {
		for _, gen := range []string{"dkms.conf", MakeScriptName, CompatScriptName, "compat"} {
			if s.Rel == gen || strings.HasPrefix(s.Rel, gen+"/") {
				return nil, fmt.Errorf("the driver sources have %s, which the DKMS tree generates: rename it", s.Rel)
			}
		}
		files[s.Rel] = File{Mode: s.Mode | 0o200, Data: s.Data}
	}
	conf, err := t.Conf()
	if err != nil {
		return nil, err
	}
	files["dkms.conf"] = File{Mode: 0o644, Data: conf}
	mk, err := t.MakeScript()
	if err != nil {
		return nil, err
	}
	files[MakeScriptName] = File{Mode: 0o755, Data: mk}
	sh, err := CompatScript(compat.Probes, compat.Preamble)
	if err != nil {
		return nil, err
	}
	files[CompatScriptName] = File{Mode: 0o755, Data: sh}
	return files, nil
}

// File is one file of a generated tree.
type File struct {
	Mode os.FileMode
	Data []byte
}

// Write writes the tree into dir, which must not exist: it is made in a
// temporary directory next to it and renamed into place, so a failure
// never leaves half a tree where DKMS looks.
func (t *Tree) Write(dir string) error {
	files, err := t.Files()
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("%s already exists", dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for rel, f := range files {
		p := filepath.Join(tmp, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

//go:embed dkms.conf.tmpl
var confTmpl string

//go:embed dkms-make.sh.tmpl
var makeTmpl string

// firstErrorEREs are the patterns the build wrapper looks for in a failed
// build's log, in order: kbuild.FirstError's.
var firstErrorEREs = []*regexp.Regexp{
	regexp.MustCompile(`^(\S+?):(\d+):(?:(\d+):)? (?:fatal )?error: `),
	regexp.MustCompile(`^(?:ERROR: |make\[\d+\]: \*\*\* No rule|.*: undefined reference|.*Error: )`),
	regexp.MustCompile(`^compat\.sh: `),
}

func (t *Tree) data() (map[string]any, error) {
	var eres []string
	for _, re := range firstErrorEREs {
		s, err := ToERE(re, PerLine)
		if err != nil {
			return nil, err
		}
		eres = append(eres, shq(s))
	}
	cfg := strings.Join(RequiredConfig, " ")
	return map[string]any{
		"Name":         t.Name,
		"Version":      t.Version,
		"Module":       ModuleName,
		"Dest":         DestModuleLocation,
		"Make":         MakeScriptName,
		"Compat":       CompatScriptName,
		"KernelRE":     Kernels.Regexp(),
		"Kernels":      Kernels.String(),
		"Arch":         Arch,
		"Config":       cfg,
		"ErrorEREs":    eres,
		"CompatHeader": "compat/compat.h",
		"StubDir":      compat.StubDir,
	}, nil
}

func (t *Tree) render(name, text string) ([]byte, error) {
	d, err := t.data()
	if err != nil {
		return nil, err
	}
	tm, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tm.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Conf returns dkms.conf.
func (t *Tree) Conf() ([]byte, error) {
	if t.Name == "" || t.Version == "" {
		return nil, errors.New("dkms: the tree needs a name and a version")
	}
	return t.render("dkms.conf", confTmpl)
}

// MakeScript returns the build wrapper.
func (t *Tree) MakeScript() ([]byte, error) { return t.render(MakeScriptName, makeTmpl) }
