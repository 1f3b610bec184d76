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
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

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

// builderModules put the base archive together: mkuimage, with gobusybox
// rewriting the commands into one busybox program. Their versions are key
// inputs too.
var builderModules = []string{"github.com/u-root/mkuimage", "github.com/u-root/gobusybox/src"}

// KeyInputs returns the named inputs that determine the base archive:
//
//   - "go": the Go version;
//   - "packages": the package list;
//   - "mod:<path>": for each module the packages are built from, its
//     version and go.sum hash, and what go.mod replaces it with, if anything;
//   - "builder:<path>": the same for builderModules;
//   - "src:<file>": the sources of the packages that come with no hash: the
//     module's own (wgvm-init and the packages it imports) and those of
//     modules replaced by a directory.
//
// Other changes to go.mod and go.sum, such as a bump of a module that only
// tests or host tools use, leave them as they are.
func (b Base) KeyInputs(ctx context.Context) (map[string][]byte, error) {
	ver, err := goOutput(ctx, b.RepoDir, "env", "GOVERSION")
	if err != nil {
		return nil, err
	}
	pkgs, err := goOutput(ctx, b.RepoDir, append([]string{"list", "-deps", "-json=ImportPath,Dir,Standard,Module"}, b.packages()...)...)
	if err != nil {
		return nil, err
	}
	builders, err := goOutput(ctx, b.RepoDir, append([]string{"list", "-m", "-json"}, builderModules...)...)
	if err != nil {
		return nil, err
	}
	// go list has each module's hash from go.sum; go.sum itself is the
	// fallback.
	gosum, err := os.ReadFile(filepath.Join(b.RepoDir, "go.sum"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	in, srcDirs, err := moduleInputs(pkgs, builders, gosum)
	if err != nil {
		return nil, err
	}
	in["go"] = ver
	in["packages"] = []byte(strings.Join(b.packages(), "\n"))
	for _, d := range srcDirs {
		if err := hashGoFiles(in, b.RepoDir, d); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// A listedPackage is what go list -json tells of a package.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	Module     *listedModule
}

// A listedModule is what go list -json tells of a module.
type listedModule struct {
	Path      string
	Version   string
	Sum       string
	Main      bool
	GoVersion string
	Replace   *listedModule
}

// moduleInputs turns the output of go list -deps -json over the base's
// packages (pkgs) and of go list -m -json over builderModules (builders)
// into "mod:<path>" and "builder:<path>" inputs, and returns the directories
// of the packages whose sources are to be hashed instead: those of the main
// module, of modules replaced by a directory, of module versions for which
// neither go list nor gosum (the contents of go.sum) has a hash, and of
// packages outside any module. Standard packages come with the Go version.
func moduleInputs(pkgs, builders, gosum []byte) (map[string][]byte, []string, error) {
	in := map[string][]byte{}
	var dirs []string
	err := decodeJSONStream(pkgs, func(dec *json.Decoder) error {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			return err
		}
		switch {
		case p.Standard:
		case p.Module == nil:
			dirs = append(dirs, p.Dir)
		default:
			line, hashed := p.Module.line(gosum)
			in["mod:"+p.Module.Path] = []byte(line)
			if !hashed {
				dirs = append(dirs, p.Dir)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	err = decodeJSONStream(builders, func(dec *json.Decoder) error {
		var m listedModule
		if err := dec.Decode(&m); err != nil {
			return err
		}
		line, _ := m.line(gosum)
		in["builder:"+m.Path] = []byte(line)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return in, dirs, nil
}

func decodeJSONStream(data []byte, decode func(*json.Decoder) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		if err := decode(dec); err != nil {
			return fmt.Errorf("initramfs: reading go list output: %w", err)
		}
	}
	return nil
}

// line describes a module version for the key: its version and hash, and
// its replacement. hashed is false if that does not pin its contents: for
// the main module, a replacement by a directory, or when no hash is known.
func (m *listedModule) line(gosum []byte) (line string, hashed bool) {
	switch r := m.Replace; {
	case m.Main:
		return "main module, go " + m.GoVersion, false
	case r != nil && r.Version == "":
		return m.Version + " => " + r.Path, false
	case r != nil:
		sum := r.sum(gosum)
		return strings.TrimSpace(m.Version + " => " + r.Path + " " + r.Version + " " + sum), sum != ""
	default:
		sum := m.sum(gosum)
		return strings.TrimSpace(m.Version + " " + sum), sum != ""
	}
}

func (m *listedModule) sum(gosum []byte) string {
	if m.Sum != "" {
		return m.Sum
	}
	return goSumHash(gosum, m.Path, m.Version)
}

// goSumHash returns the hash that go.sum (its contents) has for the files of
// a module version, or "".
func goSumHash(gosum []byte, path, version string) string {
	for _, l := range strings.Split(string(gosum), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == path && f[1] == version {
			return f[2]
		}
	}
	return ""
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

// goWrapper writes tmpDir/go-wrapper/go, a script that runs the go command
// at gobin with GOTMPDIR=tmpDir/go-tmp, and returns its path. mkuimage runs
// go version and go build through it (golang.WithCompiler), so that the
// work directory of a go build that is killed (see stop.go) is left in
// tmpDir, which the caller removes, rather than in /tmp.
func goWrapper(tmpDir, gobin string) (string, error) {
	dir, err := filepath.Abs(filepath.Join(tmpDir, "go-wrapper"))
	if err != nil {
		return "", err
	}
	gotmp := filepath.Join(filepath.Dir(dir), "go-tmp")
	for _, d := range []string{dir, gotmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		}
	}
	script := fmt.Sprintf("#!/bin/sh\nGOTMPDIR=%s exec %s \"$@\"\n", shQuote(gotmp), shQuote(gobin))
	p := filepath.Join(dir, "go")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	return p, nil
}

func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func goOutput(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as Build compiles
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
//
// When ctx is done, Build returns ctx's error within about a second: it
// ends the go commands mkuimage started (see stop.go) rather than waiting
// the ~40 s the compile takes.
func (b Base) Build(ctx context.Context, out, tmpDir string, log func(string)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("initramfs: building the base archive: %w", err)
	}
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
	wrapper, err := goWrapper(tmpDir, filepath.Join(env.GOROOT, "bin", "go"))
	if err != nil {
		return err
	}
	env.Apply(golang.WithCompiler(wrapper))
	stop := newStopper(b.RepoDir, tmpDir)
	var createErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		createErr = uimage.Create(l,
			uimage.WithReplaceEnv(env),
			uimage.WithTempDir(tmpDir),
			uimage.WithBaseArchive(uimage.DefaultRamfs()),
			uimage.WithCPIOOutput(absOut),
			uimage.WithSkipLDD(),
			uimage.WithBusyboxCommands(b.packages()...),
			uimage.WithInit("init"),
			uimage.WithUinit("wgvm-init"),
		)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		stopped := make(chan struct{})
		stopping.Add(1)
		go func() {
			defer stopping.Done()
			defer close(stopped)
			stop.run(done)
		}()
		t := time.NewTimer(stopWait)
		defer t.Stop()
		select {
		case <-stopped:
		case <-t.C:
			// Create is busy in-process; the stopper goes on in the
			// background and ends its next command.
		}
		return fmt.Errorf("initramfs: building the base archive: %w", ctx.Err())
	}
	if err := createErr; err != nil {
		if ctx.Err() != nil {
			// Interrupted at a terminal: the go commands got the signal too.
			return fmt.Errorf("initramfs: building the base archive: %w", ctx.Err())
		}
		return fmt.Errorf("initramfs: building the base archive with mkuimage: %w", err)
	}
	fi, err := os.Stat(absOut)
	if err != nil || fi.Size() == 0 {
		return fmt.Errorf("initramfs: mkuimage wrote no archive to %s", absOut)
	}
	return os.Chmod(absOut, fs.FileMode(0o644))
}
