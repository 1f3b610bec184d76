package kbuild

import (
	"context"
	"os"
	"path"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// UAPIPath is where the driver's uapi header goes in a kernel tree.
const UAPIPath = uapiPath

// TreePath returns where the driver's file rel (relative to kernel/, slash
// separated) goes in a kernel tree: the uapi header under include/uapi,
// everything else under DriverDir.
func TreePath(rel string) string {
	if rel == "uapi/wireguard.h" {
		return uapiPath
	}
	return path.Join(DriverDir, rel)
}

// Configure writes bdir/.config for the tree srcDir as kernel builds do:
// ARCH=x86_64 tinyconfig, opts.Fragments (and the tree's quirk fragments)
// merged with merge_config.sh,
// olddefconfig, then the check that every requested option survived
// (a *ConfigError when one did not). unknown lists the requested options
// the tree does not define at all; they are ignored. make's output goes
// to logf.
func Configure(ctx context.Context, srcDir, bdir string, opts *KernelOptions, logf *os.File) (unknown string, err error) {
	o := *opts
	if o.Reporter == nil {
		o.Reporter = nopReporter{}
	}
	o.Fragments = append(o.Fragments[:len(o.Fragments):len(o.Fragments)], quirkFragments(srcDir)...)
	return configure(ctx, srcDir, bdir, &o, logf)
}

// LinkTree makes dst a copy of the tree src whose files are hard links,
// unless dst already has a Makefile. Whoever writes into dst must replace
// files (unlink, then create), never modify them in place: git does.
func LinkTree(ctx context.Context, c *cache.Cache, src, dst string, rep Reporter) error {
	if rep == nil {
		rep = nopReporter{}
	}
	return linkTree(ctx, c, src, dst, rep)
}

// RunMake runs make with args in dir, its output appended to logf and
// each kbuild step reported to rep's Status as "<what>: N steps, CC file".
func RunMake(ctx context.Context, dir string, args, env []string, logf *os.File, rep Reporter, what string) error {
	if rep == nil {
		rep = nopReporter{}
	}
	m := &makeRun{dir: dir, args: args, env: env, log: logf, rep: rep, what: what}
	return m.run(ctx)
}
