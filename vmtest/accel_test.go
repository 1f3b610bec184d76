package vmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChooseAccelCache checks what ChooseAccel says about the cache. None
// of its cases boots QEMU: a cached verdict needs no probe, and the probe
// of a QEMU that does not exist fails at once (or at /dev/kvm).
func TestChooseAccelCache(t *testing.T) {
	const bootID = "0f8e2c7a-boot"
	tests := []struct {
		name string
		// setup prepares the cache directory and returns it.
		setup func(t *testing.T, dir string) string
		// noBootID makes the host's boot id unreadable.
		noBootID bool
		cancel   bool
		want     string
		// log is what ChooseAccel must say ({file} is the cache file);
		// nolog what it must not.
		log, nolog string
		cached     bool // whether the cache file must hold the verdict
	}{
		{
			name: "cached TCG",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "kvm-probe-"+bootID), "tcg\n")
				return dir
			},
			want: TCG, log: "vm: using TCG (probe verdict of this host boot, cached in {file})", cached: true,
		},
		{
			name: "cached KVM",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "kvm-probe-"+bootID), "kvm\n")
				return dir
			},
			want: KVM, log: "vm: using KVM (probe verdict of this host boot, cached in {file})", cached: true,
		},
		{
			name:  "probed and cached",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "new") },
			want:  TCG, log: "(verdict cached in {file} until the host reboots)", cached: true,
		},
		{
			name: "garbage in the cache is probed over",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "kvm-probe-"+bootID), "maybe\n")
				return dir
			},
			want: TCG, log: "(verdict cached in {file} until the host reboots)", cached: true,
		},
		{
			name: "cache not writable",
			setup: func(t *testing.T, dir string) string {
				f := filepath.Join(dir, "file")
				writeFile(t, f, "")
				return filepath.Join(f, "cache")
			},
			want: TCG, log: "(verdict not cached: mkdir ", nolog: "until the host reboots",
		},
		{
			name:   "probe interrupted",
			setup:  func(t *testing.T, dir string) string { return dir },
			cancel: true,
			want:   TCG, log: "(verdict not cached: the probe was interrupted)", nolog: "until the host reboots",
		},
		{
			name:     "no boot id",
			setup:    func(t *testing.T, dir string) string { return dir },
			noBootID: true,
			want:     TCG, log: "(verdict not cached: no host boot id to key it by (open ", nolog: "until the host reboots",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			idFile := filepath.Join(tmp, "boot_id")
			if !tt.noBootID {
				writeFile(t, idFile, bootID+"\n")
			}
			old := bootIDFile
			bootIDFile = idFile
			t.Cleanup(func() { bootIDFile = old })
			dir := tt.setup(t, tmp)
			file := filepath.Join(dir, "kvm-probe-"+bootID)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			var logs []string
			logf := func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) }
			qemu := filepath.Join(tmp, "no-such-qemu")
			if got := ChooseAccel(ctx, dir, qemu, filepath.Join(tmp, "bzImage"), logf); got != tt.want {
				t.Errorf("ChooseAccel = %s, want %s", got, tt.want)
			}
			if len(logs) != 1 {
				t.Fatalf("ChooseAccel logged %q, want one line", logs)
			}
			t.Logf("logged: %s", logs[0])
			if want := strings.ReplaceAll(tt.log, "{file}", file); !strings.Contains(logs[0], want) {
				t.Errorf("ChooseAccel logged\n\t%s\nwant it to contain\n\t%s", logs[0], want)
			}
			if tt.nolog != "" && strings.Contains(logs[0], tt.nolog) {
				t.Errorf("ChooseAccel logged\n\t%s\nwhich must not say %q", logs[0], tt.nolog)
			}
			b, err := os.ReadFile(file)
			switch {
			case tt.cached && (err != nil || string(b) != tt.want+"\n"):
				t.Errorf("cache file: %q, %v; want %q", b, err, tt.want+"\n")
			case !tt.cached && err == nil:
				t.Errorf("cache file written (%q), want none", b)
			}
		})
	}
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
