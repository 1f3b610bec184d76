package ksrc

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// Available is one place kernels can come from, for `wgbuild fetch --list`.
type Available struct {
	Series string // "6.12"; "" for a source that serves many
	Where  string // "Debian trixie (linux-source-6.12)", "local /srv/k", "kernel.org"
	// Versions are the upstream releases it offers now, newest first;
	// empty with Err when it could not be asked.
	Versions []string
	Cached   string // the release a fetch of Series answers offline, if any
	Err      error
}

// List reports what Fetch can supply: each Debian series (asking apt for
// its current versions unless offline), the tarballs of opts.SourceDir and
// kernel.org. A source that cannot be asked is listed with its error.
func List(ctx context.Context, opts Options, offline bool) ([]Available, error) {
	if opts.Cache == nil {
		return nil, fmt.Errorf("ksrc: no cache")
	}
	f := &fetcher{Options: withDefaults(opts)}
	o := f.Options
	var out []Available
	var mirrors Mirrors
	var mirrorErr error
	if !offline {
		mirrors = Mirrors{Archive: strings.TrimRight(o.DebianMirror, "/")}
		if mirrors.Archive == "" {
			mirrors, mirrorErr = SystemMirrors(o.Root)
		}
	}
	for _, ds := range debianSuites {
		pkg := "linux-source-" + ds.series
		a := Available{Series: ds.series, Where: fmt.Sprintf("Debian %s (%s)", ds.suite, pkg)}
		if t, ok := f.fromRef("debian-" + ds.series); ok {
			a.Cached = t.Version
		}
		switch {
		case offline:
		case mirrorErr != nil:
			a.Err = mirrorErr
		default:
			a.Versions, a.Err = f.aptVersions(ctx, &AptConfig{Dir: filepath.Join(o.Cache.Dir, "apt", ds.suite), Suite: ds.suite, Mirrors: mirrors, Keyring: o.Keyring}, pkg)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if o.SourceDir != "" {
		ts, err := ScanSourceDir(o.SourceDir)
		seen := map[string]bool{}
		if err != nil {
			out = append(out, Available{Where: "local " + o.SourceDir, Err: err})
		}
		for _, lt := range ts {
			s := lt.Version.Series()
			if !seen[s] {
				seen[s] = true
				out = append(out, Available{Series: s, Where: "local " + o.SourceDir})
			}
			out[len(out)-1].Versions = append(out[len(out)-1].Versions, lt.Version.String())
		}
	}
	out = append(out, Available{Where: "kernel.org (any X.Y or X.Y.Z: needs internet access to cdn.kernel.org, or --mirror)"})
	return out, nil
}

// aptVersions updates the suite's private lists and returns the upstream
// versions of pkg in it.
func (f *fetcher) aptVersions(ctx context.Context, cfg *AptConfig, pkg string) ([]string, error) {
	unlock, err := f.Cache.Lock("apt-" + cfg.Suite)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ps, err := f.aptIndex(ctx, cfg, pkg)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("the %s suite has no %s", cfg.Suite, pkg)
	}
	return strings.Split(upstreams(ps), ", "), nil
}
