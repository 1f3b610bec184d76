package ksrc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// needTar skips tests that unpack tarballs where tar and xz are missing.
func needTar(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"tar", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

// makefile is the top of a kernel Makefile declaring release v (X.Y.Z).
func makefile(v string) string {
	n := strings.SplitN(v, ".", 3)
	return fmt.Sprintf("# SPDX-License-Identifier: GPL-2.0\nVERSION = %s\nPATCHLEVEL = %s\nSUBLEVEL = %s\nEXTRAVERSION =\nNAME = Test\n\nall:\n", n[0], n[1], n[2])
}

// tarball returns a tar archive, compressed with comp ("xz", "gz" or ""),
// of a tiny kernel tree for release v under the top-level directory top
// ("" for none).
func tarball(t *testing.T, top, v, comp string) []byte {
	t.Helper()
	files := map[string]string{
		"Makefile":                           makefile(v),
		"drivers/net/wireguard/Makefile":     "obj-$(CONFIG_WIREGUARD) := wireguard.o\n",
		"scripts/checkpatch.pl":              "#!/usr/bin/perl\n",
		"include/uapi/linux/wireguard.h":     "/* uapi */\n",
		"Documentation/networking/index.rst": "Networking\n",
	}
	return tarOf(t, top, files, comp)
}

func tarOf(t *testing.T, top string, files map[string]string, comp string) []byte {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		if top != "" {
			name = top + "/" + name
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	switch comp {
	case "":
		return raw.Bytes()
	case "gz":
		zw := gzip.NewWriter(&out)
		zw.Write(raw.Bytes())
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case "xz":
		zw, err := xz.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(raw.Bytes())
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("compression %q", comp)
	}
	return out.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func openCache(t *testing.T) *cache.Cache {
	t.Helper()
	c, err := cache.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// assertNothingCached fails if c holds a tree, a failed build or a
// leftover temporary directory.
func assertNothingCached(t *testing.T, c *cache.Cache) {
	t.Helper()
	for _, d := range []string{kindTree, "failed", "tmp"} {
		ents, _ := os.ReadDir(filepath.Join(c.Dir, d))
		if len(ents) > 0 {
			t.Errorf("%s/ is not empty: %v", d, ents)
		}
	}
}

func TestFetchLocalTarball(t *testing.T) {
	needTar(t)
	tests := []struct {
		name   string
		file   string
		data   func(t *testing.T) []byte
		kernel string
		want   string // version
		errHas []string
	}{
		{name: "xz with top dir", file: "linux-6.1.192.tar.xz", data: func(t *testing.T) []byte { return tarball(t, "linux-6.1.192", "6.1.192", "xz") }, want: "6.1.192"},
		{name: "gz", file: "linux-5.10.223.tar.gz", data: func(t *testing.T) []byte { return tarball(t, "linux-5.10.223", "5.10.223", "gz") }, want: "5.10.223"},
		{name: "plain tar without top dir", file: "k.tar", data: func(t *testing.T) []byte { return tarball(t, "", "6.12.117", "") }, want: "6.12.117"},
		{name: "series matches", file: "l.tar.xz", data: func(t *testing.T) []byte { return tarball(t, "linux", "6.12.117", "xz") }, kernel: "6.12", want: "6.12.117"},
		{name: "exact mismatch", file: "l.tar.xz", data: func(t *testing.T) []byte { return tarball(t, "linux", "6.12.117", "xz") }, kernel: "6.12.100",
			errHas: []string{"holds kernel 6.12.117, not 6.12.100"}},
		{name: "not a kernel", file: "notes.tar.gz", data: func(t *testing.T) []byte {
			return tarOf(t, "notes", map[string]string{"README": "hi\n"}, "gz")
		}, errHas: []string{"not a kernel source tarball", "notes/ has no Makefile", "nothing was cached"}},
		{name: "truncated", file: "cut.tar.xz", data: func(t *testing.T) []byte {
			b := tarball(t, "linux-6.1.192", "6.1.192", "xz")
			return b[:len(b)/2]
		}, errHas: []string{"tar -xf", "nothing was cached"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openCache(t)
			data := tt.data(t)
			src := writeFile(t, filepath.Join(t.TempDir(), tt.file), data)
			opts := Options{Cache: c, Source: src, Version: tt.kernel}
			tree, err := Fetch(context.Background(), opts)
			if len(tt.errHas) > 0 {
				if err == nil {
					t.Fatalf("no error; got tree %+v", tree)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error lacks %q:\n%v", s, err)
					}
				}
				if tt.kernel == "" {
					assertNothingCached(t, c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tree.Version != tt.want || tree.Hit || tree.InPlace || tree.SHA256 != sha(data) {
				t.Errorf("got %+v, want version %s, unpacked, sha %s", tree, tt.want, sha(data))
			}
			if tree.Dir != c.Path(kindTree, tarballKey(sha(data))) {
				t.Errorf("tree in %s, want the entry keyed by the tarball's SHA-256", tree.Dir)
			}
			if _, err := os.Stat(filepath.Join(tree.Dir, "drivers/net/wireguard/Makefile")); err != nil {
				t.Errorf("tree not unpacked at its root: %v", err)
			}
			again, err := Fetch(context.Background(), opts)
			if err != nil || !again.Hit || again.Dir != tree.Dir {
				t.Errorf("second fetch: %+v, %v; want a hit in %s", again, err, tree.Dir)
			}
		})
	}
}

func TestFetchLocalTree(t *testing.T) {
	tree := t.TempDir()
	writeFile(t, filepath.Join(tree, "Makefile"), []byte(makefile("6.1.192")))
	c := openCache(t)
	got, err := Fetch(context.Background(), Options{Cache: c, Source: tree, Version: "6.1"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Dir != tree || !got.InPlace || got.Version != "6.1.192" || got.Key != "" {
		t.Errorf("got %+v, want %s used in place", got, tree)
	}
	assertNothingCached(t, c)

	if _, err := Fetch(context.Background(), Options{Cache: c, Source: tree, Version: "6.12"}); err == nil || !strings.Contains(err.Error(), "holds kernel 6.1.192, not 6.12") {
		t.Errorf("wrong series: err = %v", err)
	}
	if _, err := Fetch(context.Background(), Options{Cache: c, Source: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not a kernel source tree") {
		t.Errorf("empty dir: err = %v", err)
	}
	if _, err := Fetch(context.Background(), Options{Cache: c, Source: filepath.Join(tree, "nope.tar.xz")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestHoistTree(t *testing.T) {
	tests := []struct {
		name   string
		files  []string
		want   []string // must exist afterwards
		errHas string
	}{
		{name: "already at root", files: []string{"Makefile", "kernel/fork.c"}, want: []string{"Makefile", "kernel/fork.c"}},
		{name: "one top dir", files: []string{"linux-6.1/Makefile", "linux-6.1/kernel/fork.c"}, want: []string{"Makefile", "kernel/fork.c"}},
		{name: "child named like parent", files: []string{"linux/Makefile", "linux/linux/x"}, want: []string{"Makefile", "linux/x"}},
		{name: "two top dirs", files: []string{"a/Makefile", "b/Makefile"}, errHas: "it holds a, b"},
		{name: "no Makefile", files: []string{"linux/README"}, errHas: "linux/ has no Makefile"},
		{name: "empty", errHas: "it holds nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				writeFile(t, filepath.Join(dir, f), []byte("x"))
			}
			err := hoistTree(dir)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("err = %v, want %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.want {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Error(err)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, ".wgkit-unpack")); err == nil {
				t.Error("staging directory left behind")
			}
		})
	}
}

func TestFetchUsage(t *testing.T) {
	c := openCache(t)
	tests := []struct {
		opts   Options
		errHas string
	}{
		{Options{Cache: c}, "no kernel asked for"},
		{Options{Cache: c, Version: "6"}, `"6" is not a version`},
		{Options{Cache: c, Version: "6.1", From: "gentoo"}, `unknown source "gentoo"`},
		{Options{Cache: c, Version: "5.6", From: FromDebian}, "there is no linux-source-5.6 in Debian"},
	}
	for _, tt := range tests {
		_, err := Fetch(context.Background(), tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("Fetch(%q from %q) err = %v, want %q", tt.opts.Version, tt.opts.From, err, tt.errHas)
		}
	}
}
