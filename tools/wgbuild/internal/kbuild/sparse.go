package kbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

// SparseSuite is the Debian suite whose sparse is built when a kernel
// refuses the host's: 7.x's scripts/checker-valid.sh wants
// __typeof_unqual__, which Debian 12's 0.6.4 does not know and unstable's
// 0.6.5~rc1 does. Unstable's binary package needs a newer glibc than
// Debian 12's, so its source package is built here (ten seconds).
const SparseSuite = "sid"

// kindTool is the cache kind of tools built from source.
const kindTool = "tool"

// sparseRecipe names how the cached sparse is built.
const sparseRecipe = "sparse-v1: apt-get source sparse; make CC=gcc sparse"

// Sparse finds the sparse that the kernel tree at kdir accepts: the
// host's, when the tree's scripts/checker-valid.sh accepts it or the tree
// has no such script (before 6.14 the kernel checked nothing); otherwise
// Debian unstable's, built from its source package into the cache. from
// says where it came from, for people: "the host's sparse 0.6.4",
// "sparse 0.6.5~rc1-2 built from Debian sid's source". kdir is a source
// tree or a build directory whose scripts (or source/scripts) are the
// tree's.
func Sparse(ctx context.Context, c *cache.Cache, kdir string, progress func(string, ...any)) (path, from string, err error) {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	valid := checkerValid(kdir)
	host, hostErr := exec.LookPath("sparse")
	if hostErr == nil && (valid == "" || accepts(ctx, valid, host)) {
		return host, "the host's sparse " + sparseVersion(ctx, host), nil
	}
	why := "sparse not installed (apt-get install sparse)"
	if hostErr == nil {
		why = "the host's sparse " + sparseVersion(ctx, host) + " is too old for this kernel (" + valid + ")"
	}
	progress("%s: building Debian %s's sparse from source", why, SparseSuite)
	src, version, err := ksrc.DebianSourcePackage(ctx, ksrc.Options{Cache: c, Progress: progress}, SparseSuite, "sparse")
	if err != nil {
		return "", "", fmt.Errorf("%s, and Debian %s's could not be fetched: %w", why, SparseSuite, err)
	}
	gcc, err := gccVersion(ctx)
	if err != nil {
		return "", "", err
	}
	key := cache.NewKey(kindTool)
	key.AddString("recipe", sparseRecipe)
	key.AddString("source", src)
	key.AddString("gcc", gcc)
	dir, _, err := c.Get(kindTool, key.Sum(), func(out string) error {
		work := filepath.Join(out, "build")
		if b, err := exec.CommandContext(ctx, "cp", "-a", src, work).CombinedOutput(); err != nil {
			return fmt.Errorf("copying sparse's source: %v: %s", err, b)
		}
		// Debian's patches name its own default compiler (CC = gcc-16 in
		// unstable): the host's builds it, and sparse reads that one's
		// include paths.
		cmd := exec.CommandContext(ctx, "make", "-C", work, "CC=gcc", "sparse")
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building sparse %s: %v: %s", version, err, lastLine(log.Bytes()))
		}
		if err := os.MkdirAll(filepath.Join(out, "bin"), 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(work, "sparse"), filepath.Join(out, "bin", "sparse")); err != nil {
			return err
		}
		return os.RemoveAll(work)
	})
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "bin", "sparse")
	if valid != "" && !accepts(ctx, valid, path) {
		return "", "", fmt.Errorf("%s, and Debian %s's sparse %s is refused by %s too", why, SparseSuite, version, valid)
	}
	return path, "sparse " + version + " built from Debian " + SparseSuite + "'s source", nil
}

// includedMakefile matches the line of a build directory's Makefile
// (O=, or Debian's linux-headers-*-amd64) that names the source tree's.
var includedMakefile = regexp.MustCompile(`(?m)^include (\S+)/Makefile$`)

// checkerValid is the tree's scripts/checker-valid.sh, or "".
func checkerValid(kdir string) string {
	dirs := []string{kdir, filepath.Join(kdir, "source")}
	if b, err := os.ReadFile(filepath.Join(kdir, "Makefile")); err == nil {
		if m := includedMakefile.FindSubmatch(b); m != nil {
			dirs = append(dirs, string(m[1]))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "scripts", "checker-valid.sh")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// accepts runs the kernel's checker-valid.sh on sparse: it prints 1 when
// the kernel's Makefile would run it.
func accepts(ctx context.Context, script, sparse string) bool {
	out, err := exec.CommandContext(ctx, "sh", script, sparse).Output()
	return err == nil && strings.TrimSpace(string(out)) == "1"
}

func sparseVersion(ctx context.Context, sparse string) string {
	out, err := exec.CommandContext(ctx, sparse, "--version").Output()
	if err != nil {
		return "(unknown version)"
	}
	return strings.TrimSpace(string(out))
}
