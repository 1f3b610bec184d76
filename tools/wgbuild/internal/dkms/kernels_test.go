package dkms

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

func TestKernelsContains(t *testing.T) {
	r := KernelRange{Min: Version{5, 10}, Max: Version{6, 12}}
	tests := []struct {
		release string
		want    bool
	}{
		{"5.10.0-32-amd64", true},
		{"5.10.262", true},
		{"6.1.0-56-amd64", true},
		{"6.0.0", true},
		{"6.12.48+deb13-amd64", true},
		{"6.12-rc1", true},
		{"6.1", true},
		{"5.9.16", false},
		{"5.1.0", false},
		{"4.19.0-27-amd64", false},
		{"6.13.0-1-amd64", false},
		{"6.120.0", false},
		{"7.0.0", false},
		{"16.1.0", false},
		{"x6.1.0", false},
		{"6.1x", false},
		{"", false},
	}
	re := regexp.MustCompile(r.Regexp())
	for _, tt := range tests {
		if got := r.Contains(tt.release); got != tt.want {
			t.Errorf("Contains(%q) = %v, want %v", tt.release, got, tt.want)
		}
		if got := re.MatchString(tt.release); got != tt.want {
			t.Errorf("BUILD_EXCLUSIVE_KERNEL %s on %q: %v, want %v", r.Regexp(), tt.release, got, tt.want)
		}
	}
}

// The regexp matches exactly the range, for several ranges, in Go and in
// bash's =~ (which is what dkms uses).
func TestKernelsRegexp(t *testing.T) {
	ranges := []KernelRange{
		{Min: Version{5, 10}, Max: Version{6, 12}},
		{Min: Version{6, 1}, Max: Version{6, 1}},
		{Min: Version{4, 19}, Max: Version{7, 2}},
		{Min: Version{5, 0}, Max: Version{6, 0}},
		{Min: Version{3, 15}, Max: Version{5, 3}},
	}
	var releases []string
	for maj := 2; maj <= 8; maj++ {
		for min := 0; min <= 130; min++ {
			releases = append(releases, fmt.Sprintf("%d.%d.0-1-amd64", maj, min))
		}
	}
	_, bashErr := exec.LookPath("bash")
	for _, r := range ranges {
		re := regexp.MustCompile(r.Regexp())
		var script strings.Builder
		fmt.Fprintf(&script, "re='%s'\n", r.Regexp())
		for _, rel := range releases {
			if got, want := re.MatchString(rel), r.Contains(rel); got != want {
				t.Errorf("%v: Go regexp %s on %s: %v, want %v", r, r.Regexp(), rel, got, want)
			}
			fmt.Fprintf(&script, "[[ %s =~ $re ]] && echo %s\n", rel, rel)
		}
		if bashErr != nil {
			continue
		}
		out, err := exec.Command("bash", "-c", script.String()).Output()
		if err != nil && len(out) == 0 {
			t.Fatalf("bash: %v", err)
		}
		matched := map[string]bool{}
		for _, l := range strings.Fields(string(out)) {
			matched[l] = true
		}
		for _, rel := range releases {
			if matched[rel] != r.Contains(rel) {
				t.Errorf("%v: bash [[ %s =~ %s ]]: %v, want %v", r, rel, r.Regexp(), matched[rel], r.Contains(rel))
			}
		}
	}
}
