package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/harness"
)

var cacheCmd = &command{
	name:    "cache",
	summary: "list the cache's entries, or prune those not used for a while",
	usage:   "ls [--kind K] [--cache DIR] | prune [--older-than AGE | --all] [--kind K] [--dry-run] [--cache DIR]",
	help: `
ls lists what the cache holds, one entry a line, oldest use first within
each kind: its kind, key, size, when it was last used and what it is, then
the total. An entry's last use is its directory's modification time, which
every cache hit refreshes. A file hard-linked into several entries (a
worktree holds a linked copy of a ksrc tree) counts once, toward the first
entry listed.

prune removes the entries last used more than --older-than ago (default
30 days), or all of them with --all, optionally only those of one --kind,
and says what each removal freed. Anything removed is rebuilt or fetched
again when needed. Runs younger than 2h are never removed: another wgbuild
may still be writing them. An entry that a running wgbuild is building (or
a worktree it is building in) is skipped; but a running build may be
reading an entry it used a moment ago, so do not prune --all during one.

Kinds: kernel and intree (built kernels), worktree (in-tree build
workspaces), module (built drivers), ksrc (kernel source trees), kscripts,
initramfs-base, selftest (netns.sh of a Debian linux-source), debpkg
(Debian packages the guest needs newer than the host's: wg for a newer
netns.sh), runs (vmtest and interop logs), failed/<kind> (output of failed
builds, kept for their logs); --kind failed means all of these.

Examples:
  wgbuild cache ls
  wgbuild cache ls --kind kernel
  wgbuild cache prune --dry-run                  # what a prune would remove
  wgbuild cache prune                            # unused for 30 days
  wgbuild cache prune --older-than 7d --kind module
  wgbuild cache prune --kind failed --all        # every kept failed build
  wgbuild cache prune --all                      # empty the cache`,
}

func init() { cacheCmd.run = runCache }

// knownKinds are the kinds of entry wgbuild makes, for checking --kind.
var knownKinds = []string{"debpkg", "failed", "initramfs-base", "intree", "kernel", "kscripts", "ksrc", "module", "runs", "selftest", "worktree"}

// age is a --older-than value: a Go duration, or a number of days ("30d").
type age time.Duration

func (a *age) String() string {
	d := time.Duration(*a)
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func (a *age) Set(s string) error {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return fmt.Errorf("%q is not an age: give days (30d) or a duration (720h, 90m)", s)
		}
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("%q is not an age: give days (30d) or a duration (720h, 90m)", s)
		}
	}
	if d < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	*a = age(d)
	return nil
}

// pruneOptions selects what prune removes.
type pruneOptions struct {
	olderThan time.Duration
	all       bool
	kind      string
}

// matchKind reports whether kind is selected by --kind k: k itself, or
// any failed/<kind> for k = failed.
func matchKind(kind, k string) bool {
	return k == "" || kind == k || strings.HasPrefix(kind, k+"/")
}

// selectPrune returns the entries prune removes, and how many runs it keeps
// only because they are younger than harness.RunsMinAge.
func selectPrune(ents []cache.Entry, now time.Time, o pruneOptions) (sel []cache.Entry, youngRuns int) {
	for _, e := range ents {
		if !matchKind(e.Kind, o.kind) {
			continue
		}
		idle := now.Sub(e.Used)
		if !o.all && idle <= o.olderThan {
			continue
		}
		if e.Kind == "runs" && idle < harness.RunsMinAge {
			youngRuns++
			continue
		}
		sel = append(sel, e)
	}
	return sel, youngRuns
}

// sortEntries orders entries by kind, then oldest use first.
func sortEntries(ents []cache.Entry) {
	slices.SortStableFunc(ents, func(a, b cache.Entry) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		if c := a.Used.Compare(b.Used); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}

func runCache(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(cacheCmd)
	var f commonFlags
	fs.StringVar(&f.cache, "cache", "", "cache `dir`ectory (default $WGKIT_CACHE, $XDG_CACHE_HOME/wgkit or ~/.cache/wgkit)")
	kind := fs.String("kind", "", "only entries of this `kind` (kernel, module, ksrc, runs, failed...)")
	olderThan := age(30 * 24 * time.Hour)
	fs.Var(&olderThan, "older-than", "prune: remove entries last used longer ago than this `age` (30d, 720h, 90m)")
	all := fs.Bool("all", false, "prune: remove every entry (of --kind), however recently used; runs younger than 2h stay")
	dryRun := fs.Bool("dry-run", false, "prune: only print what would be removed")

	action := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	if code, ok := parse(cacheCmd, e, fs, args); !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	switch action {
	case "ls", "prune":
	case "":
		return usageError(cacheCmd, e, "give an action: `wgbuild cache ls` or `wgbuild cache prune`")
	default:
		return usageError(cacheCmd, e, "unknown action %q: give ls or prune", action)
	}
	if action == "ls" {
		for _, name := range []string{"older-than", "all", "dry-run"} {
			if set[name] {
				return usageError(cacheCmd, e, "--%s is for prune, not ls (to see what prune would remove: wgbuild cache prune --dry-run)", name)
			}
		}
	}
	if *all && set["older-than"] {
		return usageError(cacheCmd, e, "give --all or --older-than, not both")
	}
	c, err := f.openCache()
	if err != nil {
		return fail(e, err)
	}
	ents, err := c.Entries()
	if err != nil {
		return fail(e, err)
	}
	if *kind != "" && !slices.Contains(knownKinds, *kind) && !slices.ContainsFunc(ents, func(en cache.Entry) bool { return matchKind(en.Kind, *kind) }) {
		return usageError(cacheCmd, e, "--kind %q: no such kind; kinds are %s", *kind, strings.Join(kindsOf(ents), ", "))
	}
	sortEntries(ents)
	now := time.Now()
	if action == "ls" {
		var shown []cache.Entry
		for _, en := range ents {
			if matchKind(en.Kind, *kind) {
				shown = append(shown, en)
			}
		}
		printEntries(e.stdout, shown, now, c.Dir)
		return ExitOK
	}
	return prune(ctx, e, c, ents, now, pruneOptions{olderThan: time.Duration(olderThan), all: *all, kind: *kind}, *dryRun)
}

// kindsOf lists the known kinds and those present in ents.
func kindsOf(ents []cache.Entry) []string {
	kinds := slices.Clone(knownKinds)
	for _, en := range ents {
		if !slices.Contains(kinds, en.Kind) {
			kinds = append(kinds, en.Kind)
		}
	}
	slices.Sort(kinds)
	return kinds
}

func printEntries(w io.Writer, ents []cache.Entry, now time.Time, dir string) {
	var total int64
	tw := newTable(w)
	if len(ents) > 0 {
		fmt.Fprintln(tw, "KIND\tKEY\tSIZE\tLAST USED\tWHAT")
	}
	for _, en := range ents {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", en.Kind, shortKey(en), humanSize(en.Size), ago(now, en.Used), en.What)
		total += en.Size
	}
	tw.Flush()
	fmt.Fprintf(w, "total: %s in %s, %s\n", plural(len(ents), "entry", "entries"), dir, humanSize(total))
}

func prune(ctx context.Context, e *env, c *cache.Cache, ents []cache.Entry, now time.Time, o pruneOptions, dryRun bool) int {
	sel, young := selectPrune(ents, now, o)
	what := "entries"
	if o.kind != "" {
		what = o.kind + " entries"
	}
	if young > 0 {
		fmt.Fprintf(e.stdout, "keeping %s younger than %v: another wgbuild may still be writing them\n", plural(young, "run", "runs"), harness.RunsMinAge)
	}
	if len(sel) == 0 {
		if o.all {
			fmt.Fprintf(e.stdout, "nothing to prune: no %s in %s\n", what, c.Dir)
		} else {
			fmt.Fprintf(e.stdout, "nothing to prune: no %s in %s unused for more than %v (prune more with --older-than AGE or --all)\n", what, c.Dir, (*age)(&o.olderThan))
		}
		return ExitOK
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	var freed int64
	var removed, inUse int
	var errs []error
	tw := newTable(e.stdout)
	for _, en := range sel {
		if err := ctx.Err(); err != nil {
			tw.Flush()
			return fail(e, err)
		}
		if !dryRun {
			if err := c.Remove(en); err != nil {
				if errors.Is(err, cache.ErrInUse) {
					fmt.Fprintf(tw, "skipped\t%s\t%s\t%s\tin use by a running build\t%s\n", en.Kind, shortKey(en), humanSize(en.Size), en.What)
					inUse++
				} else {
					errs = append(errs, err)
				}
				continue
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\tlast used %s\t%s\n", verb, en.Kind, shortKey(en), humanSize(en.Size), ago(now, en.Used), en.What)
		freed += en.Size
		removed++
	}
	tw.Flush()
	if !dryRun {
		// Removing a ksrc entry drops the references to it; this also
		// drops references left pointing at trees removed some other way.
		if _, err := c.CleanRefs(); err != nil {
			errs = append(errs, err)
		}
	}
	if dryRun {
		fmt.Fprintf(e.stdout, "would free %s from %s (dry run: nothing removed)\n", humanSize(freed), plural(removed, "entry", "entries"))
	} else {
		fmt.Fprintf(e.stdout, "freed %s from %s\n", humanSize(freed), plural(removed, "entry", "entries"))
	}
	if inUse > 0 {
		fmt.Fprintf(e.stdout, "skipped %s in use: run the prune again once the running builds are done\n", plural(inUse, "entry", "entries"))
	}
	if len(errs) > 0 {
		return fail(e, errors.Join(errs...))
	}
	return ExitOK
}

// table is a tabwriter whose lines end without padding.
type table struct {
	out io.Writer
	buf strings.Builder
	tw  *tabwriter.Writer
}

func newTable(w io.Writer) *table {
	t := &table{out: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 8, 2, ' ', 0)
	return t
}

func (t *table) Write(b []byte) (int, error) { return t.tw.Write(b) }

// Flush writes the table's lines so far.
func (t *table) Flush() {
	t.tw.Flush()
	for line := range strings.Lines(t.buf.String()) {
		fmt.Fprintln(t.out, strings.TrimRight(line, " \n"))
	}
	t.buf.Reset()
}

// shortKey abbreviates a hash key; a run's name (a time and a pid) is
// shown whole.
func shortKey(en cache.Entry) string {
	if en.Kind == "runs" {
		return en.Key
	}
	return cache.Short(en.Key)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// humanSize formats bytes with binary units: "512 B", "12.0 KiB", "1.2 GiB".
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ago says how long before now t was: "40s ago", "5m ago", "3h ago",
// "12d ago".
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
}
