// Package deps checks that the host has what wgbuild needs and, as root,
// installs what is missing from the Debian archive with apt-get.
package deps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Packages are the Debian packages a build and test host needs: QEMU, a
// distribution kernel with its headers (the VM boots it; the module builds
// against it), a compiler, what kernel builds need, wg, and dkms with
// openssl (which dkms uses to make its module signing key), and what the
// kernel's own WireGuard selftest runs in the guest (wgbuild conformance),
// python3 for the kernel's kunit.py (wgbuild kunit), sparse (wgbuild check), and xz,
// which unpacks a kernel image's vmlinux for a PVH boot.
var Packages = []string{
	"qemu-system-x86", "linux-image-amd64", "linux-headers-amd64",
	"build-essential", "bc", "flex", "bison", "libelf-dev", "libssl-dev",
	"cpio", "wireguard-tools", "kmod", "linux-source", "dkms", "openssl",
	"iproute2", "iputils-ping", "iperf3", "ncat", "iptables", "python3",
	"sparse", "xz-utils",
}

// KernelSourceGlob matches the kernel source tarballs that Debian's
// linux-source package installs; wgbuild check takes checkpatch.pl from one.
const KernelSourceGlob = "/usr/src/linux-source-*.tar.xz"

// A Requirement is one thing the host must have.
type Requirement struct {
	What    string // shown to the user
	Package string // the Debian package that provides it; "" if none does
	// Check returns nil if the requirement is met.
	Check func() error
}

// Host abstracts the host for the checks, so that tests can fake it.
type Host struct {
	LookPath   func(string) (string, error)
	FindKernel func() error // nil if a bootable kernel with headers exists
	Glob       func(pattern string) ([]string, error)
}

// Requirements lists what wgbuild needs on host h.
func Requirements(h Host) []Requirement {
	tool := func(name, pkg string) Requirement {
		return Requirement{What: name, Package: pkg, Check: func() error {
			_, err := h.LookPath(name)
			return err
		}}
	}
	return []Requirement{
		tool("qemu-system-x86_64", "qemu-system-x86"),
		tool("make", "build-essential"),
		tool("gcc", "build-essential"),
		tool("wg", "wireguard-tools"),
		tool("dkms", "dkms"),
		tool("openssl", "openssl"),
		tool("ip", "iproute2"),
		tool("ping", "iputils-ping"),
		tool("iperf3", "iperf3"),
		tool("ncat", "ncat"),
		tool("xtables-legacy-multi", "iptables"),
		tool("python3", "python3"),
		tool("sparse", "sparse"),
		tool("xz", "xz-utils"),
		{What: "a distribution kernel (/boot/vmlinuz-<ver>) with its headers (/lib/modules/<ver>/build)", Package: "linux-image-amd64 linux-headers-amd64", Check: h.FindKernel},
		{What: "a kernel source tarball (" + KernelSourceGlob + ") for checkpatch.pl", Package: "linux-source", Check: func() error {
			if m, _ := h.Glob(KernelSourceGlob); len(m) == 0 {
				return errors.New("not found")
			}
			return nil
		}},
		{What: "go (Go 1.26)", Check: func() error {
			_, err := h.LookPath("go")
			return err
		}},
	}
}

// Missing returns the unmet requirements.
func Missing(reqs []Requirement) []Requirement {
	var out []Requirement
	for _, r := range reqs {
		if err := r.Check(); err != nil {
			out = append(out, r)
		}
	}
	return out
}

// InstallCommand is the apt-get command line that installs Packages.
func InstallCommand() []string {
	return append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, Packages...)
}

// Install runs apt-get install for Packages, non-interactively, running
// apt-get update and retrying once if the first attempt fails (stale or
// missing package lists). It never touches the apt sources.
func Install(ctx context.Context, out io.Writer) error {
	run := func(args ...string) error {
		fmt.Fprintf(out, "+ %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = out, out
		return cmd.Run()
	}
	if err := run(InstallCommand()...); err == nil {
		return nil
	}
	if err := run("apt-get", "update"); err != nil {
		return fmt.Errorf("apt-get update failed: %w (is the Debian archive reachable?)", err)
	}
	if err := run(InstallCommand()...); err != nil {
		return fmt.Errorf("apt-get install failed: %w", err)
	}
	return nil
}
