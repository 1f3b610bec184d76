package kbuild

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseKUnitSummary(t *testing.T) {
	tests := []struct {
		line string
		want KUnitResult
		ok   bool
	}{
		{"[12:01:02] Testing complete. Ran 16 tests: passed: 16", KUnitResult{Passed: 16}, true},
		{"\x1b[32m[12:01:02]\x1b[0m Testing complete. Ran 16 tests: passed: 14, failed: 1, crashed: 1", KUnitResult{Passed: 14, Failed: 1, Crashed: 1}, true},
		{"[12:01:02] Testing complete. Ran 3 tests: passed: 2, skipped: 1, errors: 1", KUnitResult{Passed: 2, Skipped: 1, Errors: 1}, true},
		{"[12:01:02] Testing complete. Ran 1 test: passed: 1", KUnitResult{Passed: 1}, true},
		{"[12:01:02] ===== [PASSED] wireguard-noise =====", KUnitResult{}, false},
	}
	for _, tt := range tests {
		var got KUnitResult
		ok := parseKUnitSummary(tt.line, &got)
		got.Summary = ""
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseKUnitSummary(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestKUnitResultOK(t *testing.T) {
	tests := []struct {
		r    KUnitResult
		want bool
	}{
		{KUnitResult{Passed: 16}, true},
		{KUnitResult{Passed: 15, Skipped: 1}, true},
		{KUnitResult{Passed: 15, Failed: 1}, false},
		{KUnitResult{Passed: 15, Crashed: 1}, false},
		{KUnitResult{Passed: 15, Errors: 1}, false},
		{KUnitResult{}, false}, // nothing ran
		{KUnitResult{Passed: 16, Warnings: []string{"w"}}, false},
	}
	for _, tt := range tests {
		if got := tt.r.OK(); got != tt.want {
			t.Errorf("%+v.OK() = %v, want %v", tt.r, got, tt.want)
		}
	}
}

func TestDriverWarning(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"/ws/src/drivers/net/wireguard/tests/noise_kunit.c:110:9: warning: ignoring return value", true},
		{"drivers/net/wireguard/noise.c:1:2: warning: x", true},
		{"/ws/src/drivers/net/vxlan/vxlan_core.c:10:2: warning: x", false},
		// sparse reports some findings as errors (make goes on).
		{"../drivers/net/wireguard/noise.c:110:9: error: incompatible types", true},
		{"/ws/src/drivers/net/wireguard/noise.c:110:9: note: x", false},
		{"/ws/src/drivers/net/wireguard-extra/a.c:1:1: warning: x", false},
	}
	for _, tt := range tests {
		if got := driverWarning.MatchString(tt.line); got != tt.want {
			t.Errorf("driverWarning(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestCheckLLVMValue(t *testing.T) {
	for _, v := range []string{"", "0", "19", "-", "-19a", "clang"} {
		if err := CheckLLVM(v); err == nil || !strings.Contains(err.Error(), "give 1") {
			t.Errorf("CheckLLVM(%q) = %v, want the usage named", v, err)
		}
	}
	// A well-formed suffix that no host has: the install line is named.
	if err := CheckLLVM("-999"); err == nil || !strings.Contains(err.Error(), "apt-get install clang-999 lld-999 llvm-999") {
		t.Errorf("CheckLLVM(-999) = %v", err)
	}
	if got := ClangOf("-19"); got != "clang-19" {
		t.Errorf("ClangOf(-19) = %q", got)
	}
	if got := ClangOf("1"); got != "clang" {
		t.Errorf("ClangOf(1) = %q", got)
	}
}
