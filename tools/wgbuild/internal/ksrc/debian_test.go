package ksrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// debianSources is the system's /etc/apt/sources.list.d/debian.sources on
// the build machines.
const debianSources = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`

func TestSystemMirrors(t *testing.T) {
	tests := []struct {
		name        string
		deb822, one string // file contents; "" = no file
		want        Mirrors
		errHas      string
	}{
		{name: "debian.sources", deb822: debianSources,
			want: Mirrors{Archive: "http://deb.debian.org/debian", Security: "http://deb.debian.org/debian-security"}},
		{name: "security first, src and disabled stanzas skipped", deb822: `Types: deb-src
URIs: http://src.example/debian
Suites: trixie

Types: deb
URIs: http://security.example/debian-security/
Suites: trixie-security
Components: main

Types: deb
Enabled: no
URIs: http://off.example/debian
Suites: trixie

Types: deb deb-src
URIs: http://mirror.example/debian/ http://second.example/debian
Suites:
 trixie
 trixie-updates
Components: main contrib
`, want: Mirrors{Archive: "http://mirror.example/debian", Security: "http://security.example/debian-security"}},
		{name: "sources.list when debian.sources is missing", one: `# comment
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://ftp.example/debian/ bookworm main
deb [ arch=amd64 ] http://ftp.example/debian-security bookworm-security main
deb http://ftp.example/debian bookworm-updates main
`, want: Mirrors{Archive: "http://ftp.example/debian", Security: "http://ftp.example/debian-security"}},
		{name: "debian.sources without a main suite falls back", deb822: "Types: deb\nURIs: http://x/debian-security\nSuites: bookworm-security\n",
			one: "deb http://ftp.example/debian bookworm main\n", want: Mirrors{Archive: "http://ftp.example/debian"}},
		{name: "nothing", errHas: "pass --debian-mirror URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.deb822 != "" {
				writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/debian.sources"), []byte(tt.deb822))
			}
			if tt.one != "" {
				writeFile(t, filepath.Join(root, "etc/apt/sources.list"), []byte(tt.one))
			}
			got, err := SystemMirrors(root)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("err = %v, want %q", err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestDebianSuite(t *testing.T) {
	for series, want := range map[string]string{"5.10": "bullseye", "6.1": "bookworm", "6.12": "trixie", "7.2": "sid", "7.3": "experimental", "5.6": "", "6.6": "", "6.1.192": ""} {
		if got := DebianSuite(series); got != want {
			t.Errorf("DebianSuite(%q) = %q, want %q", series, got, want)
		}
	}
}

func TestAptConfig(t *testing.T) {
	p := "/cache/apt/trixie"
	cfg := &AptConfig{Dir: p, Suite: "trixie", Keyring: DebianKeyring,
		Mirrors: Mirrors{Archive: "http://deb.debian.org/debian", Security: "http://deb.debian.org/debian-security"}}
	want := "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie trixie-updates main\n" +
		"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security trixie-security main\n"
	if got := cfg.SourcesList(); got != want {
		t.Errorf("sources.list:\n%s\nwant:\n%s", got, want)
	}
	cfg.Security = ""
	if got := cfg.SourcesList(); strings.Contains(got, "security") || strings.Count(got, "\n") != 1 {
		t.Errorf("without a security archive:\n%s", got)
	}

	// Unstable and experimental have no -updates or -security suites: a
	// line naming one would make apt-get update fail.
	for _, suite := range []string{"sid", "experimental"} {
		rc := *cfg
		rc.Suite, rc.Security = suite, "http://deb.debian.org/debian-security"
		want := "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian " + suite + " main\n"
		if got := rc.SourcesList(); got != want {
			t.Errorf("%s sources.list:\n%s\nwant:\n%s", suite, got, want)
		}
	}

	// Source packages: the same lines as deb-src.
	src := *cfg
	src.Suite, src.Source = "sid", true
	if got, want := src.SourcesList(), "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main\n"; got != want {
		t.Errorf("deb-src sources.list:\n%s\nwant:\n%s", got, want)
	}

	// Every directory apt reads or writes must be private, and it must not
	// see the installed packages: that is what keeps the system unchanged.
	opts := cfg.Options()
	seen := map[string]string{}
	for i := 0; i < len(opts); i += 2 {
		if opts[i] != "-o" {
			t.Fatalf("option %d is %q, want -o", i, opts[i])
		}
		k, v, _ := strings.Cut(opts[i+1], "=")
		seen[k] = v
		if strings.HasPrefix(k, "Dir::") && v != "/dev/null" && !strings.HasPrefix(v, p+"/") {
			t.Errorf("%s=%s is outside the private directory %s", k, v, p)
		}
	}
	for _, k := range []string{"Dir::Etc::sourcelist", "Dir::Etc::sourceparts", "Dir::Etc::preferencesparts", "Dir::State", "Dir::Cache"} {
		if _, ok := seen[k]; !ok {
			t.Errorf("no %s option", k)
		}
	}
	if seen["Dir::State::status"] != "/dev/null" || seen["Debug::NoLocking"] != "1" {
		t.Errorf("options %v: want Dir::State::status=/dev/null and Debug::NoLocking=1", opts)
	}

	cfg.Dir = t.TempDir()
	if err := cfg.Setup(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"state/lists/partial", "cache/archives/partial", "etc/sources.list.d"} {
		if fi, err := os.Stat(filepath.Join(cfg.Dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.Dir, "etc/sources.list")); string(b) != cfg.SourcesList() {
		t.Errorf("etc/sources.list = %q", b)
	}
}

const aptCacheShow = `Package: linux-source-6.1
Source: linux
Version: 6.1.192-2
Installed-Size: 139424
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: all
Depends: binutils, xz-utils
Description-en: Linux kernel source for version 6.1 with Debian patches
 This package provides source code for the Linux kernel version 6.1.
 Version: not a field
Filename: pool/updates/main/l/linux/linux-source-6.1_6.1.192-2_all.deb
Size: 139331676
SHA256: AE95FE63D4C553F8D0E6C86CB1AB566F3894A43743EB19AB585CD97D82F26514

Package: linux-source-6.1
Version: 6.1.192-1
Size: 139331872
SHA256: 7ae5d78895d88e4788c601b8322b07043965b0e37324c5bb26453e2ce049509d

Package: linux-source-6.1
Version: 1:6.1.176-1
SHA256: 9305d1a151b8e83dcb88aa11361e7b9513f0c252bdf7f5647e4542762d99c094
`

func TestParsePackages(t *testing.T) {
	ps, err := ParsePackages([]byte(aptCacheShow))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Fatalf("got %d packages, want 3", len(ps))
	}
	p := ps[0]
	want := Package{Name: "linux-source-6.1", Version: "6.1.192-2", Size: 139331676,
		SHA256:   "ae95fe63d4c553f8d0e6c86cb1ab566f3894a43743eb19ab585cd97d82f26514",
		Filename: "pool/updates/main/l/linux/linux-source-6.1_6.1.192-2_all.deb"}
	if *p != want {
		t.Errorf("got  %+v\nwant %+v", *p, want)
	}
	if got := upstreams(ps); got != "6.1.192, 6.1.176" {
		t.Errorf("upstreams = %q", got)
	}
	for _, tt := range []struct{ want, pick string }{
		{"6.1", "6.1.192-2"}, {"6.1.192", "6.1.192-2"}, {"6.1.176", "1:6.1.176-1"}, {"6.1.100", ""}, {"6.12", ""},
	} {
		v, _ := ParseVersion(tt.want)
		got := ""
		if p := pickPackage(ps, v); p != nil {
			got = p.Version
		}
		if got != tt.pick {
			t.Errorf("pickPackage(%s) = %q, want %q", tt.want, got, tt.pick)
		}
	}
	if _, err := ParsePackages([]byte("N: Unable to locate package linux-source-9.9\n")); err == nil {
		t.Error("no error for output without packages")
	}
}

func TestPackageUpstream(t *testing.T) {
	for v, want := range map[string]string{
		"6.12.117-1":         "6.12.117",
		"6.12.117-1~bpo12+1": "6.12.117",
		"1:6.1.192-2":        "6.1.192",
		"6.1.192":            "6.1.192",
		"5.10.223-1+deb11u1": "5.10.223",
		"7.3~rc7-1~exp1":     "7.3~rc7",
	} {
		if got := (&Package{Version: v}).Upstream(); got != want {
			t.Errorf("Upstream(%q) = %q, want %q", v, got, want)
		}
	}
}

// fakeApt serves linux-source packages from memory. Each .deb is a tar
// stream of the files it installs (what dpkg-deb --fsys-tarfile gives).
type fakeApt struct {
	t        *testing.T
	versions []string // Debian versions, newest first
	series   string
	corrupt  bool // Download returns bytes the index does not list
	calls    []string
	cfg      *AptConfig
}

func (a *fakeApt) deb(version string) []byte {
	up := (&Package{Version: version}).Upstream()
	src := tarball(a.t, "linux-source-"+a.series, up, "xz")
	return tarOf(a.t, ".", map[string]string{
		"usr/share/doc/linux-source-" + a.series + "/copyright": "GPL-2.0\n",
		"usr/src/linux-source-" + a.series + ".tar.xz":          string(src),
	}, "")
}

func (a *fakeApt) Update(ctx context.Context, cfg *AptConfig) error {
	a.calls = append(a.calls, "update")
	a.cfg = cfg
	if _, err := os.Stat(filepath.Join(cfg.Dir, "etc/sources.list")); err != nil {
		a.t.Errorf("update before the private sources.list exists: %v", err)
	}
	return nil
}

func (a *fakeApt) Versions(ctx context.Context, cfg *AptConfig, pkg string) ([]*Package, error) {
	a.calls = append(a.calls, "show "+pkg)
	if pkg != "linux-source-"+a.series {
		return nil, fmt.Errorf("no %s", pkg)
	}
	var ps []*Package
	for _, v := range a.versions {
		d := a.deb(v)
		ps = append(ps, &Package{Name: pkg, Version: v, SHA256: sha(d), Size: int64(len(d))})
	}
	return ps, nil
}

func (a *fakeApt) Download(ctx context.Context, cfg *AptConfig, p *Package, dir string) (string, error) {
	a.calls = append(a.calls, "download "+p.Name+"="+p.Version)
	d := a.deb(p.Version)
	if a.corrupt {
		d = append(d, 0)
	}
	return writeFile(a.t, filepath.Join(dir, p.Name+"_"+p.Version+"_all.deb"), d), nil
}

func (a *fakeApt) DataTar(ctx context.Context, deb string) (io.ReadCloser, error) {
	a.calls = append(a.calls, "dpkg-deb "+filepath.Base(deb))
	b, err := os.ReadFile(deb)
	return io.NopCloser(bytes.NewReader(b)), err
}

func TestFetchDebian(t *testing.T) {
	needTar(t)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/debian.sources"), []byte(debianSources))
	c := openCache(t)
	apt := &fakeApt{t: t, series: "6.12", versions: []string{"6.12.118-1", "6.12.117-1"}}
	var log []string
	fetch := func(version string, update bool) (*Tree, error) {
		apt.calls = nil
		return Fetch(context.Background(), Options{Cache: c, Version: version, Update: update, Apt: apt, Root: root,
			Progress: func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }})
	}

	// First fetch: apt runs under the private configuration, the newest
	// version is downloaded and unpacked, keyed by the .deb's SHA-256.
	tree, err := fetch("6.12", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"update", "show linux-source-6.12", "download linux-source-6.12=6.12.118-1", "dpkg-deb linux-source-6.12_6.12.118-1_all.deb"}; !slices.Equal(apt.calls, want) {
		t.Errorf("apt calls %q, want %q", apt.calls, want)
	}
	if apt.cfg.Suite != "trixie" || apt.cfg.Archive != "http://deb.debian.org/debian" || apt.cfg.Security != "http://deb.debian.org/debian-security" ||
		apt.cfg.Dir != filepath.Join(c.Dir, "apt", "trixie") {
		t.Errorf("apt configuration %+v", apt.cfg)
	}
	debSum := sha(apt.deb("6.12.118-1"))
	if tree.Version != "6.12.118" || tree.Hit || tree.SHA256 != debSum || tree.Dir != c.Path(kindTree, debKey(debSum)) ||
		tree.Origin != "Debian linux-source-6.12 6.12.118-1 (trixie)" {
		t.Errorf("got %+v", tree)
	}
	if _, err := os.Stat(filepath.Join(tree.Dir, "drivers/net/wireguard/Makefile")); err != nil {
		t.Errorf("tree not unpacked at its root: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(c.Dir, "tmp")); len(ents) > 0 {
		t.Errorf("downloads left in tmp/: %v", ents)
	}

	// Second fetch: the cache answers, apt does not run.
	again, err := fetch("6.12", false)
	if err != nil || !again.Hit || again.Dir != tree.Dir || again.Origin != tree.Origin || len(apt.calls) != 0 {
		t.Errorf("second fetch: %+v, %v, apt calls %q; want a hit without apt", again, err, apt.calls)
	}

	// --update asks apt again, but the .deb it names is unpacked already.
	again, err = fetch("6.12", true)
	if err != nil || !again.Hit || again.Dir != tree.Dir || slices.ContainsFunc(apt.calls, func(s string) bool { return strings.HasPrefix(s, "download") }) {
		t.Errorf("--update: %+v, %v, apt calls %q; want a hit without a download", again, err, apt.calls)
	}

	// An exact release Debian has, but not its newest.
	old, err := fetch("6.12.117", false)
	if err != nil || old.Version != "6.12.117" || old.Dir == tree.Dir || !slices.Contains(apt.calls, "download linux-source-6.12=6.12.117-1") {
		t.Errorf("6.12.117: %+v, %v, apt calls %q", old, err, apt.calls)
	}

	// An exact release Debian does not have: the error says what it has,
	// before anything is downloaded.
	_, err = fetch("6.12.50", false)
	for _, s := range []string{"the Debian archive (trixie) has linux-source-6.12 6.12.118, 6.12.117, not 6.12.50", "--from kernel.org", "--kernel-source"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("6.12.50: err = %v, want %q", err, s)
		}
	}
	if slices.ContainsFunc(apt.calls, func(s string) bool { return strings.HasPrefix(s, "download") }) {
		t.Errorf("6.12.50: downloaded anyway: %q", apt.calls)
	}
	if len(log) == 0 {
		t.Error("no progress lines")
	}
}

func TestFetchDebianErrors(t *testing.T) {
	needTar(t)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/apt/sources.list"), []byte("deb http://ftp.example/debian bookworm main\n"))

	c := openCache(t)
	apt := &fakeApt{t: t, series: "6.1", versions: []string{"6.1.192-2"}, corrupt: true}
	_, err := Fetch(context.Background(), Options{Cache: c, Version: "6.1", Apt: apt, Root: root})
	if err == nil || !strings.Contains(err.Error(), "the package index says") || !strings.Contains(err.Error(), "nothing was cached") {
		t.Errorf("corrupt .deb: err = %v", err)
	}
	assertNothingCached(t, c)
	if apt.cfg == nil || apt.cfg.Archive != "http://ftp.example/debian" || apt.cfg.Security != "" {
		t.Errorf("apt configuration %+v, want the sources.list mirror and no security archive", apt.cfg)
	}

	// A .deb without the kernel tarball.
	c = openCache(t)
	bad := &noTarballApt{fakeApt{t: t, series: "6.1", versions: []string{"6.1.192-2"}}}
	_, err = Fetch(context.Background(), Options{Cache: c, Version: "6.1", Apt: bad, Root: root})
	if err == nil || !strings.Contains(err.Error(), "the package has no usr/src/linux-source-6.1.tar.xz") {
		t.Errorf("no tarball in the .deb: err = %v", err)
	}
	assertNothingCached(t, c)

	// apt failing (no network) says so; nothing is cached.
	c = openCache(t)
	_, err = Fetch(context.Background(), Options{Cache: c, Version: "5.10", Apt: &failingApt{}, Root: root})
	if err == nil || !strings.Contains(err.Error(), "Temporary failure resolving") {
		t.Errorf("apt failure: err = %v", err)
	}
	assertNothingCached(t, c)
}

// noTarballApt serves a .deb without the kernel tarball.
type noTarballApt struct{ fakeApt }

func (a *noTarballApt) DataTar(ctx context.Context, deb string) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(tarOf(a.t, ".", map[string]string{"usr/share/doc/x": "x"}, ""))), nil
}

type failingApt struct{ fakeApt }

func (*failingApt) Update(context.Context, *AptConfig) error {
	return errors.New("apt-get update: exit status 100: W: Failed to fetch http://ftp.example/debian/dists/bullseye/InRelease  Temporary failure resolving 'ftp.example'")
}
