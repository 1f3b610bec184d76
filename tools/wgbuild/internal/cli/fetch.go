package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

var fetchCmd = &command{
	name:    "fetch",
	summary: "get a kernel source tree into the cache and print its path",
	usage:   "--kernel X.Y[.Z] | --kernel-source PATH | --list [--offline] [--from auto|debian|local|kernel.org] [--source-dir DIR] [--update] [--cache DIR]",
	help: `
Get the sources of a kernel, unpacked, and print the tree's path on stdout.
Trees are cached by the SHA-256 of the .deb or tarball they came from; a
second fetch of the same kernel needs neither apt nor the network.

Where the sources come from, in order:
  1. the cache;
  2. --kernel-source PATH: a .tar.xz, .tar.gz or .tar is unpacked into the
     cache; an unpacked tree is used in place, not copied;
  3. for 5.10, 6.1, 6.12, 7.2 and 7.3: Debian's linux-source-X.Y package
     from bullseye, bookworm or trixie (with their -updates and -security
     suites), unstable (sid) or experimental, fetched
     with apt-get download under a private apt configuration in
     <cache>/apt/<suite>: its own sources list, state and cache, built from
     the mirrors the system's apt sources name. The system's apt sources and
     installed packages are never changed. The newest version is taken, or
     the one whose upstream release is the X.Y.Z asked for; the release
     reported is read from the unpacked tree's Makefile;
  4. any other X.Y.Z (or the newest X.Y.Z of X.Y): a tarball named
     linux-X.Y[.Z].tar.xz (or .gz, .bz2, .zst) in --source-dir DIR or
     $WGKIT_KERNEL_SOURCES, if there is one; the release reported is read
     from its Makefile;
  5. otherwise kernel.org's release
     tarball, checked against the SHA-256 in kernel.org's sha256sums.asc.
     That needs internet access to cdn.kernel.org, or a copy: --mirror for
     the tarballs (http(s)://, file:// or a directory holding vN.x/) and
     --sha256sums for the sums file.

` + ksrc.Choices() + `

--list asks each Debian suite which versions it has now (apt-get update in
the private configuration; --offline shows only what the cache answers) and
lists the tarballs of --source-dir.

Examples:
  wgbuild fetch --list
  wgbuild fetch --kernel 7.3                     # experimental's linux-source-7.3
  wgbuild fetch --kernel 5.6 --source-dir ../shared/kernels
  wgbuild fetch --kernel 6.12                    # Debian trixie's linux-source-6.12
  wgbuild fetch --kernel 6.1.192                 # if Debian has it; else it says what it has
  wgbuild fetch --kernel 6.12 --update           # ask Debian for a newer package
  wgbuild fetch --kernel 5.6.19 --from kernel.org
  wgbuild fetch --kernel 5.6.19 --mirror file:///srv/kernel.org --sha256sums /srv/sha256sums.asc
  wgbuild fetch --kernel-source ~/Downloads/linux-6.6.30.tar.xz
  wgbuild fetch --kernel-source ~/src/linux       # used in place
  cd "$(wgbuild fetch --kernel 6.12)" && head -4 Makefile`,
}

func init() { fetchCmd.run = runFetch }

func runFetch(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(fetchCmd)
	var f commonFlags
	fs.StringVar(&f.cache, "cache", "", "cache `dir`ectory (default $WGKIT_CACHE, $XDG_CACHE_HOME/wgkit or ~/.cache/wgkit)")
	var o ksrc.Options
	fs.StringVar(&o.Version, "kernel", "", "kernel `version`: X.Y (5.10, 6.1, 6.12, or the newest X.Y.Z on kernel.org) or X.Y.Z")
	fs.StringVar(&o.Source, "kernel-source", "", "local kernel `tarball or tree` to use instead of fetching")
	fs.StringVar(&o.From, "from", ksrc.FromAuto, "`where` to fetch --kernel from: auto (Debian for the series it packages, else --source-dir, else kernel.org), debian, local or kernel.org")
	fs.StringVar(&o.SourceDir, "source-dir", os.Getenv(ksrc.SourceDirEnv), "`dir`ectory of kernel tarballs (linux-X.Y[.Z].tar.xz) for series Debian does not package (default $"+ksrc.SourceDirEnv+")")
	fs.BoolVar(&o.Update, "update", false, "ask Debian or kernel.org again even if the cache already answered this --kernel")
	fs.StringVar(&o.DebianMirror, "debian-mirror", "", "Debian archive `URL` instead of the system's (then without the -security suite)")
	fs.StringVar(&o.Mirror, "mirror", ksrc.DefaultMirror, "kernel.org tarball mirror `URL` (http(s)://, file:// or a directory), holding vN.x/linux-X.Y.Z.tar.xz")
	fs.StringVar(&o.SHA256Sums, "sha256sums", "", "SHA-256 sums `file` or URL for the --mirror tarballs (default <mirror>/vN.x/sha256sums.asc)")
	list := fs.Bool("list", false, "list what can be fetched from where, and what the cache holds")
	offline := fs.Bool("offline", false, "with --list: do not ask apt, show only what the cache holds")
	if code, ok := parse(fetchCmd, e, fs, args); !ok {
		return code
	}
	if *offline && !*list {
		return usageError(fetchCmd, e, "--offline goes with --list")
	}
	if *list {
		if o.Version != "" || o.Source != "" {
			return usageError(fetchCmd, e, "--list lists what can be fetched: drop --kernel and --kernel-source")
		}
		if err := checkFrom(o.From, o.SourceDir); err != nil {
			return usageError(fetchCmd, e, "%v", err)
		}
		return runFetchList(ctx, e, &f, o, *offline)
	}
	if o.Version == "" && o.Source == "" {
		return usageError(fetchCmd, e, "give --kernel X.Y[.Z] or --kernel-source PATH\n\n%s", ksrc.Choices())
	}
	if o.Version != "" {
		if _, err := ksrc.ParseVersion(o.Version); err != nil {
			return usageError(fetchCmd, e, "--kernel: %v", err)
		}
	}
	if err := checkFrom(o.From, o.SourceDir); err != nil {
		return usageError(fetchCmd, e, "%v", err)
	}
	c, err := f.openCache()
	if err != nil {
		return fail(e, err)
	}
	o.Cache = c
	o.Progress = func(format string, args ...any) { e.progress("fetch: "+format, args...) }
	t, err := ksrc.Fetch(ctx, o)
	if err != nil {
		return fail(e, err)
	}
	how := "unpacked"
	switch {
	case t.InPlace:
		how = "in place"
	case t.Hit:
		how = "cached " + cache.Short(t.Key)
	case t.Key != "":
		how = "unpacked into " + cache.Short(t.Key)
	}
	e.progress("fetch: kernel %s from %s (%s) in %s", t.Version, t.Origin, how, seconds(time.Since(e.start)))
	fmt.Fprintln(e.stdout, t.Dir)
	return ExitOK
}

// runFetchList prints one line for each place kernels come from.
func runFetchList(ctx context.Context, e *env, f *commonFlags, o ksrc.Options, offline bool) int {
	c, err := f.openCache()
	if err != nil {
		return fail(e, err)
	}
	o.Cache = c
	o.Progress = func(format string, args ...any) { e.progress("fetch: "+format, args...) }
	if !offline {
		e.progress("fetch: asking each Debian suite for its linux-source packages (--offline skips this)")
	}
	avail, err := ksrc.List(ctx, o, offline)
	if err != nil {
		return fail(e, err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tFROM\tVERSIONS\tCACHED")
	for _, a := range avail {
		series, versions, cached := a.Series, strings.Join(a.Versions, ", "), a.Cached
		if series == "" {
			series = "X.Y[.Z]"
		}
		switch {
		case a.Err != nil:
			versions = "error: " + a.Err.Error()
		case offline && versions == "" && a.Series != "":
			versions = "(not asked: --offline)"
		case versions == "":
			versions = "-"
		}
		if cached == "" {
			cached = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", series, a.Where, versions, cached)
	}
	if err := tw.Flush(); err != nil {
		return fail(e, err)
	}
	if o.SourceDir == "" {
		fmt.Fprintf(e.stdout, "\nNo --source-dir (or $%s): point it at a directory of linux-X.Y[.Z].tar.xz tarballs for series Debian does not package.\n", ksrc.SourceDirEnv)
	}
	return ExitOK
}
