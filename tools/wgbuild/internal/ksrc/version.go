package ksrc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A Version is a kernel version as a user asks for it: a series (6.12) or
// an exact release (6.12.117).
type Version struct {
	Major, Minor int
	// Patch is the stable release number (SUBLEVEL); -1 when only the
	// series was asked for.
	Patch int
}

// ParseVersion parses "X.Y" or "X.Y.Z" (a leading "v" is allowed).
func ParseVersion(s string) (Version, error) {
	bad := func(why string) (Version, error) {
		return Version{}, fmt.Errorf("kernel version %q %s: give X.Y (a series, e.g. 6.12) or X.Y.Z (an exact release, e.g. 6.1.192)", s, why)
	}
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("is not a version")
	}
	var n [3]int
	n[2] = -1
	for i, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" || len(p) > 1 && p[0] == '0' {
			return bad("is not a version")
		}
		v, err := strconv.Atoi(p)
		if err != nil {
			return bad("is not a version")
		}
		n[i] = v
	}
	if n[0] < 3 {
		return bad("is too old (kernels before 3.0 are not supported)")
	}
	return Version{Major: n[0], Minor: n[1], Patch: n[2]}, nil
}

// Series is "X.Y".
func (v Version) Series() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Exact reports whether a stable release number was given.
func (v Version) Exact() bool { return v.Patch >= 0 }

// String is "X.Y" or "X.Y.Z".
func (v Version) String() string {
	if !v.Exact() {
		return v.Series()
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Matches reports whether the release got (as ReadMakefileVersion returns
// it) satisfies the request v: same series and, if v is exact, same
// release. A release's .0 is "X.Y" in kernel.org's names but SUBLEVEL = 0
// in its Makefile; both match X.Y.0.
func (v Version) Matches(got string) bool {
	// "6.1.192-rt", or Debian's "7.3~rc7" of a release candidate.
	got, _, _ = strings.Cut(got, "-")
	got, _, _ = strings.Cut(got, "~")
	g, err := ParseVersion(got)
	if err != nil || g.Series() != v.Series() {
		return false
	}
	if !v.Exact() {
		return true
	}
	return max(g.Patch, 0) == v.Patch
}

// ReadMakefileVersion returns the release of the kernel tree dir from the
// VERSION, PATCHLEVEL, SUBLEVEL and EXTRAVERSION lines at the top of its
// Makefile: "6.12.117", "6.13.0-rc3". SUBLEVEL 0 is kept ("6.1.0") so that
// every release has three numbers.
func ReadMakefileVersion(dir string) (string, error) {
	p := filepath.Join(dir, "Makefile")
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("%s is not a kernel source tree: %w", dir, err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	// The variables are in the first lines; stop long before the rules.
	for i := 0; i < 20 && sc.Scan(); i++ {
		name, value, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		switch name {
		case "VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION":
			vars[name] = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	var nums []string
	for _, name := range []string{"VERSION", "PATCHLEVEL", "SUBLEVEL"} {
		v := vars[name]
		if _, err := strconv.Atoi(v); err != nil {
			return "", fmt.Errorf("%s has no numeric %s line near the top: is %s a kernel source tree?", p, name, dir)
		}
		nums = append(nums, v)
	}
	return strings.Join(nums, ".") + vars["EXTRAVERSION"], nil
}
