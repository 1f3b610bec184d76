package ksrc

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// DebianKeyring is the keyring the private apt sources are verified with:
// debian-archive-keyring's, which holds the keys of every current suite.
const DebianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// debianSuites are the kernel series Debian packages as linux-source-X.Y,
// and the suite that carries each.
var debianSuites = []struct{ series, suite string }{
	{"5.10", "bullseye"},
	{"6.1", "bookworm"},
	{"6.12", "trixie"},
	{"7.2", "sid"},
	{"7.3", "experimental"},
}

// rollingSuite reports a suite without -updates and -security companions:
// unstable (sid) and experimental take new kernels directly.
func rollingSuite(suite string) bool {
	return suite == "sid" || suite == "unstable" || suite == "experimental"
}

// DebianSuite returns the Debian suite whose linux-source-<series> package
// is fetched, or "" if Debian packages no such series.
func DebianSuite(series string) string {
	for _, s := range debianSuites {
		if s.series == series {
			return s.suite
		}
	}
	return ""
}

// Apt is what fetching a Debian package needs from apt and dpkg. Tests fake
// it; SystemApt runs the real tools.
type Apt interface {
	// Update downloads cfg's package lists (apt-get update).
	Update(ctx context.Context, cfg *AptConfig) error
	// Versions returns every version of pkg that cfg's sources carry,
	// newest first (apt-cache show).
	Versions(ctx context.Context, cfg *AptConfig, pkg string) ([]*Package, error)
	// Download fetches the .deb of p into dir and returns its path
	// (apt-get download name=version).
	Download(ctx context.Context, cfg *AptConfig, p *Package, dir string) (string, error)
	// DataTar streams the tar archive of the files a .deb installs
	// (dpkg-deb --fsys-tarfile). Close reports a failure of the tool.
	DataTar(ctx context.Context, deb string) (io.ReadCloser, error)
}

// Package is one version of a Debian package, from its index entry.
type Package struct {
	Name     string
	Version  string // Debian version: 6.12.117-1
	SHA256   string // of the .deb
	Size     int64  // of the .deb
	Filename string // in the archive: pool/main/l/linux/linux-source-6.12_6.12.117-1_all.deb
}

// Upstream is the upstream part of the Debian version: "6.12.117" of
// "6.12.117-1~bpo12+1", "6.1.192" of "1:6.1.192-1".
func (p *Package) Upstream() string {
	v := p.Version
	if _, rest, ok := strings.Cut(v, ":"); ok {
		v = rest
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		v = v[:i]
	}
	return v
}

// AptConfig is a private apt configuration: its own sources list, state
// and cache directories under Dir, and no view of the installed packages
// (Dir::State::status is /dev/null). apt run with Options() reads and
// writes nothing of the system's apt state.
type AptConfig struct {
	Dir   string // private root
	Suite string // trixie
	Mirrors
	Keyring string // signed-by
	// Source lists the suite's source packages (deb-src), not its
	// binary ones.
	Source bool
}

// Mirrors are the Debian archives to fetch from.
type Mirrors struct {
	// Archive carries the suite and its -updates: http://deb.debian.org/debian.
	Archive string
	// Security carries <suite>-security, where Debian's kernel updates
	// land between point releases: http://deb.debian.org/debian-security.
	// "" leaves it out.
	Security string
}

// SourcesList is the private sources list: the suite, its -updates and, if
// a security archive is known, its -security, main component only.
func (c *AptConfig) SourcesList() string {
	typ := "deb"
	if c.Source {
		typ = "deb-src"
	}
	if rollingSuite(c.Suite) {
		return fmt.Sprintf("%s [signed-by=%s] %s %s main\n", typ, c.Keyring, c.Archive, c.Suite)
	}
	s := fmt.Sprintf("%s [signed-by=%s] %s %s %s-updates main\n", typ, c.Keyring, c.Archive, c.Suite, c.Suite)
	if c.Security != "" {
		s += fmt.Sprintf("%s [signed-by=%s] %s %s-security main\n", typ, c.Keyring, c.Security, c.Suite)
	}
	return s
}

// Options are the apt-get and apt-cache options that make apt use only the
// private configuration. The system's apt.conf.d still applies, so a proxy
// configured there is used.
func (c *AptConfig) Options() []string {
	var opts []string
	for _, o := range []string{
		"Dir::Etc::sourcelist=" + filepath.Join(c.Dir, "etc/sources.list"),
		"Dir::Etc::sourceparts=" + filepath.Join(c.Dir, "etc/sources.list.d"),
		"Dir::Etc::preferences=" + filepath.Join(c.Dir, "etc/preferences"),
		"Dir::Etc::preferencesparts=" + filepath.Join(c.Dir, "etc/preferences.d"),
		"Dir::State=" + filepath.Join(c.Dir, "state"),
		"Dir::State::status=/dev/null",
		"Dir::Cache=" + filepath.Join(c.Dir, "cache"),
		"Debug::NoLocking=1",
		"APT::Sandbox::User=root",
		"Acquire::Languages=none",
	} {
		opts = append(opts, "-o", o)
	}
	return opts
}

// Setup creates the private directories and writes the sources list.
func (c *AptConfig) Setup() error {
	for _, d := range []string{"etc/sources.list.d", "etc/preferences.d", "state/lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return fmt.Errorf("private apt configuration: %w", err)
		}
	}
	return os.WriteFile(filepath.Join(c.Dir, "etc/sources.list"), []byte(c.SourcesList()), 0o644)
}

// SystemMirrors returns the Debian archives the system's apt sources name,
// from root's /etc/apt/sources.list.d/debian.sources (deb822) or else
// /etc/apt/sources.list (one-line). It only reads them.
func SystemMirrors(root string) (Mirrors, error) {
	var tried []string
	for _, f := range []struct {
		path  string
		parse func(string) []aptSource
	}{
		{"etc/apt/sources.list.d/debian.sources", parseDeb822},
		{"etc/apt/sources.list", parseOneLine},
	} {
		p := filepath.Join(root, f.path)
		tried = append(tried, p)
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if m := pickMirrors(f.parse(string(b))); m.Archive != "" {
			return m, nil
		}
	}
	return Mirrors{}, fmt.Errorf("no Debian archive found in %s: pass --debian-mirror URL (e.g. http://deb.debian.org/debian)", strings.Join(tried, " or "))
}

// aptSource is one "deb" source: a URI and its suites.
type aptSource struct {
	uri    string
	suites []string
}

// pickMirrors takes the first source carrying a release itself (bookworm,
// stable) as the archive, and the first carrying a -security suite as the
// security archive.
func pickMirrors(srcs []aptSource) Mirrors {
	var m Mirrors
	for _, s := range srcs {
		for _, suite := range s.suites {
			switch {
			case m.Archive == "" && suite != "" && !strings.ContainsAny(suite, "-/"):
				m.Archive = s.uri
			case m.Security == "" && strings.HasSuffix(suite, "-security"):
				m.Security = s.uri
			}
		}
	}
	return m
}

// parseDeb822 returns the enabled "deb" sources of a deb822 .sources file,
// the first URI of each stanza.
func parseDeb822(text string) []aptSource {
	var srcs []aptSource
	for _, stanza := range strings.Split(strings.ReplaceAll(text, "\r", ""), "\n\n") {
		fields := map[string]string{}
		var last string
		for _, line := range strings.Split(stanza, "\n") {
			switch {
			case strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "":
			case line[0] == ' ' || line[0] == '\t':
				if last != "" {
					fields[last] += " " + strings.TrimSpace(line)
				}
			default:
				k, v, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				last = strings.ToLower(strings.TrimSpace(k))
				fields[last] = strings.TrimSpace(v)
			}
		}
		uris := strings.Fields(fields["uris"])
		if strings.EqualFold(fields["enabled"], "no") || !slices.Contains(strings.Fields(fields["types"]), "deb") || len(uris) == 0 {
			continue
		}
		srcs = append(srcs, aptSource{uri: strings.TrimRight(uris[0], "/"), suites: strings.Fields(fields["suites"])})
	}
	return srcs
}

// parseOneLine returns the "deb" lines of a one-line sources.list.
func parseOneLine(text string) []aptSource {
	var srcs []aptSource
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			// Options: [ arch=amd64 signed-by=... ], spaces optional.
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) >= 2 {
			srcs = append(srcs, aptSource{uri: strings.TrimRight(f[0], "/"), suites: f[1:2]})
		}
	}
	return srcs
}

// debian fetches Debian's linux-source-<series> from suite.
func (f *fetcher) debian(ctx context.Context, want Version, suite string) (*Tree, error) {
	pkg := "linux-source-" + want.Series()
	refName := "debian-" + want.String()
	if !f.Update {
		if t, ok := f.fromRef(refName); ok && want.Matches(t.Version) {
			hint := ""
			if !want.Exact() {
				hint = " (--update asks Debian for a newer one)"
			}
			f.progress("kernel %s: cached %s%s", t.Version, t.Origin, hint)
			return t, nil
		}
	}
	cfg, err := f.aptConfig(suite)
	if err != nil {
		return nil, err
	}
	deb, p, err := f.aptFetch(ctx, cfg, pkg, want)
	if err != nil {
		return nil, err
	}
	origin := fmt.Sprintf("Debian %s %s (%s)", pkg, p.Version, suite)
	var t *Tree
	if deb == "" {
		// The index's SHA256 names an entry we already have.
		var ok bool
		if t, ok = f.cached(debKey(p.SHA256)); !ok {
			return nil, errors.New("the cache entry went away while apt ran: run again")
		}
		t.SHA256 = p.SHA256
	} else {
		defer os.RemoveAll(filepath.Dir(deb))
		sum, err := cache.FileSHA256(deb)
		if err != nil {
			return nil, err
		}
		if p.SHA256 != "" && sum != p.SHA256 {
			return nil, fmt.Errorf("%s: SHA-256 is %s, but the package index says %s: the download is corrupt; nothing was cached, run again", filepath.Base(deb), sum, p.SHA256)
		}
		member := "usr/src/" + pkg + ".tar.xz"
		f.progress("unpacking %s from %s", member, filepath.Base(deb))
		start := time.Now()
		t, err = f.install(ctx, debKey(sum), func(dir string) error {
			return f.unpackDeb(ctx, deb, member, dir)
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(deb), err)
		}
		if !t.Hit {
			f.progress("unpacked in %.1fs", time.Since(start).Seconds())
		}
		t.SHA256 = sum
	}
	t.Origin = origin
	if !want.Matches(t.Version) {
		return nil, fmt.Errorf("%s unpacked to kernel %s, not %s", origin, t.Version, want)
	}
	if err := f.writeRef(refName, t); err != nil {
		return nil, err
	}
	return t, nil
}

// aptConfig is the private apt configuration of suite, in the cache, on
// DebianMirror or else the archive the system's apt sources name.
func (f *fetcher) aptConfig(suite string) (*AptConfig, error) {
	mirrors := Mirrors{Archive: strings.TrimRight(f.DebianMirror, "/")}
	if mirrors.Archive == "" {
		var err error
		if mirrors, err = SystemMirrors(f.Root); err != nil {
			return nil, err
		}
	}
	return &AptConfig{Dir: filepath.Join(f.Cache.Dir, "apt", suite), Suite: suite, Mirrors: mirrors, Keyring: f.Keyring}, nil
}

// aptFetch updates the private package lists, picks the version of pkg
// that answers want (the newest, or the newest of an exact release) and
// downloads it into a temporary directory, unless the cache already has the
// tree of the .deb the index names: then deb is "". Runs of the same suite
// take turns.
func (f *fetcher) aptFetch(ctx context.Context, cfg *AptConfig, pkg string, want Version) (deb string, p *Package, err error) {
	unlock, err := f.Cache.Lock("apt-" + cfg.Suite)
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	from := cfg.Archive + " " + cfg.Suite + " and " + cfg.Suite + "-updates"
	if rollingSuite(cfg.Suite) {
		from = cfg.Archive + " " + cfg.Suite
	} else if cfg.Security != "" {
		from += ", " + cfg.Security + " " + cfg.Suite + "-security"
	}
	f.progress("kernel %s: Debian's %s from %s (private apt configuration in %s)", want, pkg, from, cfg.Dir)
	all, err := f.aptIndex(ctx, cfg, pkg)
	if err != nil {
		return "", nil, err
	}
	if p = pickPackage(all, want); p == nil {
		return "", nil, fmt.Errorf("the Debian archive (%s) has %s %s, not %s: ask for --kernel %s or one of those, "+
			"take %s from kernel.org with --from kernel.org, or pass a %s tree or tarball with --kernel-source",
			cfg.Suite, pkg, upstreams(all), want, want.Series(), want, want)
	}
	if p.SHA256 != "" {
		if _, ok := f.cached(debKey(p.SHA256)); ok {
			f.progress("%s %s: already unpacked in the cache", pkg, p.Version)
			return "", p, nil
		}
	}
	tmp, err := f.Cache.TempDir("deb")
	if err != nil {
		return "", nil, err
	}
	f.progress("downloading %s %s (%s)", pkg, p.Version, megabytes(p.Size))
	start := time.Now()
	deb, err = f.Apt.Download(ctx, cfg, p, tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	f.progress("downloaded %s in %.1fs", filepath.Base(deb), time.Since(start).Seconds())
	return deb, p, nil
}

// aptIndex writes the private configuration, updates its package lists
// and returns every version of pkg they name. The caller holds the suite's
// lock.
func (f *fetcher) aptIndex(ctx context.Context, cfg *AptConfig, pkg string) ([]*Package, error) {
	if err := cfg.Setup(); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := f.Apt.Update(ctx, cfg); err != nil {
		return nil, err
	}
	f.progress("apt-get update: %.1fs", time.Since(start).Seconds())
	return f.Apt.Versions(ctx, cfg, pkg)
}

// unpackDeb unpacks the kernel tarball member of the .deb into dir,
// streaming: dpkg-deb's data tar is read here, the xz tarball inside it is
// piped to tar.
func (f *fetcher) unpackDeb(ctx context.Context, deb, member, dir string) (err error) {
	rc, err := f.Apt.DataTar(ctx, deb)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
	}()
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the package's files: %w", err)
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) != member || h.Typeflag != tar.TypeReg {
			continue
		}
		if err := untarXZ(ctx, tr, dir); err != nil {
			return err
		}
		found = true
	}
	if !found {
		return fmt.Errorf("the package has no %s", member)
	}
	return nil
}

// SystemApt runs the system's apt-get, apt-cache and dpkg-deb.
type SystemApt struct{}

// run runs name with args in dir; what names the step in errors.
func (*SystemApt) run(ctx context.Context, dir, what, name string, args ...string) ([]byte, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("%s not found: wgbuild fetches Debian's kernel sources with apt on a Debian host; elsewhere pass --kernel-source or --from kernel.org", name)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := lastLines(stderr.String()+stdout.String(), 4)
		return nil, fmt.Errorf("%s: %v: %s", what, err, msg)
	}
	return stdout.Bytes(), nil
}

// Update runs apt-get update on the private configuration.
func (a *SystemApt) Update(ctx context.Context, cfg *AptConfig) error {
	args := append(append([]string{"-q"}, cfg.Options()...), "update")
	if _, err := a.run(ctx, "", "apt-get update", "apt-get", args...); err != nil {
		return fmt.Errorf("%w\n(could %s be reached? pass --debian-mirror URL for another mirror)", err, cfg.Archive)
	}
	return nil
}

// Versions runs apt-cache show, which lists versions newest first.
func (a *SystemApt) Versions(ctx context.Context, cfg *AptConfig, pkg string) ([]*Package, error) {
	args := append(append([]string{"-q"}, cfg.Options()...), "show", pkg)
	out, err := a.run(ctx, "", "apt-cache show "+pkg, "apt-cache", args...)
	if err != nil {
		return nil, fmt.Errorf("%s %s has no %s: %w", cfg.Archive, cfg.Suite, pkg, err)
	}
	ps, err := ParsePackages(out)
	if err != nil {
		return nil, fmt.Errorf("apt-cache show %s: %w", pkg, err)
	}
	return ps, nil
}

// Download runs apt-get download in dir.
func (a *SystemApt) Download(ctx context.Context, cfg *AptConfig, p *Package, dir string) (string, error) {
	spec := p.Name + "=" + p.Version
	args := append(append([]string{"-q"}, cfg.Options()...), "download", spec)
	if _, err := a.run(ctx, dir, "apt-get download "+spec, "apt-get", args...); err != nil {
		return "", err
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d .deb files in %s, want 1", spec, len(debs), dir)
	}
	return debs[0], nil
}

// DataTar runs dpkg-deb --fsys-tarfile.
func (a *SystemApt) DataTar(ctx context.Context, deb string) (io.ReadCloser, error) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		return nil, errors.New("dpkg-deb not found: run `apt-get install dpkg`")
	}
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dpkg-deb: %w", err)
	}
	return &cmdReader{ReadCloser: out, cmd: cmd, stderr: &stderr}, nil
}

// cmdReader is a command's stdout; Close reads what is left and waits.
type cmdReader struct {
	io.ReadCloser
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func (r *cmdReader) Close() error {
	_, _ = io.Copy(io.Discard, r.ReadCloser)
	if err := r.cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(r.cmd.Args, " "), err, lastLines(r.stderr.String(), 4))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// ParsePackages parses apt-cache show's output: one stanza per version.
func ParsePackages(out []byte) ([]*Package, error) {
	var ps []*Package
	p := &Package{}
	flush := func() {
		if p.Name != "" && p.Version != "" {
			ps = append(ps, p)
		}
		p = &Package{}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			p.Name = v
		case "Version":
			p.Version = v
		case "SHA256":
			p.SHA256 = strings.ToLower(v)
		case "Filename":
			p.Filename = v
		case "Size":
			_, _ = fmt.Sscan(v, &p.Size)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	flush()
	if len(ps) == 0 {
		return nil, errors.New("no Package and Version fields in its output")
	}
	return ps, nil
}

// pickPackage returns the first of ps (apt lists the newest first) whose
// upstream version answers want, or nil.
func pickPackage(ps []*Package, want Version) *Package {
	for _, p := range ps {
		if want.Matches(p.Upstream()) {
			return p
		}
	}
	return nil
}

// upstreams lists the upstream versions of ps, once each: "6.1.192, 6.1.176".
func upstreams(ps []*Package) string {
	var vs []string
	for _, p := range ps {
		if u := p.Upstream(); !slices.Contains(vs, u) {
			vs = append(vs, u)
		}
	}
	return strings.Join(vs, ", ")
}
