package deps

import (
	"errors"
	"strings"
	"testing"
)

func TestMissing(t *testing.T) {
	// What the kernel's netns.sh runs in the guest (wgbuild conformance).
	// And python3, for kunit.py (wgbuild kunit), sparse (wgbuild check) and
	// xz (a PVH boot's vmlinux).
	selftest := []string{"ip", "ping", "iperf3", "ncat", "xtables-legacy-multi", "python3", "sparse", "xz"}
	tests := []struct {
		name     string
		have     []string
		kernelOK bool // also: a kernel source tarball
		want     []string
	}{
		{"all present", append([]string{"qemu-system-x86_64", "make", "gcc", "wg", "dkms", "openssl", "go"}, selftest...), true, nil},
		{"fresh machine", []string{"go"}, false, []string{"qemu-system-x86-64", "make", "gcc", "wg", "dkms", "openssl", "ip", "ping", "iperf3", "ncat", "xtables-legacy-multi", "python3", "sparse", "xz", "kernel", "source tarball"}},
		{"no go", append([]string{"qemu-system-x86_64", "make", "gcc", "wg", "dkms", "openssl"}, selftest...), true, []string{"go"}},
		{"no dkms", append([]string{"qemu-system-x86_64", "make", "gcc", "wg", "openssl", "go"}, selftest...), true, []string{"dkms"}},
		{"no selftest tools", []string{"qemu-system-x86_64", "make", "gcc", "wg", "dkms", "openssl", "go", "ip", "xz"}, true, []string{"ping", "iperf3", "ncat", "xtables-legacy-multi", "python3", "sparse"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Host{
				LookPath: func(name string) (string, error) {
					for _, n := range tt.have {
						if n == name {
							return "/usr/bin/" + name, nil
						}
					}
					return "", errors.New("not found")
				},
				FindKernel: func() error {
					if tt.kernelOK {
						return nil
					}
					return errors.New("no kernel")
				},
				Glob: func(pattern string) ([]string, error) {
					if tt.kernelOK && pattern == KernelSourceGlob {
						return []string{"/usr/src/linux-source-6.1.tar.xz"}, nil
					}
					return nil, nil
				},
			}
			var got []string
			for _, m := range Missing(Requirements(h)) {
				got = append(got, m.What)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("missing = %q, want %d items like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(strings.ReplaceAll(got[i], "_", "-"), w) {
					t.Errorf("missing[%d] = %q, want %q", i, got[i], w)
				}
			}
		})
	}
}
