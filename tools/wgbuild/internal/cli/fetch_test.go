package cli

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFetch(t *testing.T) {
	cacheDir := filepath.Join(t.TempDir(), "cache")
	tree := t.TempDir()
	const makefile = "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\n"
	if err := os.WriteFile(filepath.Join(tree, "Makefile"), []byte(makefile), 0o644); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "linux-6.1.192.tar")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "linux-6.1.192/Makefile", Mode: 0o644, Size: int64(len(makefile)), Typeflag: tar.TypeReg})
	tw.Write([]byte(makefile))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	tests := []struct {
		name      string
		args      []string
		needTar   bool
		code      int
		stdoutHas string
		stderrHas string
	}{
		{name: "help", args: []string{"--help"}, code: ExitOK, stdoutHas: "wgbuild fetch --kernel 6.12 "},
		{name: "nothing asked", code: ExitUsage, stderrHas: "give --kernel X.Y[.Z] or --kernel-source PATH"},
		{name: "bad version", args: []string{"--kernel", "6.x"}, code: ExitUsage, stderrHas: `--kernel: kernel version "6.x" is not a version`},
		{name: "bad --from", args: []string{"--kernel", "6.1", "--from", "gentoo"}, code: ExitUsage, stderrHas: `--from must be auto, debian, local or kernel.org, not "gentoo"`},
		{name: "unknown version", args: []string{"--kernel", "9.9", "--mirror", "file:///nonexistent", "--cache", cacheDir}, code: ExitInfra,
			stderrHas: "What can be fetched:\n  --kernel 5.10 (bullseye), 6.1 (bookworm), 6.12 (trixie)"},
		{name: "tree in place", args: []string{"--kernel-source", tree, "--kernel", "6.1", "--cache", cacheDir}, code: ExitOK,
			stdoutHas: tree + "\n", stderrHas: "kernel 6.1.192 from local tree " + tree + " (in place)"},
		{name: "tarball", args: []string{"--kernel-source", tarball, "--cache", cacheDir}, needTar: true, code: ExitOK,
			stdoutHas: filepath.Join(cacheDir, "ksrc") + "/", stderrHas: "kernel 6.1.192 from local tarball " + tarball + " (unpacked into "},
		{name: "tarball again", args: []string{"--kernel-source", tarball, "--cache", cacheDir}, needTar: true, code: ExitOK,
			stderrHas: "(cached "},
		{name: "wrong version", args: []string{"--kernel-source", tarball, "--kernel", "6.12", "--cache", cacheDir}, needTar: true, code: ExitInfra,
			stderrHas: "holds kernel 6.1.192, not 6.12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exec.LookPath("tar"); tt.needTar && err != nil {
				t.Skip("tar not installed")
			}
			var stdout, stderr strings.Builder
			code := Main(append([]string{"fetch"}, tt.args...), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdoutHas) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdoutHas, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderrHas, stderr.String())
			}
		})
	}
}
