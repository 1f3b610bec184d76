// Package kbuild finds installed kernel headers and builds the driver out of
// tree against them, DKMS-style, through wgbuild's artifact cache.
package kbuild

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Kernel describes one installed distribution kernel: its release string,
// its build (headers) directory, its modules and its bootable image.
type Kernel struct {
	Release    string // e.g. 6.1.0-56-amd64
	BuildDir   string // the headers: what /lib/modules/<release>/build points to
	ModulesDir string // /lib/modules/<release>
	Image      string // /boot/vmlinuz-<release>
	// LLVM is the make variable LLVM the kernel was built with ("" for
	// gcc): modules must be built with the same toolchain.
	LLVM string
}

// HeadersAuto asks FindKernel for the newest kernel that has headers.
const HeadersAuto = "auto"

// FindKernel resolves --headers. spec is "auto" (the newest kernel under
// root/lib/modules that has both a build directory and root/boot/vmlinuz-*),
// or a headers directory such as /lib/modules/<release>/build or
// /usr/src/linux-headers-<release>. root is "/" except in tests.
func FindKernel(root, spec string) (*Kernel, error) {
	if spec == "" || spec == HeadersAuto {
		return findAuto(root)
	}
	return fromHeadersDir(root, spec)
}

func findAuto(root string) (*Kernel, error) {
	modRoot := filepath.Join(root, "lib", "modules")
	ents, _ := os.ReadDir(modRoot)
	var withHeaders, withoutHeaders []string
	for _, e := range ents {
		rel := e.Name()
		if !exists(filepath.Join(root, "boot", "vmlinuz-"+rel)) {
			continue
		}
		if exists(filepath.Join(modRoot, rel, "build", "Makefile")) {
			withHeaders = append(withHeaders, rel)
		} else {
			withoutHeaders = append(withoutHeaders, rel)
		}
	}
	if len(withHeaders) == 0 {
		if len(withoutHeaders) > 0 {
			sortVersions(withoutHeaders)
			rel := withoutHeaders[len(withoutHeaders)-1]
			return nil, fmt.Errorf("kernel %s is installed but has no headers (%s is missing): run `apt-get install linux-headers-%s` (or `wgbuild deps`)",
				rel, filepath.Join(modRoot, rel, "build"), rel)
		}
		return nil, errors.New("no bootable distribution kernel with headers found (need /boot/vmlinuz-<ver> and /lib/modules/<ver>/build; the running kernel does not count): run `apt-get install linux-image-amd64 linux-headers-amd64` (or `wgbuild deps`)")
	}
	sortVersions(withHeaders)
	rel := withHeaders[len(withHeaders)-1]
	return kernelFor(root, rel, filepath.Join(modRoot, rel, "build"))
}

func fromHeadersDir(root, dir string) (*Kernel, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if !exists(filepath.Join(abs, "Makefile")) {
		return nil, fmt.Errorf("--headers %s: not a kernel headers directory (no Makefile); pass --headers auto or a directory like /lib/modules/<ver>/build, installed by `apt-get install linux-headers-<ver>`", dir)
	}
	rel, err := releaseOf(abs)
	if err != nil {
		return nil, fmt.Errorf("--headers %s: %w", dir, err)
	}
	return kernelFor(root, rel, abs)
}

func kernelFor(root, rel, buildDir string) (*Kernel, error) {
	k := &Kernel{
		Release:    rel,
		BuildDir:   buildDir,
		ModulesDir: filepath.Join(root, "lib", "modules", rel),
		Image:      filepath.Join(root, "boot", "vmlinuz-"+rel),
	}
	for _, f := range []string{"Module.symvers", "include/generated/autoconf.h"} {
		if !exists(filepath.Join(buildDir, f)) {
			return nil, fmt.Errorf("headers %s are incomplete (no %s): reinstall them with `apt-get install --reinstall linux-headers-%s`", buildDir, f, rel)
		}
	}
	return k, nil
}

var utsRelease = regexp.MustCompile(`#define UTS_RELEASE "([^"]+)"`)

// releaseOf reads the kernel release a headers directory was made for.
// Debian's include/config/kernel.release holds the upstream version, so the
// UTS_RELEASE define (what uname -r says) is preferred.
func releaseOf(buildDir string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(buildDir, "include", "generated", "utsrelease.h")); err == nil {
		if m := utsRelease.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
	}
	if b, err := os.ReadFile(filepath.Join(buildDir, "include", "config", "kernel.release")); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	}
	return "", errors.New("cannot tell which kernel release these headers are for (no include/generated/utsrelease.h); were they prepared with `make modules_prepare`?")
}

// sortVersions sorts kernel release strings in ascending version order,
// comparing digit runs numerically (6.1.0-56 < 6.1.0-100 < 6.12.0-1).
func sortVersions(vs []string) {
	sort.SliceStable(vs, func(i, j int) bool { return compareVersions(vs[i], vs[j]) < 0 })
}

var versionParts = regexp.MustCompile(`\d+|\D+`)

func compareVersions(a, b string) int {
	pa, pb := versionParts.FindAllString(a, -1), versionParts.FindAllString(b, -1)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, errA := strconv.Atoi(pa[i])
		nb, errB := strconv.Atoi(pb[i])
		switch {
		case errA == nil && errB == nil:
			if na != nb {
				if na < nb {
					return -1
				}
				return 1
			}
		case pa[i] != pb[i]:
			return strings.Compare(pa[i], pb[i])
		}
	}
	return len(pa) - len(pb)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// UpstreamModule returns the distribution kernel's own wireguard.ko, the
// reference implementation our driver is tested against.
func (k *Kernel) UpstreamModule() (string, error) {
	p := filepath.Join(k.ModulesDir, "kernel", "drivers", "net", "wireguard", "wireguard.ko")
	if !exists(p) {
		return "", fmt.Errorf("kernel %s has no upstream wireguard module at %s: reinstall it with `apt-get install --reinstall linux-image-%s`", k.Release, p, k.Release)
	}
	return p, nil
}
