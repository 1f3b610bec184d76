package kbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Since 7.2 the kernel generates include/uapi/linux/wireguard.h from its
// netlink spec (Documentation/netlink/specs/wireguard.yaml, by
// tools/net/ynl). Where the tree's header is generated and defines what
// ours does with the same values, the in-tree build and the series keep
// the tree's: replacing a generated file by hand is what a reviewer would
// refuse, and the numbers are what matters to wg(8). kernel/ carries those
// files as the generator writes them, for the kernels that predate it.

// NetlinkSpec is the family's netlink spec in a tree that has one.
const NetlinkSpec = "Documentation/netlink/specs/wireguard.yaml"

// SpecGenerated are the files of kernel/ that tools/net/ynl generates from
// NetlinkSpec: the driver carries them as a tree of 7.2 or later has them.
var SpecGenerated = []string{"uapi/wireguard.h", "generated/netlink.c", "generated/netlink.h"}

// ynlMarker is in the first lines of a header tools/net/ynl generated.
var ynlMarker = []byte("YNL-GEN uapi header")

// TreeUAPI returns the tree's uapi header and whether it is generated
// from the netlink spec. A tree without one returns nil, false.
func TreeUAPI(tree string) ([]byte, bool) {
	b, err := os.ReadFile(filepath.Join(tree, filepath.FromSlash(uapiPath)))
	if err != nil {
		return nil, false
	}
	return b, bytes.Contains(b, ynlMarker)
}

var (
	uapiEnumerator = regexp.MustCompile(`(?m)^\s*(WG[A-Z0-9_]*)\s*(?:=[^,\n]*)?,?\s*(?:/\*.*)?$`)
	uapiDefine     = regexp.MustCompile(`(?m)^#define\s+(WG[A-Z0-9_]*)\s+(\S.*)$`)
)

// uapiNames lists the constants of a uapi header: the enumerators and
// object-like macros whose names start with WG (the __-prefixed helpers
// are not the interface), and which of them are strings.
func uapiNames(h []byte) (names []string, strs map[string]bool) {
	strs = map[string]bool{}
	for _, m := range uapiEnumerator.FindAllSubmatch(h, -1) {
		names = append(names, string(m[1]))
	}
	for _, m := range uapiDefine.FindAllSubmatch(h, -1) {
		names = append(names, string(m[1]))
		if bytes.HasPrefix(bytes.TrimSpace(m[2]), []byte(`"`)) {
			strs[string(m[1])] = true
		}
	}
	slices.Sort(names)
	return slices.Compact(names), strs
}

// UAPIDiff compares the interface of two uapi headers, ours and the
// tree's: every constant of theirs must be in ours with the same value
// (a *_MAX may grow), or existing clients break; what ours adds is listed
// in added. It compiles and runs a program with the host's gcc for each
// header (the headers include only <linux/types.h>). breaks has one line
// per difference.
func UAPIDiff(ctx context.Context, ours, theirs []byte) (breaks, added []string, err error) {
	mine, strs := uapiNames(ours)
	have, theirStrs := uapiNames(theirs)
	if len(mine) == 0 || len(have) == 0 {
		return nil, nil, fmt.Errorf("a uapi header that defines no WG constant")
	}
	var common []string
	for _, n := range have {
		if slices.Contains(mine, n) {
			common = append(common, n)
		} else {
			breaks = append(breaks, n+": the tree's, not in ours")
		}
	}
	for _, n := range mine {
		if !slices.Contains(have, n) {
			added = append(added, n)
		}
	}
	for n := range theirStrs {
		strs[n] = true
	}
	a, err := uapiValues(ctx, ours, common, strs)
	if err != nil {
		return nil, nil, fmt.Errorf("the driver's uapi header: %w", err)
	}
	b, err := uapiValues(ctx, theirs, common, strs)
	if err != nil {
		return nil, nil, fmt.Errorf("the tree's uapi header: %w", err)
	}
	for _, n := range common {
		if a[n] == b[n] {
			continue
		}
		if strings.HasSuffix(n, "_MAX") && len(added) > 0 && grows(a[n], b[n]) {
			continue
		}
		breaks = append(breaks, fmt.Sprintf("%s: ours %s, the tree's %s", n, a[n], b[n]))
	}
	return breaks, added, nil
}

// grows reports whether the number ours is larger than theirs.
func grows(ours, theirs string) bool {
	var a, b int64
	_, err1 := fmt.Sscan(ours, &a)
	_, err2 := fmt.Sscan(theirs, &b)
	return err1 == nil && err2 == nil && a > b
}

// uapiValues prints the values of names as header h defines them.
func uapiValues(ctx context.Context, h []byte, names []string, strs map[string]bool) (map[string]string, error) {
	dir, err := os.MkdirTemp("", "wgkit-uapi-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var prog strings.Builder
	prog.WriteString("#include <stdio.h>\n#include \"wireguard.h\"\nint main(void)\n{\n")
	for _, n := range names {
		if strs[n] {
			fmt.Fprintf(&prog, "\tprintf(\"%s=\\\"%%s\\\"\\n\", %s);\n", n, n)
		} else {
			fmt.Fprintf(&prog, "\tprintf(\"%s=%%lld\\n\", (long long)(%s));\n", n, n)
		}
	}
	prog.WriteString("\treturn 0;\n}\n")
	if err := os.WriteFile(filepath.Join(dir, "wireguard.h"), h, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "abi.c"), []byte(prog.String()), 0o644); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "abi")
	if out, err := exec.CommandContext(ctx, "gcc", "-o", bin, filepath.Join(dir, "abi.c")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("compiling the comparison (gcc, with the host's linux-libc-dev headers): %v: %s", err, lastLine(out))
	}
	out, err := exec.CommandContext(ctx, bin).Output()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}
