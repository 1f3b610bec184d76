package ksrc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScanSourceDir(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"linux-5.6.4.tar.xz", "linux-5.6.tar.gz", "linux-5.6.10.tar.xz", "linux-6.6.tar.zst",
		"linux-7.0-rc3.tar.xz", "README", "linux-5.6.4.tar.xz.sig", "linux-five.tar.xz"} {
		writeFile(t, filepath.Join(dir, n), []byte("x"))
	}
	if err := os.Mkdir(filepath.Join(dir, "linux-5.7.tar"), 0o755); err != nil {
		t.Fatal(err)
	}
	ts, err := ScanSourceDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, lt := range ts {
		got = append(got, filepath.Base(lt.Path))
	}
	want := "linux-7.0-rc3.tar.xz linux-6.6.tar.zst linux-5.6.10.tar.xz linux-5.6.4.tar.xz linux-5.6.tar.gz"
	if strings.Join(got, " ") != want {
		t.Errorf("ScanSourceDir = %s, want %s", strings.Join(got, " "), want)
	}
	for _, tt := range []struct{ want, file string }{
		{"5.6", "linux-5.6.10.tar.xz"}, {"5.6.4", "linux-5.6.4.tar.xz"}, {"5.6.0", "linux-5.6.tar.gz"},
		{"6.6", "linux-6.6.tar.zst"}, {"5.6.5", ""}, {"5.10", ""},
	} {
		v, err := ParseVersion(tt.want)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if lt := pickLocal(ts, v); lt != nil {
			got = filepath.Base(lt.Path)
		}
		if got != tt.file {
			t.Errorf("pickLocal(%s) = %q, want %q", tt.want, got, tt.file)
		}
	}
	if _, err := ScanSourceDir(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), SourceDirEnv) {
		t.Errorf("a missing directory: %v, want an error naming $%s", err, SourceDirEnv)
	}
}

func TestFetchSourceDir(t *testing.T) {
	needTar(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "linux-5.6.4.tar.xz"), tarball(t, "linux-5.6.4", "5.6.4", "xz"))
	// Named 5.8.1, holding 5.8.2: the Makefile has the last word.
	writeFile(t, filepath.Join(dir, "linux-5.8.1.tar.xz"), tarball(t, "linux-5.8.2", "5.8.2", "xz"))
	m, _ := mirror(t)
	tests := []struct {
		name, version, from string
		want                string // version
		origin              string
		errHas              []string
		unknown             bool
	}{
		{name: "series", version: "5.6", want: "5.6.4", origin: "local tarball " + filepath.Join(dir, "linux-5.6.4.tar.xz")},
		{name: "exact", version: "5.6.4", from: FromLocal, want: "5.6.4"},
		{name: "not there, kernel.org next", version: "6.6", want: "6.6.30", origin: "kernel.org linux-6.6.30.tar.xz"},
		{name: "not there, local only", version: "5.7", from: FromLocal, unknown: true, errHas: []string{"has no linux-5.7 tarball"}},
		{name: "misnamed", version: "5.8.1", errHas: []string{"holds kernel 5.8.2, not 5.8.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openCache(t)
			tr, err := Fetch(context.Background(), Options{Cache: c, Version: tt.version, From: tt.from, SourceDir: dir, Mirror: "file://" + m})
			if tt.errHas != nil {
				if err == nil {
					t.Fatalf("fetched %+v, want an error", tr)
				}
				for _, h := range tt.errHas {
					if !strings.Contains(err.Error(), h) {
						t.Errorf("error %q lacks %q", err, h)
					}
				}
				var ue *UnknownVersionError
				if errors.As(err, &ue) != tt.unknown {
					t.Errorf("error %T: UnknownVersionError %v, want %v", err, !tt.unknown, tt.unknown)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tr.Version != tt.want {
				t.Errorf("version %s, want %s", tr.Version, tt.want)
			}
			if tt.origin != "" && tr.Origin != tt.origin {
				t.Errorf("origin %q, want %q", tr.Origin, tt.origin)
			}
		})
	}
	if _, err := Fetch(context.Background(), Options{Cache: openCache(t), Version: "5.6", From: FromLocal}); err == nil || !strings.Contains(err.Error(), "--source-dir") {
		t.Errorf("--from local without a directory: %v", err)
	}
}
