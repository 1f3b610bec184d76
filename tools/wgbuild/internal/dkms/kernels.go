package dkms

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a kernel's major.minor.
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

func (v Version) less(w Version) bool {
	return v.Major < w.Major || (v.Major == w.Major && v.Minor < w.Minor)
}

// KernelRange is an inclusive range of kernel versions.
type KernelRange struct{ Min, Max Version }

func (r KernelRange) String() string { return "Linux " + r.Min.String() + " to " + r.Max.String() }

var releaseRe = regexp.MustCompile(`^(\d+)\.(\d+)(?:[.+-]|$)`)

// ParseRelease returns the version of a kernel release such as
// 6.1.0-56-amd64.
func ParseRelease(release string) (Version, error) {
	m := releaseRe.FindStringSubmatch(release)
	if m == nil {
		return Version{}, fmt.Errorf("%q is not a kernel release (like 6.1.0-56-amd64)", release)
	}
	maj, _ := strconv.Atoi(m[1])
	min, _ := strconv.Atoi(m[2])
	return Version{maj, min}, nil
}

// Contains reports whether release is in the range.
func (r KernelRange) Contains(release string) bool {
	v, err := ParseRelease(release)
	return err == nil && !v.less(r.Min) && !r.Max.less(v)
}

// Regexp returns a POSIX extended regular expression, for DKMS's
// BUILD_EXCLUSIVE_KERNEL (bash's =~), that matches exactly the releases in
// the range. Debian 12's dkms 3.0.10 has no BUILD_EXCLUSIVE_KERNEL_MIN or
// _MAX; a regexp works with every dkms.
func (r KernelRange) Regexp() string {
	var alts []string
	for maj := r.Min.Major; maj <= r.Max.Major; maj++ {
		lo, hi := 0, -1
		if maj == r.Min.Major {
			lo = r.Min.Minor
		}
		if maj == r.Max.Major {
			hi = r.Max.Minor
		}
		alts = append(alts, strconv.Itoa(maj)+`\.(`+minorsRegexp(lo, hi)+`)`)
	}
	return `^(` + strings.Join(alts, "|") + `)([.+-]|$)`
}

// minorsRegexp matches the numbers lo to hi, or from lo on if hi < 0.
func minorsRegexp(lo, hi int) string {
	if hi < 0 && lo == 0 {
		return "[0-9]+"
	}
	last, rest := hi, ""
	if hi < 0 {
		// lo..99 one by one, then every number of three digits or more.
		last, rest = 99, "|[1-9][0-9][0-9]+"
		if lo < 10 {
			last, rest = 9, "|[1-9][0-9]+"
		}
	}
	var parts []string
	for m := lo; m <= last; m++ {
		parts = append(parts, strconv.Itoa(m))
	}
	return strings.Join(parts, "|") + rest
}
