package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/wgkit/wgkit/initramfs"
	"github.com/wgkit/wgkit/initramfs/manifest"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// SelftestModules are what netns.sh needs of netfilter: iptables (legacy)
// with the length match, MARK, SNAT, and the filter, nat and mangle
// tables. The guest has no modprobe, so they are loaded up front, and so
// is crc32c, a soft dependency of conntrack's libcrc32c that modules.dep
// does not list.
var SelftestModules = []string{
	"crc32c_generic|crc32c_intel", "ip_tables", "iptable_filter", "iptable_nat", "iptable_mangle",
	"xt_length", "xt_mark", "xt_nat", "nf_conntrack",
}

// selftestRel is where the script sits in a kernel source tree.
const selftestRel = "tools/testing/selftests/wireguard/netns.sh"

// selftestScript returns the host path of netns.sh for the target kernel:
// from its source tree when it was built from source, else from Debian's
// linux-source tarball of the same X.Y, extracted once into the cache.
func selftestScript(ctx context.Context, h *Host, t *Target) (string, error) {
	if t.SourceDir != "" {
		p := filepath.Join(t.SourceDir, selftestRel)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("the kernel's selftest: %w", err)
		}
		return p, nil
	}
	xy := majorMinor(t.Kernel.Release)
	if xy == "" {
		return "", fmt.Errorf("cannot tell the X.Y version of kernel %s, to find its linux-source", t.Kernel.Release)
	}
	tarball := filepath.Join("/usr/src", "linux-source-"+xy+".tar.xz")
	fi, err := os.Stat(tarball)
	if err != nil {
		return "", fmt.Errorf("the kernel's selftest comes from %s, which is missing: run `apt-get install linux-source-%s` (or `wgbuild deps`)", tarball, xy)
	}
	key := cache.NewKey("selftest")
	key.AddString("tarball", tarball)
	key.AddString("size", strconv.FormatInt(fi.Size(), 10))
	key.AddString("mtime", fi.ModTime().UTC().Format(time.RFC3339Nano))
	dir, _, err := h.Cache.Get("selftest", key.Sum(), func(tmp string) error {
		h.logf("conformance: extracting %s from %s (once)", selftestRel, tarball)
		cmd := exec.CommandContext(ctx, "tar", "-xJOf", tarball, "--wildcards", "*/"+selftestRel)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("extracting %s from %s: %v: %s", selftestRel, tarball, err, bytes.TrimSpace(stderr.Bytes()))
		}
		if len(out) == 0 {
			return fmt.Errorf("%s has no %s", tarball, selftestRel)
		}
		return os.WriteFile(filepath.Join(tmp, "netns.sh"), out, 0o755)
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "netns.sh"), nil
}

var majorMinorRE = regexp.MustCompile(`^(\d+\.\d+)`)

// majorMinor returns "6.1" for "6.1.0-48-amd64".
func majorMinor(release string) string {
	return majorMinorRE.FindString(release)
}

// selftestTool is a command netns.sh runs: its name in the guest, where the
// host has it and the Debian package it comes from. link names another tool
// it is a link to (argv[0] picks the behaviour).
type selftestTool struct {
	name, host, pkg, link string
}

var selftestToolList = []selftestTool{
	{name: "bash", host: "bash", pkg: "bash"},
	{name: "ip", host: "ip", pkg: "iproute2"},
	{name: "ss", host: "ss", pkg: "iproute2"},
	{name: "ping", host: "ping", pkg: "iputils-ping"},
	{name: "ping6", link: "ping"},
	{name: "iperf3", host: "iperf3", pkg: "iperf3"},
	{name: "ncat", host: "ncat", pkg: "ncat"},
	// The script's iptables rules are legacy xtables.
	{name: "xtables-legacy-multi", host: "xtables-legacy-multi", pkg: "iptables"},
	{name: "iptables", link: "xtables-legacy-multi"},
	{name: "wg", host: "wg", pkg: "wireguard-tools"},
}

// xtablesDir holds the iptables extensions (libxt_*.so), which iptables
// opens at run time from the path it was built with.
const xtablesDir = "/usr/lib/x86_64-linux-gnu/xtables"

// addSelftest puts netns.sh and the tools it runs into the overlay.
func addSelftest(o *initramfs.Overlay, script string) error {
	if err := o.AddFile(script, manifest.SelftestScript); err != nil {
		return err
	}
	for _, tl := range selftestToolList {
		guest := filepath.Join(manifest.SelftestToolsDir, tl.name)
		if tl.link != "" {
			if err := o.AddSymlink(guest, tl.link); err != nil {
				return err
			}
			continue
		}
		host, err := LookTool(tl.host)
		if err != nil {
			return fmt.Errorf("netns.sh needs %s on the host to copy into the guest: run `apt-get install %s` (or `wgbuild deps`)", tl.host, tl.pkg)
		}
		if err := o.AddExecutable(host, guest); err != nil {
			return err
		}
	}
	if _, err := o.AddLibraries(xtablesDir, "*.so"); err != nil {
		return fmt.Errorf("iptables extensions: %w (run `apt-get install iptables`)", err)
	}
	return nil
}

// LookTool finds a command in PATH or, as a root shell would, in the sbin
// directories, which a user's PATH often lacks.
func LookTool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p, serr := exec.LookPath(filepath.Join(d, name)); serr == nil {
			return p, nil
		}
	}
	return "", err
}
