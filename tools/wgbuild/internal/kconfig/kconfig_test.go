package kconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFragment(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // Option.String() values
		wantErr string
	}{
		{name: "assignments", in: "CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=42\nCONFIG_D=\"x y\"\n", want: []string{"CONFIG_A=y", "CONFIG_B=m", "CONFIG_C=42", `CONFIG_D="x y"`}},
		{name: "not set", in: "# CONFIG_A is not set\n", want: []string{"CONFIG_A=n"}},
		{name: "comments and blanks", in: "# a comment\n\n  \nCONFIG_A=y\n", want: []string{"CONFIG_A=y"}},
		{name: "garbage", in: "CONFIG_A=y\nVETH=y\n", wantErr: "f.config:2"},
		{name: "empty value", in: "CONFIG_A=\n", wantErr: "not a Kconfig assignment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFragment("f.config", []byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, o := range got {
				s = append(s, o.String())
			}
			if strings.Join(s, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", s, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	final := ParseConfig([]byte("CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_E=y\n"))
	known := map[string]bool{"A": true, "B": true, "C": true, "D": true, "E": true}
	tests := []struct {
		name        string
		frag        string
		wantDropped []string
		wantUnknown string
	}{
		{name: "all survived", frag: "CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\n"},
		{name: "dropped y", frag: "CONFIG_C=y\n", wantDropped: []string{"CONFIG_C=y (from f:1) ended up =n"}},
		{name: "m became y", frag: "CONFIG_A=m\n", wantDropped: []string{"CONFIG_A=m (from f:1) ended up =y"}},
		{name: "unset but set", frag: "# CONFIG_E is not set\n", wantDropped: []string{"CONFIG_E=n (from f:1) ended up =y"}},
		{name: "later wins", frag: "CONFIG_C=y\n# CONFIG_C is not set\n"},
		{name: "unknown ignored", frag: "CONFIG_NEW_IN_7=y\nCONFIG_A=y\n", wantUnknown: "CONFIG_NEW_IN_7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseFragment("f", []byte(tt.frag))
			if err != nil {
				t.Fatal(err)
			}
			r := Check(req, final, known)
			var got []string
			for _, m := range r.Dropped {
				got = append(got, m.String())
			}
			if strings.Join(got, "|") != strings.Join(tt.wantDropped, "|") {
				t.Errorf("dropped %q, want %q", got, tt.wantDropped)
			}
			if r.UnknownList() != tt.wantUnknown {
				t.Errorf("unknown %q, want %q", r.UnknownList(), tt.wantUnknown)
			}
			if (r.Err() != nil) != (len(tt.wantDropped) > 0) {
				t.Errorf("Err() = %v", r.Err())
			}
			if r.Err() != nil && !strings.Contains(r.Err().Error(), tt.wantDropped[0]) {
				t.Errorf("error %q does not name %q", r.Err(), tt.wantDropped[0])
			}
		})
	}
}

func TestSymbols(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"Kconfig":                "config FOO\n\tbool\nmenuconfig BAR\n\tbool\n",
		"drivers/net/Kconfig":    "config VETH\n\ttristate \"veth\"\n\thelp\n\t  config NOT_A_SYMBOL in help\n",
		"arch/x86/Kconfig.debug": "config X86_DEBUG\n\tbool\n",
		"Documentation/Kconfig":  "config DOC_ONLY\n",
		"drivers/net/Makefile":   "config NOT_KCONFIG\n",
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	syms, err := Symbols(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"FOO", "BAR", "VETH", "X86_DEBUG"} {
		if !syms[s] {
			t.Errorf("%s not found", s)
		}
	}
	for _, s := range []string{"DOC_ONLY", "NOT_KCONFIG"} {
		if syms[s] {
			t.Errorf("%s found, should not be", s)
		}
	}
}
