package series

import (
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	s, err := ParseSpec("series", []byte(fakeSpec+"\nchanges v2:\n\t- second\n\nchanges v3:\n\t- third\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Cover.Subject != "wireguard: a new implementation" || strings.Join(s.Cover.Body, "|") != "What it is.||How it was tested:|@TESTED@" {
		t.Errorf("cover = %q %q", s.Cover.Subject, s.Cover.Body)
	}
	if len(s.Patches) != 6 {
		t.Fatalf("%d patches", len(s.Patches))
	}
	p := s.Patches[5]
	if p.Subject != "wireguard: add the self-tests" || len(p.Lines) != 1 || p.Lines[0] != (HeldLine{File: "a.c", Line: `#include "selftest/a_test.c"`}) {
		t.Errorf("patch 6 = %+v", p)
	}
	if got := s.accepted(5); got["FILE_PATH_CHANGES"] == "" || got["CONFIG_DESCRIPTION"] == "" {
		t.Errorf("accepted(5) = %v", got)
	}
	if got := s.accepted(0); got["CONFIG_DESCRIPTION"] != "" {
		t.Errorf("accepted(0) = %v: a patch's own accept leaked", got)
	}
	if s.MaintainersEntry[1] != "M:\t@MAINTAINER@" {
		t.Errorf("entry = %q", s.MaintainersEntry)
	}
	cl, err := s.Changelog(3)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cl, "|") != "Changes in v3:|- third||Changes in v2:|- second" {
		t.Errorf("changelog = %q", cl)
	}
	if cl, err := s.Changelog(1); err != nil || cl != nil {
		t.Errorf("Changelog(1) = %q, %v", cl, err)
	}
	if _, err := s.Changelog(4); err == nil || !strings.Contains(err.Error(), `no "changes v4:" block`) {
		t.Errorf("Changelog(4): %v", err)
	}
}

func TestParseSpecErrors(t *testing.T) {
	long := strings.Repeat("x", 73)
	tests := []struct {
		name, spec, want string
	}{
		{"no cover", "patch: wireguard: x\nfiles: a.c\n\tBody.\n", "no cover:"},
		{"subject prefix", "cover: c\n\tB.\npatch: add x\nfiles: a.c\n\tBody.\n", `start it with "wireguard: "`},
		{"subject style", "cover: c\n\tB.\npatch: wireguard: Add x.\nfiles: a.c\n\tBody.\n", "kernel style"},
		{"no message", "cover: c\n\tB.\npatch: wireguard: add x\nfiles: a.c\n", "has no message"},
		{"long line", "cover: c\n\tB.\npatch: wireguard: add x\nfiles: a.c\n\t" + long + "\n", "message line of 73 characters: wrap at 72"},
		{"nothing", "cover: c\n\tB.\npatch: wireguard: add x\n\tBody.\n", "changes nothing"},
		{"unknown key", "cover: c\n\tB.\npatch: wireguard: add x\nfile: a.c\n\tBody.\n", `unknown key "file"`},
		{"stray body", "\tstray\n", "indented line outside a body"},
		{"bad lines", "cover: c\n\tB.\npatch: wireguard: add x\nlines: a.c\n\tBody.\n", "want \"lines: <file>: <the line>\""},
		{"too many", "cover: c\n\tB.\n" + strings.Repeat("patch: wireguard: add x\nfiles: a.c\n\tBody.\n", 16), "16 patches: a series has at most 15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec("series", []byte(tt.spec))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
