package ksrc

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type tarEntry struct {
	name, link, body string
	typ              byte
}

func pkgTar(t *testing.T, entries []tarEntry) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestUntarFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		wantErr string
		check   map[string]string // path under dir -> content
	}{
		{
			name: "a package's tree",
			entries: []tarEntry{
				{name: "./", typ: tar.TypeDir},
				{name: "./usr/lib/x86_64-linux-gnu/", typ: tar.TypeDir},
				{name: "./usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", typ: tar.TypeReg, body: "loader"},
				{name: "./usr/lib64/ld-linux-x86-64.so.2", typ: tar.TypeSymlink, link: "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
				{name: "./usr/bin/wg", typ: tar.TypeReg, body: "wg"},
				{name: "./usr/bin/wg-abs", typ: tar.TypeSymlink, link: "/usr/bin/wg"},
				{name: "./usr/bin/wg-hard", typ: tar.TypeLink, link: "./usr/bin/wg"},
			},
			check: map[string]string{
				"usr/lib64/ld-linux-x86-64.so.2": "loader",
				"usr/bin/wg":                     "wg",
				"usr/bin/wg-abs":                 "wg",
				"usr/bin/wg-hard":                "wg",
			},
		},
		{name: "a name outside the root", entries: []tarEntry{{name: "../evil", typ: tar.TypeReg, body: "x"}}, wantErr: "outside its root"},
		{name: "a link outside the root", entries: []tarEntry{{name: "./usr/x", typ: tar.TypeSymlink, link: "../../../etc/passwd"}}, wantErr: "points outside its root"},
		{name: "a device", entries: []tarEntry{{name: "./dev/null", typ: tar.TypeChar}}, wantErr: "not a file, directory or link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := untarFiles(pkgTar(t, tc.entries), dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("untarFiles: error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("untarFiles: %v", err)
			}
			for p, want := range tc.check {
				b, err := os.ReadFile(filepath.Join(dir, p))
				if err != nil || string(b) != want {
					t.Errorf("%s: %q, %v; want %q", p, b, err, want)
				}
			}
		})
	}
}
