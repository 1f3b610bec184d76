package dkms

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/compat"
)

// grepMatches runs the real grep on text, as the generated scripts do.
func grepMatches(t *testing.T, ere, text string, mode Mode) bool {
	t.Helper()
	f := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-E", "-q", "-e", ere, f}
	if mode == WholeFile {
		args = append([]string{"-z"}, args...)
	}
	cmd := exec.Command("grep", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false
	}
	t.Fatalf("grep -E %q: %v: %s", ere, err, out)
	return false
}

func TestToEREMatchesLikeGo(t *testing.T) {
	if _, err := exec.LookPath("grep"); err != nil {
		t.Skip("grep not installed")
	}
	tests := []struct {
		pattern string
		mode    Mode
		texts   []string
	}{
		{`\bgenl_info_dump\s*\(`, WholeFile, []string{
			"struct x *genl_info_dump(struct netlink_callback *cb);\n",
			"genl_info_dump  (x)", "genl_info_dump\n\t(x)", "xgenl_info_dump(", "genl_info_dumpx(", "genl_info_dump;",
		}},
		{`\bresv_start_op;`, WholeFile, []string{"\tu8 resv_start_op;\n", "u8 xresv_start_op;", "resv_start_op ;"}},
		{`skb_gso_segment`, WholeFile, []string{"skb_gso_segment", "skb_gso_segmen"}},
		{`^#define FOO$`, WholeFile, []string{"#define FOO", "#define FOO\n", "x\n#define FOO"}},
		{`a[^;]*b`, WholeFile, []string{"a\nb", "a;b", "ab"}},
		{`[-\]^a-c[:]x`, WholeFile, []string{"-x", "]x", "^x", "bx", "[x", ":x", "dx"}},
		{`[\^]x|y{2,3}|(?:ab)+c?`, WholeFile, []string{"^x", "yy", "y", "abab", "ba"}},
		{`[^\s(]`, WholeFile, []string{"  \n(", " a"}},
		{`\S+?\d`, WholeFile, []string{" 1", "a1", "a 1"}},
		{`(?i)wire`, WholeFile, []string{"WiRe", "wir"}},
		{`x\By`, WholeFile, []string{"xy", "x y"}},
		{`^\s*\.resv_start_op\s*=.*,\s*$`, PerLine, []string{"\t.resv_start_op = WG_CMD_SET_DEVICE + 1,", "\t.resv_start_op = 1", "x.resv_start_op = 1,"}},
		{`^\twg->id = atomic64_inc_return\(&last_id\);$`, PerLine, []string{
			"\twg->id = atomic64_inc_return(&last_id);", " wg->id = atomic64_inc_return(&last_id);",
			"\t\twg->id = atomic64_inc_return(&last_id);", "\twg->id = atomic64_inc_return(&last_id); ",
		}},
		{`a\tb|[\t;]x`, WholeFile, []string{"a\tb", "a b", "\tx", ";x", " x"}},
		{`^(\S+?):(\d+):(?:(\d+):)? (?:fatal )?error: `, PerLine, []string{
			"/tmp/b/main.c:12:3: error: expected ';'", "main.c:12: fatal error: x.h: No such file", "main.c:12:3: warning: unused", "In file included from main.c:1:",
		}},
		{`^(?:ERROR: |make\[\d+\]: \*\*\* No rule|.*: undefined reference|.*Error: )`, PerLine, []string{
			`ERROR: modpost: "foo" [wireguard.ko] undefined!`, "make[2]: *** No rule to make target", "x: undefined reference to `y'", "ok",
		}},
	}
	for _, tt := range tests {
		re := regexp.MustCompile(tt.pattern)
		ere, err := ToERE(re, tt.mode)
		if err != nil {
			t.Errorf("ToERE(%q): %v", tt.pattern, err)
			continue
		}
		for _, text := range tt.texts {
			if got, want := grepMatches(t, ere, text, tt.mode), re.MatchString(text); got != want {
				t.Errorf("pattern %q as %q on %q: grep says %v, Go says %v", tt.pattern, ere, text, got, want)
			}
		}
	}
}

func TestToERERefuses(t *testing.T) {
	tests := []struct {
		pattern string
		mode    Mode
		want    string
	}{
		{`a.b`, WholeFile, `"."`},
		{`(?m)^a`, WholeFile, "multi-line"},
		{`a\x07b`, WholeFile, "printable ASCII"},
		{`a\rb`, PerLine, "printable ASCII"},
		{`[\x07 ]`, WholeFile, "control character"},
		{`é`, PerLine, "printable ASCII"},
	}
	for _, tt := range tests {
		_, err := ToERE(regexp.MustCompile(tt.pattern), tt.mode)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ToERE(%q) error = %v, want one mentioning %s", tt.pattern, err, tt.want)
		}
	}
}

// Every probe in compat.Probes must be expressible for the DKMS build's
// generated script: its pattern, its drop and its insertions' anchors.
func TestToEREEveryProbe(t *testing.T) {
	for _, p := range compat.Probes {
		if _, err := ToERE(p.Pattern, WholeFile); err != nil {
			t.Errorf("probe %s: %v: the DKMS compat script cannot run it; adjust the pattern", p.Name, err)
		}
		if p.Drop != nil {
			if _, err := ToERE(p.Drop, PerLine); err != nil {
				t.Errorf("probe %s: drop: %v: the DKMS compat script cannot run it; adjust the pattern", p.Name, err)
			}
		}
		for _, in := range p.Inserts {
			if _, err := ToERE(in.Anchor, PerLine); err != nil {
				t.Errorf("probe %s: insertion into %s: %v: the DKMS compat script cannot run it; adjust the anchor", p.Name, in.File, err)
			}
		}
	}
}
