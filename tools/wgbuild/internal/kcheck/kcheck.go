// Package kcheck runs the kernel's own style checks on the driver:
// checkpatch.pl --strict and kernel-doc, taken from a kernel source tree or
// a Debian linux-source tarball.
package kcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/deps"
)

// scripts are the files the checks need, relative to a kernel tree's root.
var scripts = []string{
	"scripts/checkpatch.pl",
	"scripts/spelling.txt",
	"scripts/const_structs.checkpatch",
	"scripts/kernel-doc",
}

// ErrNoSource is returned when no kernel source is found.
var ErrNoSource = errors.New("no kernel source with scripts/checkpatch.pl found: " +
	"run `apt-get install linux-source` (or `wgbuild deps`), or pass --kernel-source")

// FindSource returns the kernel source to take the scripts from: spec when
// it is set (a tree or a .tar.xz), else the newest
// /usr/src/linux-source-*.tar.xz.
func FindSource(spec string) (string, error) {
	if spec != "" {
		if _, err := os.Stat(spec); err != nil {
			return "", fmt.Errorf("kernel source %s: %w", spec, err)
		}
		return spec, nil
	}
	matches, _ := filepath.Glob(deps.KernelSourceGlob)
	if len(matches) == 0 {
		return "", ErrNoSource
	}
	sort.Strings(matches)
	return matches[len(matches)-1], nil
}

// Scripts returns a directory holding the check scripts of the kernel
// source src. From a tarball they are extracted once into the cache, keyed
// by the tarball's path, size and modification time.
func Scripts(c *cache.Cache, src string) (string, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(src, scripts[0])); err != nil {
			return "", fmt.Errorf("%s is not a kernel tree: %w", src, err)
		}
		return filepath.Join(src, "scripts"), nil
	}
	key := cache.NewKey("kscripts")
	key.AddString("tarball", fmt.Sprintf("%s %d %d", src, fi.Size(), fi.ModTime().UnixNano()))
	dir, _, err := c.Get("kscripts", key.Sum(), func(dir string) error {
		return extract(src, dir)
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "scripts"), nil
}

// extract copies the scripts out of a kernel tarball whose paths start
// with one top-level directory. tar (with xz) is several times faster than
// a Go decompressor on the 140 MB archive.
func extract(tarball, dir string) error {
	args := []string{"-xf", tarball, "-C", dir, "--strip-components=1", "--wildcards"}
	for _, s := range scripts {
		args = append(args, "*/"+s)
	}
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("extracting the check scripts from %s: %v: %s (is the file complete? reinstall linux-source)",
			tarball, err, strings.TrimSpace(string(out)))
	}
	for _, s := range scripts {
		if _, err := os.Stat(filepath.Join(dir, s)); err != nil {
			return fmt.Errorf("%s lacks %s", tarball, s)
		}
	}
	return nil
}

// Sources lists the driver's C sources and headers under dir, relative to
// it, leaving out compat/, which is generated for out-of-tree builds and is
// never part of the driver proper.
func Sources(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && rel == "compat" {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".c") || strings.HasSuffix(p, ".h")) {
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}

// A Result is the outcome of one check.
type Result struct {
	Name   string
	Passed bool
	Output string // what the tool printed about the problems
}

// Checkpatch runs checkpatch.pl --strict on files (relative to dir).
func Checkpatch(ctx context.Context, scriptsDir, dir string, files []string) (Result, error) {
	args := append([]string{filepath.Join(scriptsDir, "checkpatch.pl"),
		"--strict", "--no-tree", "--max-line-length=80", "--show-types",
		"--no-summary", "--quiet", "-f"}, files...)
	out, err := run(ctx, dir, "perl", args...)
	res := Result{Name: "checkpatch --strict", Output: out}
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.Passed = strings.TrimSpace(out) == ""
	case errors.As(err, &ee):
		// checkpatch exits 1 when it reports something.
	default:
		return res, fmt.Errorf("running checkpatch.pl: %w", err)
	}
	return res, nil
}

// KernelDoc runs kernel-doc -none on files (relative to dir): any message
// is a malformed or incomplete kernel-doc comment.
func KernelDoc(ctx context.Context, scriptsDir, dir string, files []string) (Result, error) {
	args := append([]string{filepath.Join(scriptsDir, "kernel-doc"), "-none"}, files...)
	out, err := run(ctx, dir, "perl", args...)
	res := Result{Name: "kernel-doc", Output: out}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return res, fmt.Errorf("running kernel-doc: %w", err)
		}
		return res, nil
	}
	res.Passed = strings.TrimSpace(out) == ""
	return res, nil
}

func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}
