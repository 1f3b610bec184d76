package ksrc

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in     string
		want   Version
		str    string
		errHas string
	}{
		{in: "6.12", want: Version{6, 12, -1}, str: "6.12"},
		{in: "5.10", want: Version{5, 10, -1}, str: "5.10"},
		{in: "6.1.192", want: Version{6, 1, 192}, str: "6.1.192"},
		{in: "v6.1.0", want: Version{6, 1, 0}, str: "6.1.0"},
		{in: "9.9", want: Version{9, 9, -1}, str: "9.9"},
		{in: "6", errHas: "is not a version"},
		{in: "6.x", errHas: "is not a version"},
		{in: "6.1.2.3", errHas: "is not a version"},
		{in: "6.1-rc3", errHas: "is not a version"},
		{in: "6.01", errHas: "is not a version"},
		{in: "6..1", errHas: "is not a version"},
		{in: "", errHas: "is not a version"},
		{in: "2.6.32", errHas: "too old"},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), "X.Y.Z") {
				t.Errorf("ParseVersion(%q) err = %v, want %q and a hint", tt.in, err, tt.errHas)
			}
			continue
		}
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseVersion(%q) = %+v (%s), %v; want %+v (%s)", tt.in, got, got, err, tt.want, tt.str)
		}
	}
}

func TestVersionMatches(t *testing.T) {
	tests := []struct {
		want, got string
		ok        bool
	}{
		{"6.12", "6.12.117", true},
		{"6.12", "6.1.192", false},
		{"6.1", "6.12.117", false},
		{"6.1.192", "6.1.192", true},
		{"6.1.192", "6.1.176", false},
		{"6.1.0", "6.1.0", true},
		{"6.1.0", "6.1", true}, // kernel.org's linux-6.1.tar.xz
		{"6.13", "6.13.0-rc3", true},
		{"6.13.0", "6.13.0-rc3", true},
		{"6.1", "garbage", false},
		{"7.3", "7.3~rc7", true}, // Debian experimental's upstream version
		{"7.3.0", "7.3~rc7", true},
		{"7.2", "7.3~rc7", false},
	}
	for _, tt := range tests {
		v, err := ParseVersion(tt.want)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Matches(tt.got); got != tt.ok {
			t.Errorf("%s.Matches(%q) = %v, want %v", tt.want, tt.got, got, tt.ok)
		}
	}
}

func TestReadMakefileVersion(t *testing.T) {
	tests := []struct {
		name     string
		makefile string // "" = no Makefile
		want     string
		errHas   string
	}{
		{name: "debian 6.12", makefile: makefile("6.12.117"), want: "6.12.117"},
		{name: "release .0", makefile: "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\nEXTRAVERSION =\n", want: "6.1.0"},
		{name: "rc", makefile: "VERSION = 6\nPATCHLEVEL = 13\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n", want: "6.13.0-rc3"},
		{name: "odd spacing", makefile: "# comment\nVERSION=5\nPATCHLEVEL =10\nSUBLEVEL= 223\n", want: "5.10.223"},
		{name: "no sublevel", makefile: "VERSION = 6\nPATCHLEVEL = 1\n", errHas: "no numeric SUBLEVEL"},
		{name: "not a kernel", makefile: "all:\n\techo hi\n", errHas: "no numeric VERSION"},
		{name: "no makefile", errHas: "is not a kernel source tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.makefile != "" {
				writeFile(t, filepath.Join(dir, "Makefile"), []byte(tt.makefile))
			}
			got, err := ReadMakefileVersion(dir)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("err = %v, want %q", err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
