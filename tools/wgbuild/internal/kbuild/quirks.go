package kbuild

import (
	"bytes"
	"os"
	"path/filepath"

	"github.com/wgkit/wgkit/tools/wgbuild/configs"
)

// A treeQuirk is what a kernel tree needs beyond the named configuration:
// a build problem of an old tree with today's toolchain, or an option the
// fragments ask for that moved behind a new one. It is recognised by the
// tree's own text (never by its version: stable releases carry fixes and
// backports), and answered with configuration only. Our driver is never
// edited for one. The fragments of the configs stay as they are, so that
// the cache entries of the trees that need no quirk stay valid.
type treeQuirk struct {
	name string
	// file, relative to the tree, holds marker while the tree has the
	// problem.
	file, marker string
	fragment     string
}

var treeQuirks = []treeQuirk{
	{
		// Before "libsubcmd: Fix use-after-free for realloc(..., 0)"
		// (5.17), gcc 12 fails objtool's libsubcmd with
		// -Werror=use-after-free. The ORC unwinder needs objtool; the
		// frame-pointer unwinder does not.
		name:   "objtool-libsubcmd-gcc12",
		file:   "tools/lib/subcmd/subcmd-util.h",
		marker: "if (!ret && !size)",
		fragment: "# wgbuild: this tree's objtool does not build with gcc 12 (libsubcmd's realloc(p, 0));\n" +
			"# the frame-pointer unwinder needs no objtool.\n" +
			"# CONFIG_UNWINDER_ORC is not set\n" +
			"CONFIG_UNWINDER_FRAME_POINTER=y\n" +
			"# CONFIG_STACK_VALIDATION is not set\n",
	},
	{
		// After 6.12 (7.2 has it): iptables' legacy tables, which the
		// guest suite and netns.sh use (iptables-legacy), depend on
		// NETFILTER_XTABLES_LEGACY and IP_NF_IPTABLES_LEGACY.
		name:   "iptables-legacy",
		file:   "net/ipv4/netfilter/Kconfig",
		marker: "depends on IP_NF_IPTABLES_LEGACY",
		fragment: "# wgbuild: this tree puts iptables' legacy tables behind these options.\n" +
			"CONFIG_NETFILTER_XTABLES_LEGACY=y\n" +
			"CONFIG_IP_NF_IPTABLES_LEGACY=y\n",
	},
}

// quirkFragments returns the fragments that work around the problems the
// tree at dir has, in the order of treeQuirks. They go after the user's
// fragments and are part of the kernel's cache key.
func quirkFragments(dir string) []configs.Fragment {
	var out []configs.Fragment
	for _, q := range treeQuirks {
		b, err := os.ReadFile(filepath.Join(dir, q.file))
		if err != nil || !bytes.Contains(b, []byte(q.marker)) {
			continue
		}
		out = append(out, configs.Fragment{Name: "quirk-" + q.name + ".config", Data: []byte(q.fragment)})
	}
	return out
}

// applyQuirks adds the tree's quirk fragments to opts.
func applyQuirks(opts *KernelOptions) {
	opts.Fragments = append(opts.Fragments[:len(opts.Fragments):len(opts.Fragments)], quirkFragments(opts.Tree.Dir)...)
}
