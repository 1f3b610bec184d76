package dkms

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	out := `wgkit-wireguard/0.1.0, 6.1.0-56-amd64, x86_64: installed
wgkit-wireguard/0.1.0, 6.1.0-55-amd64, x86_64: built
wgkit-wireguard/0.1.0, 6.1.0-54-amd64, x86_64: installed (WARNING! Diff between built and installed module!)
other/2.0: added
Deprecated feature: REMAKE_INITRD (/var/lib/dkms/x/1/source/dkms.conf)
`
	got := ParseStatus(out)
	want := []Status{
		{Name: "wgkit-wireguard", Version: "0.1.0", Kernel: "6.1.0-56-amd64", Arch: "x86_64", State: "installed"},
		{Name: "wgkit-wireguard", Version: "0.1.0", Kernel: "6.1.0-55-amd64", Arch: "x86_64", State: "built"},
		{Name: "wgkit-wireguard", Version: "0.1.0", Kernel: "6.1.0-54-amd64", Arch: "x86_64", State: "installed", Note: "(WARNING! Diff between built and installed module!)"},
		{Name: "other", Version: "2.0", State: "added"},
	}
	if len(got) != len(want) {
		t.Fatalf("ParseStatus = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, got[i], want[i])
		}
		if i < 3 && got[i].String() != strings.Split(out, "\n")[i] {
			t.Errorf("String() = %q, want the line back", got[i].String())
		}
	}
}

// fakeSystem is a machine under a temporary root with a fake dkms that
// removes what dkms remove would.
func fakeSystem(t *testing.T) (*System, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("System.Remove needs root")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "fake-dkms")
	writeTestFile(t, bin, `#!/bin/sh
echo "$@" >>"$ROOT/dkms.calls"
if [ "$1" = remove ]; then rm -rf "$ROOT/var/lib/dkms/$3/$5" "$ROOT/lib/modules/6.1.0-56-amd64/updates/dkms/wireguard.ko"; fi
exit 0
`)
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return &System{Runner: &Runner{Bin: bin, Env: []string{"ROOT=" + root}}, Root: root}, root
}

// installed lays out what Install leaves, with DKMS's key made by it
// (made) or not.
func installed(t *testing.T, root string, made bool) {
	t.Helper()
	src := filepath.Join(root, "usr/src", PackageName+"-0.1.0")
	writeTestFile(t, filepath.Join(src, "dkms.conf"), `PACKAGE_NAME="`+PackageName+`"`)
	writeTestFile(t, filepath.Join(root, "var/lib/dkms", PackageName, "0.1.0", "6.1.0-56-amd64", "x86_64", "module", "wireguard.ko"), "ko")
	writeTestFile(t, filepath.Join(root, "lib/modules/6.1.0-56-amd64/updates/dkms/wireguard.ko"), "ko")
	writeTestFile(t, filepath.Join(root, forceDir, PackageName), PackageName+"_version-override\n")
	writeTestFile(t, filepath.Join(root, mokKey), "key")
	writeTestFile(t, filepath.Join(root, mokCert), "cert")
	if made {
		sum, err := fileSHA256(filepath.Join(root, mokCert))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(src, mokMarker), sum+"\n")
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name    string
		made    bool              // our install made DKMS's key
		setup   func(root string) // after the install
		keyGone bool              // the key is removed
		kept    string            // part of the reason it is kept
		check   func(t *testing.T, root string)
	}{
		{name: "key made by the install", made: true, keyGone: true},
		{name: "key was there before", made: false, keyGone: false},
		{name: "key replaced since", made: true, kept: "not the key this package's install made", setup: func(root string) {
			os.WriteFile(filepath.Join(root, mokCert), []byte("another cert"), 0o644)
		}},
		{name: "another DKMS package", made: true, kept: "other DKMS packages (nvidia)", setup: func(root string) {
			os.MkdirAll(filepath.Join(root, "var/lib/dkms/nvidia/535"), 0o755)
		}},
		{name: "force directory shared", made: false, setup: func(root string) {
			os.WriteFile(filepath.Join(root, forceDir, "other"), []byte("other_version-override\n"), 0o644)
		}, check: func(t *testing.T, root string) {
			if !exists(filepath.Join(root, forceDir, "other")) {
				t.Error("another package's version-override file was removed")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, root := fakeSystem(t)
			installed(t, root, tt.made)
			if tt.setup != nil {
				tt.setup(root)
			}
			rep, err := s.Remove(context.Background(), PackageName)
			if err != nil {
				t.Fatalf("Remove: %v", err)
			}
			calls, _ := os.ReadFile(filepath.Join(root, "dkms.calls"))
			if !strings.Contains(string(calls), "remove -m "+PackageName+" -v 0.1.0 --all") {
				t.Errorf("dkms calls %q, want a remove --all", calls)
			}
			for _, p := range []string{"usr/src/" + PackageName + "-0.1.0", "var/lib/dkms/" + PackageName, filepath.Join(forceDir, PackageName)} {
				if exists(filepath.Join(root, p)) {
					t.Errorf("%s is left", p)
				}
			}
			if gone := !exists(filepath.Join(root, mokKey)) && !exists(filepath.Join(root, mokCert)); gone != tt.keyGone {
				t.Errorf("key removed = %v, want %v (removed %q, kept %q)", gone, tt.keyGone, rep.Removed, rep.Kept)
			}
			if tt.kept != "" && !strings.Contains(strings.Join(rep.Kept, "\n"), tt.kept) {
				t.Errorf("kept %q, want a reason with %q", rep.Kept, tt.kept)
			}
			if tt.check != nil {
				tt.check(t, root)
			} else if exists(filepath.Join(root, forceDir)) {
				t.Errorf("the empty %s is left", forceDir)
			}
		})
	}
}

func TestRemoveFindsLeftovers(t *testing.T) {
	s, root := fakeSystem(t)
	installed(t, root, false)
	// A module dkms did not remove.
	writeTestFile(t, filepath.Join(root, "lib/modules/6.1.0-55-amd64/updates/dkms/wireguard.ko"), "ko")
	_, err := s.Remove(context.Background(), PackageName)
	if err == nil || !strings.Contains(err.Error(), "6.1.0-55-amd64/updates/dkms/wireguard.ko") {
		t.Fatalf("Remove: %v, want it to name the leftover module", err)
	}
}

func TestHeaderKernels(t *testing.T) {
	root := t.TempDir()
	for _, k := range []string{"6.1.0-56-amd64", "5.10.0-32-amd64", "6.12.48+deb13-amd64"} {
		writeTestFile(t, filepath.Join(root, "lib/modules", k, "build/include/linux/kconfig.h"), "")
	}
	writeTestFile(t, filepath.Join(root, "lib/modules/6.18.0-fc/modules.dep"), "")
	got := strings.Join(HeaderKernels(root), " ")
	if want := "5.10.0-32-amd64 6.1.0-56-amd64 6.12.48+deb13-amd64"; got != want {
		t.Errorf("HeaderKernels = %q, want %q", got, want)
	}
}
