package kbuild

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// InTreeOptions configures BuildInTree.
type InTreeOptions struct {
	KernelOptions
	// SrcDir is the driver (the repository's kernel/).
	SrcDir string
	// KconfigFile is the driver's Kconfig entry (the repository's Kconfig).
	KconfigFile string
}

// InTree is a kernel built with the driver in its tree.
type InTree struct {
	*BuiltKernel
	// Module is the driver, built by the kernel's own build as
	// CONFIG_WIREGUARD=m.
	Module string
	// Compat lists the compat fallbacks the overlay needed ("" for none).
	Compat string
}

// BuildInTree overlays the driver onto a copy of the kernel tree and builds
// the kernel with it. The copy and its build directory are a workspace kept
// in the cache (keyed by the tree and the config, not the driver): the
// first build compiles the whole kernel, and after a driver edit make
// rebuilds only the driver. Each result (image, modules) is its own cache
// entry, keyed by the workspace and the overlay.
func BuildInTree(ctx context.Context, opts InTreeOptions) (*InTree, error) {
	start := time.Now()
	if opts.Reporter == nil {
		opts.Reporter = nopReporter{}
	}
	if err := checkKernelTools(); err != nil {
		return nil, err
	}
	ov, err := NewOverlay(opts.SrcDir, opts.KconfigFile, opts.Tree.Dir)
	if err != nil {
		return nil, err
	}
	applyQuirks(&opts.KernelOptions)
	wsKey, err := kernelKey(ctx, &opts.KernelOptions, "in-tree workspace")
	if err != nil {
		return nil, err
	}
	k := cache.NewKey("intree")
	k.AddString("workspace", wsKey)
	for _, rel := range slices.Sorted(maps.Keys(ov.Files)) {
		k.Add(rel, ov.Files[rel])
	}
	key := k.Sum()
	compatNote := "none"
	if ov.Compat != "" {
		compatNote = ov.Compat
	}
	opts.Reporter.Phase("kernel %s (%s), config %s, driver in tree (compat: %s): entry %s", opts.Tree.Version, opts.Tree.Origin, opts.Config, compatNote, cache.Short(key))
	dir, hit, err := opts.Cache.Get("intree", key, func(tmp string) error {
		unlock, err := opts.Cache.Lock("worktree-" + wsKey)
		if err != nil {
			return err
		}
		defer unlock()
		ws := opts.Cache.Path("worktree", wsKey)
		src := filepath.Join(ws, "src")
		if err := linkTree(ctx, opts.Cache, opts.Tree.Dir, src, opts.Reporter); err != nil {
			return err
		}
		opts.Cache.Touch("worktree", wsKey) // used without Cache.Get: mark it used
		if _, err := ov.Apply(src); err != nil {
			return fmt.Errorf("writing the driver into %s: %w", src, err)
		}
		return buildKernelInto(ctx, tmp, filepath.Join(ws, "build"), src, &opts.KernelOptions, true)
	})
	if err != nil {
		return nil, explainBuildError(err, "in-tree kernel")
	}
	bk, err := openBuiltKernel(dir)
	if err != nil {
		return nil, err
	}
	bk.BuildDir = filepath.Join(opts.Cache.Path("worktree", wsKey), "build")
	bk.Key, bk.Hit, bk.Duration = key, hit, time.Since(start)
	ko := filepath.Join(bk.ModulesDir, "kernel", DriverDir, ModuleName+".ko")
	if _, err := os.Stat(ko); err != nil {
		return nil, fmt.Errorf("the in-tree build made no %s: is CONFIG_WIREGUARD=m in %s?", ko, bk.ConfigPath)
	}
	return &InTree{BuiltKernel: bk, Module: ko, Compat: ov.Compat}, nil
}

// linkTree makes dst a copy of the pristine tree src whose files are hard
// links (seconds, no space): the overlay then replaces files by unlinking
// them, so the pristine tree is never changed.
func linkTree(ctx context.Context, c *cache.Cache, src, dst string, rep Reporter) error {
	if _, err := os.Stat(filepath.Join(dst, "Makefile")); err == nil {
		return nil
	}
	rep.Phase("in-tree: linking a copy of %s", src)
	tmp, err := c.TempDir("worktree")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out, err := exec.CommandContext(ctx, "cp", "-al", src, filepath.Join(tmp, "src")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -al %s: %v: %s", src, err, out)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	_ = os.RemoveAll(dst)
	return os.Rename(filepath.Join(tmp, "src"), dst)
}
