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
	"strings"
	"time"

	"github.com/wgkit/wgkit/initramfs"
	"github.com/wgkit/wgkit/initramfs/manifest"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

// SelftestModules are what netns.sh needs of netfilter: iptables (legacy)
// with the length match, MARK, SNAT, and the filter, nat and mangle
// tables. The guest has no modprobe, so they are loaded up front, and so
// is crc32c, a soft dependency of conntrack's libcrc32c that modules.dep
// does not list; since 6.14 the crc32 library (lib/crc) provides crc32c
// and libcrc32c is gone.
var SelftestModules = []string{
	"crc32c_generic|crc32c_intel|crc32", "ip_tables", "iptable_filter", "iptable_nat", "iptable_mangle",
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

// wgRemoval is the syntax of netns.sh since 2025 that removes one allowed IP
// (allowed-ips -192.168.0.1/32), which wireguard-tools has parsed since
// v1.0.20250521; an older wg reads "-192.168.0.1" as a bad address.
var (
	wgRemoval   = regexp.MustCompile(`allowed-ips\s+-`)
	wgVersionRE = regexp.MustCompile(`v1\.0\.(\d{8})\b`)
)

const wgRemovalSince = 20250521

// newerWG is a wg for a script that needs a newer one than the host's:
// Debian unstable's wireguard-tools and the libc6 it is built against,
// unpacked (package paths under each directory). The guest runs it through
// that libc's own loader, so the other tools keep the host's libc.
type newerWG struct {
	tools, libc, version string
}

// selftestWG returns nil when the host's wg can run the script, else a
// newer wg from Debian unstable.
func selftestWG(ctx context.Context, h *Host, script string) (*newerWG, error) {
	b, err := os.ReadFile(script)
	if err != nil {
		return nil, err
	}
	if !wgRemoval.Match(b) {
		return nil, nil
	}
	host, err := LookTool("wg")
	if err != nil {
		return nil, fmt.Errorf("netns.sh needs wg: run `apt-get install wireguard-tools` (or `wgbuild deps`)")
	}
	out, _ := exec.CommandContext(ctx, host, "--version").Output()
	if wgVersionDate(string(out)) >= wgRemovalSince {
		return nil, nil
	}
	h.logf("conformance: netns.sh removes single allowed IPs (allowed-ips -IP), which %s (%s) cannot parse: taking wg from Debian unstable",
		host, strings.TrimSpace(string(out)))
	opts := ksrc.Options{Cache: h.Cache, Progress: h.logf}
	var w newerWG
	if w.tools, w.version, err = ksrc.DebianPackage(ctx, opts, "sid", "wireguard-tools"); err != nil {
		return nil, fmt.Errorf("a wg that parses allowed-ips -IP: %w", err)
	}
	if w.libc, _, err = ksrc.DebianPackage(ctx, opts, "sid", "libc6"); err != nil {
		return nil, fmt.Errorf("the libc6 of Debian unstable's wg: %w", err)
	}
	return &w, nil
}

// wgVersionDate returns 20210914 for "wireguard-tools v1.0.20210914 - ...",
// 0 when the output names no such version.
func wgVersionDate(out string) int {
	m := wgVersionRE.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// add puts the newer wg into the overlay, with a wrapper at the guest path
// of the script's wg that runs it through its own libc's loader.
func (w *newerWG) add(o *initramfs.Overlay) error {
	const libdir = "usr/lib/x86_64-linux-gnu"
	dir := manifest.SelftestDir + "/wg-unstable"
	files := map[string]string{
		filepath.Join(w.tools, "usr/bin/wg"):                  dir + "/wg",
		filepath.Join(w.libc, libdir, "libc.so.6"):            dir + "/libc.so.6",
		filepath.Join(w.libc, libdir, "ld-linux-x86-64.so.2"): dir + "/ld-linux-x86-64.so.2",
	}
	for host, guest := range files {
		if err := o.AddFile(host, guest); err != nil {
			return fmt.Errorf("wg %s of Debian unstable: %w", w.version, err)
		}
	}
	wrapper := fmt.Sprintf("#!%s/bash\n# Debian unstable's wg %s, with its own libc.\nexec %s/ld-linux-x86-64.so.2 --library-path %s %s/wg \"$@\"\n",
		manifest.SelftestToolsDir, w.version, dir, dir, dir)
	return o.AddBytes(filepath.Join(manifest.SelftestToolsDir, "wg"), []byte(wrapper), 0o755)
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

// addSelftest puts netns.sh and the tools it runs into the overlay; wg is
// newer's when that is not nil.
func addSelftest(o *initramfs.Overlay, script string, newer *newerWG) error {
	if err := o.AddFile(script, manifest.SelftestScript); err != nil {
		return err
	}
	for _, tl := range selftestToolList {
		guest := filepath.Join(manifest.SelftestToolsDir, tl.name)
		if tl.name == "wg" && newer != nil {
			if err := newer.add(o); err != nil {
				return err
			}
			continue
		}
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
