package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// fakeCacheDir makes a cache directory with a few entries of known age.
func fakeCacheDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cache")
	now := time.Now()
	entries := []struct {
		rel  string
		age  time.Duration
		file string
		data string
	}{
		{"kernel/1111111111111111aaaa", 60 * 24 * time.Hour, "info.json", `{"release": "6.1.192", "config": "minimal"}`},
		{"module/2222222222222222bbbb", 40 * 24 * time.Hour, "wireguard.ko", strings.Repeat("x", 3000)},
		{"module/3333333333333333cccc", time.Hour, "wireguard.ko", strings.Repeat("x", 2000)},
		{"ksrc/4444444444444444dddd", 90 * 24 * time.Hour, "Makefile", "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 118\nEXTRAVERSION =\n"},
		{"runs/20260101-000000-1", 3 * time.Hour, "console.log", "boot"},
		{"runs/20260101-000000-2", 10 * time.Minute, "console.log", "boot"},
		{"failed/module/5555555555555555eeee", 50 * 24 * time.Hour, "build.log", "error: x"},
	}
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(e.rel))
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, e.file), []byte(e.data), 0o644); err != nil {
			t.Fatal(err)
		}
		at := now.Add(-e.age)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	refs := filepath.Join(dir, "ksrc-refs")
	os.MkdirAll(refs, 0o755)
	os.WriteFile(filepath.Join(refs, "debian-6.12.json"), []byte(`{"key": "4444444444444444dddd", "origin": "Debian linux-source-6.12"}`), 0o644)
	return dir
}

func TestCacheCommand(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		code      int
		stdoutHas []string
		stdoutNot []string
		stderrHas string
		gone      []string // entries removed
		kept      []string
	}{
		{name: "help", args: []string{"--help"}, code: ExitOK, stdoutHas: []string{"wgbuild cache prune --older-than 7d --kind module", "-dry-run"}},
		{name: "no action", code: ExitUsage, stderrHas: "give an action: `wgbuild cache ls` or `wgbuild cache prune`"},
		{name: "bad action", args: []string{"rm"}, code: ExitUsage, stderrHas: `unknown action "rm": give ls or prune`},
		{name: "prune flag on ls", args: []string{"ls", "--all"}, code: ExitUsage, stderrHas: "--all is for prune, not ls"},
		{name: "all and older-than", args: []string{"prune", "--all", "--older-than", "1h"}, code: ExitUsage, stderrHas: "give --all or --older-than, not both"},
		{name: "bad age", args: []string{"prune", "--older-than", "a month"}, code: ExitUsage, stderrHas: "give days (30d) or a duration"},
		{name: "bad kind", args: []string{"ls", "--kind", "kernels"}, code: ExitUsage, stderrHas: `--kind "kernels": no such kind; kinds are debpkg, failed, failed/module, initramfs-base`},
		{name: "ls", args: []string{"ls"}, code: ExitOK, stdoutHas: []string{`KIND           KEY                SIZE     LAST USED  WHAT
failed/module  555555555555       8 B      50d ago
kernel         111111111111       43 B     60d ago    6.1.192 minimal
ksrc           444444444444       58 B     90d ago    6.12.118 from Debian linux-source-6.12
module         222222222222       2.9 KiB  40d ago
module         333333333333       2.0 KiB  1h ago
runs           20260101-000000-1  4 B      3h ago
runs           20260101-000000-2  4 B      10m ago
total: 7 entries in $CACHE, 5.0 KiB
`}},
		{name: "ls kind", args: []string{"ls", "--kind", "module"}, code: ExitOK,
			stdoutHas: []string{"222222222222", "333333333333", "total: 2 entries in ", "4.9 KiB\n"}, stdoutNot: []string{"kernel", "runs"}},
		{name: "ls failed", args: []string{"ls", "--kind", "failed"}, code: ExitOK, stdoutHas: []string{"failed/module", "total: 1 entry in"}},
		{name: "dry run", args: []string{"prune", "--dry-run"}, code: ExitOK, stdoutHas: []string{
			`would remove  failed/module  555555555555  8 B      last used 50d ago
would remove  kernel         111111111111  43 B     last used 60d ago  6.1.192 minimal
would remove  ksrc           444444444444  58 B     last used 90d ago  6.12.118 from Debian linux-source-6.12
would remove  module         222222222222  2.9 KiB  last used 40d ago
would free 3.0 KiB from 4 entries (dry run: nothing removed)
`,
		}, stdoutNot: []string{"333333333333", "runs"}, kept: []string{"kernel/1111111111111111aaaa", "ksrc-refs/debian-6.12.json"}},
		{name: "dry run all", args: []string{"prune", "--all", "--dry-run"}, code: ExitOK, stdoutHas: []string{
			"would remove  module         333333333333",
			"would remove  runs           20260101-000000-1",
			"keeping 1 run younger than 2h0m0s",
			"from 6 entries",
		}, stdoutNot: []string{"20260101-000000-2"}},
		{name: "nothing", args: []string{"prune", "--kind", "kernel", "--older-than", "100d"}, code: ExitOK,
			stdoutHas: []string{"nothing to prune: no kernel entries in ", " unused for more than 100d (prune more with --older-than AGE or --all)"}},
		{name: "prune modules", args: []string{"prune", "--kind", "module", "--older-than", "30d"}, code: ExitOK,
			stdoutHas: []string{"removed  module  222222222222  2.9 KiB  last used 40d ago", "freed 2.9 KiB from 1 entry\n"},
			gone:      []string{"module/2222222222222222bbbb"}, kept: []string{"module/3333333333333333cccc", "kernel/1111111111111111aaaa"}},
		{name: "prune ksrc drops its ref", args: []string{"prune", "--kind", "ksrc", "--all"}, code: ExitOK,
			stdoutHas: []string{"removed  ksrc  444444444444", "freed 58 B from 1 entry"},
			gone:      []string{"ksrc/4444444444444444dddd", "ksrc-refs/debian-6.12.json"}},
		{name: "prune runs", args: []string{"prune", "--kind", "runs", "--older-than", "1m"}, code: ExitOK,
			stdoutHas: []string{"keeping 1 run younger than 2h0m0s", "removed  runs  20260101-000000-1"},
			gone:      []string{"runs/20260101-000000-1"}, kept: []string{"runs/20260101-000000-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fakeCacheDir(t)
			t.Setenv("WGKIT_CACHE", dir) // never the real cache
			args := append(append([]string{"cache"}, tt.args...), "--cache", dir)
			var stdout, stderr strings.Builder
			code := Main(args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tt.code, stderr.String())
			}
			for _, s := range tt.stdoutHas {
				s = strings.ReplaceAll(s, "$CACHE", dir)
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tt.stdoutNot {
				if strings.Contains(stdout.String(), s) {
					t.Errorf("stdout has %q:\n%s", s, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tt.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderrHas, stderr.String())
			}
			for _, p := range tt.gone {
				if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
					t.Errorf("%s still there (%v)", p, err)
				}
			}
			for _, p := range tt.kept {
				if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
					t.Errorf("%s is gone: %v", p, err)
				}
			}
		})
	}
}

func TestSelectPrune(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	ents := []cache.Entry{
		{Kind: "kernel", Key: "old-kernel", Used: now.Add(-40 * day)},
		{Kind: "kernel", Key: "new-kernel", Used: now.Add(-time.Hour)},
		{Kind: "module", Key: "old-module", Used: now.Add(-31 * day)},
		{Kind: "runs", Key: "old-run", Used: now.Add(-3 * time.Hour)},
		{Kind: "runs", Key: "young-run", Used: now.Add(-time.Hour)},
		{Kind: "failed/module", Key: "old-failed", Used: now.Add(-50 * day)},
		{Kind: "failed/kernel", Key: "new-failed", Used: now},
	}
	tests := []struct {
		name  string
		o     pruneOptions
		want  []string
		young int
	}{
		{name: "default age", o: pruneOptions{olderThan: 30 * day}, want: []string{"old-kernel", "old-module", "old-failed"}},
		{name: "35 days", o: pruneOptions{olderThan: 35 * day}, want: []string{"old-kernel", "old-failed"}},
		{name: "all", o: pruneOptions{all: true}, want: []string{"old-kernel", "new-kernel", "old-module", "old-run", "old-failed", "new-failed"}, young: 1},
		{name: "zero age is not all", o: pruneOptions{}, want: []string{"old-kernel", "new-kernel", "old-module", "old-run", "old-failed"}, young: 1},
		{name: "kind", o: pruneOptions{all: true, kind: "kernel"}, want: []string{"old-kernel", "new-kernel"}},
		{name: "failed", o: pruneOptions{all: true, kind: "failed"}, want: []string{"old-failed", "new-failed"}},
		{name: "failed of one kind", o: pruneOptions{all: true, kind: "failed/kernel"}, want: []string{"new-failed"}},
		{name: "runs an hour", o: pruneOptions{olderThan: time.Minute, kind: "runs"}, want: []string{"old-run"}, young: 1},
		{name: "no such kind", o: pruneOptions{all: true, kind: "kern"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, young := selectPrune(ents, now, tt.o)
			var got []string
			for _, e := range sel {
				got = append(got, e.Key)
			}
			if !slices.Equal(got, tt.want) || young != tt.young {
				t.Errorf("got %v (young runs %d), want %v (%d)", got, young, tt.want, tt.young)
			}
		})
	}
}

func TestCacheFormatting(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct{ got, want string }{
		{humanSize(0), "0 B"},
		{humanSize(1023), "1023 B"},
		{humanSize(1024), "1.0 KiB"},
		{humanSize(1536), "1.5 KiB"},
		{humanSize(5 << 30), "5.0 GiB"},
		{humanSize(1 << 62), "4.0 EiB"},
		{ago(now, now.Add(time.Minute)), "just now"},
		{ago(now, now.Add(-40*time.Second)), "40s ago"},
		{ago(now, now.Add(-5*time.Minute)), "5m ago"},
		{ago(now, now.Add(-3*time.Hour)), "3h ago"},
		{ago(now, now.Add(-47*time.Hour)), "47h ago"},
		{ago(now, now.Add(-12*24*time.Hour)), "12d ago"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestAgeFlag(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
		str  string
	}{
		{in: "30d", want: 30 * 24 * time.Hour, str: "30d"},
		{in: "720h", want: 720 * time.Hour, str: "30d"},
		{in: "1.5d", want: 36 * time.Hour, str: "36h0m0s"},
		{in: "90m", want: 90 * time.Minute, str: "1h30m0s"},
		{in: "0", want: 0, str: "0s"},
		{in: "-1h", err: true},
		{in: "d", err: true},
		{in: "month", err: true},
	}
	for _, tt := range tests {
		var a age
		err := a.Set(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("Set(%q): err = %v", tt.in, err)
			continue
		}
		if err == nil && (time.Duration(a) != tt.want || a.String() != tt.str) {
			t.Errorf("Set(%q) = %v (%s), want %v (%s)", tt.in, time.Duration(a), a.String(), tt.want, tt.str)
		}
	}
}
