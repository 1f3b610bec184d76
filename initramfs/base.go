// Package initramfs builds the guest image for wgbuild vmtest.
//
// The image is two concatenated cpio archives. The base holds what rarely
// changes and takes a Go build to make: u-root's init and our guest init
// (vmtest/cmd/wgvm-init), compiled by mkuimage in busybox mode, cached by a
// hash of their sources. The overlay holds what changes every run — kernel
// modules, the guest test binary, wg and its libraries, the manifest — and
// is written directly, in well under a second.
package initramfs

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// Packages the base archive is made of.
const (
	InitPkg  = "github.com/u-root/u-root/cmds/core/init"
	UinitPkg = "github.com/wgkit/wgkit/vmtest/cmd/wgvm-init"
)

// DefaultCommands are the u-root commands in the base besides init: small
// tools for looking around a guest when a run goes wrong. In busybox mode
// each costs little; they must also be kept in go.mod as tool lines so that
// `go mod tidy` does not drop their dependencies.
var DefaultCommands = []string{
	"github.com/u-root/u-root/cmds/core/cat",
	"github.com/u-root/u-root/cmds/core/dmesg",
	"github.com/u-root/u-root/cmds/core/ip",
	"github.com/u-root/u-root/cmds/core/ls",
	"github.com/u-root/u-root/cmds/core/ps",
}

// Base describes the base archive.
type Base struct {
	// RepoDir is the root of the Go module that holds UinitPkg.
	RepoDir string
	// Commands are extra u-root commands; nil means DefaultCommands.
	Commands []string
}

func (b Base) packages() []string {
	cmds := b.Commands
	if cmds == nil {
		cmds = DefaultCommands
	}
	pkgs := append([]string{InitPkg, UinitPkg}, cmds...)
	sort.Strings(pkgs[2:])
	return pkgs
}

// KeyInputs returns the named inputs that determine the base archive: the
// module's go.mod and go.sum, the Go version, the package list, and the
// sources of every in-repository package the guest init is built from.
func (b Base) KeyInputs(ctx context.Context) (map[string][]byte, error) {
	in := map[string][]byte{}
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(b.RepoDir, f))
		if err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
		in[f] = data
	}
	ver, err := goOutput(ctx, b.RepoDir, "env", "GOVERSION")
	if err != nil {
		return nil, err
	}
	in["go"] = ver
	in["packages"] = []byte(strings.Join(b.packages(), "\n"))
	// The guest init's in-repo dependencies (e.g. initramfs/manifest).
	dirs, err := goOutput(ctx, b.RepoDir, "list", "-deps", "-f", "{{if not .Standard}}{{if not .Module}}{{.Dir}}{{else if .Module.Main}}{{.Dir}}{{end}}{{end}}", UinitPkg)
	if err != nil {
		return nil, err
	}
	for _, d := range strings.Fields(string(dirs)) {
		if err := hashGoFiles(in, b.RepoDir, d); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func hashGoFiles(in map[string][]byte, root, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		rel, _ := filepath.Rel(root, p)
		in["src:"+filepath.ToSlash(rel)] = data
	}
	return nil
}

func goOutput(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("initramfs: go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return bytes.TrimSpace(out), nil
}

// Build writes the base archive to out, using tmpDir for the compile. log
// receives mkuimage's progress lines.
func (b Base) Build(ctx context.Context, out, tmpDir string, log func(string)) error {
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	l := llog.New(slog.LevelWarn, func(format string, v ...any) {
		if log != nil {
			log(strings.TrimSpace(fmt.Sprintf(format, v...)))
		}
	})
	env := golang.Default(golang.DisableCGO(), golang.WithWorkingDir(b.RepoDir))
	err = uimage.Create(l,
		uimage.WithReplaceEnv(env),
		uimage.WithTempDir(tmpDir),
		uimage.WithBaseArchive(uimage.DefaultRamfs()),
		uimage.WithCPIOOutput(absOut),
		uimage.WithSkipLDD(),
		uimage.WithBusyboxCommands(b.packages()...),
		uimage.WithInit("init"),
		uimage.WithUinit("wgvm-init"),
	)
	if err != nil {
		return fmt.Errorf("initramfs: building the base archive with mkuimage: %w", err)
	}
	fi, err := os.Stat(absOut)
	if err != nil || fi.Size() == 0 {
		return fmt.Errorf("initramfs: mkuimage wrote no archive to %s", absOut)
	}
	return os.Chmod(absOut, fs.FileMode(0o644))
}
