package series

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/configs"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kcheck"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

// Prefix is the subject tag of the series.
const Prefix = "PATCH net-next"

// Branch is the branch of version v in the scratch tree.
func Branch(v int) string { return fmt.Sprintf("wireguard-v%d", v) }

// workspaceKind is the cache kind of the scratch trees.
const workspaceKind = "patches-tree"

// Workspace is the scratch git tree of a base and its build directory,
// kept in the cache: <cache>/patches-tree/<key>/{src,build,logs}.
type Workspace struct {
	Dir, Src, Build string
	Tree            *ksrc.Tree
	Repo            *Repo
	unlock          func()
}

// Close releases the workspace's lock.
func (w *Workspace) Close() { w.unlock() }

// OpenWorkspace opens, creating it the first time, the scratch tree of
// the base tree: a hard-linked copy of it committed to git as the tag
// BaseTag. It holds a lock until Close: one series run per base at a
// time.
func OpenWorkspace(ctx context.Context, c *cache.Cache, tree *ksrc.Tree, rep kbuild.Reporter) (*Workspace, error) {
	k := cache.NewKey(workspaceKind)
	k.AddString("recipe", "scratch git tree v1: cp -al, git add -A -f, one commit tagged base")
	if tree.SHA256 != "" {
		k.AddString("tree", "sha256:"+tree.SHA256)
	} else {
		k.AddString("tree", "inplace:"+tree.Dir+":"+tree.Version)
	}
	key := k.Sum()
	unlock, err := c.Lock(workspaceKind + "-" + key)
	if err != nil {
		return nil, err
	}
	w := &Workspace{Dir: c.Path(workspaceKind, key), Tree: tree, unlock: unlock}
	w.Src, w.Build = filepath.Join(w.Dir, "src"), filepath.Join(w.Dir, "build")
	w.Repo = &Repo{Dir: w.Src}
	if !w.Repo.HasRev(ctx, BaseTag) {
		if err := w.create(ctx, c, rep); err != nil {
			unlock()
			return nil, fmt.Errorf("making the scratch git tree of %s: %w", tree.Dir, err)
		}
	}
	c.Touch(workspaceKind, key)
	return w, nil
}

func (w *Workspace) create(ctx context.Context, c *cache.Cache, rep kbuild.Reporter) error {
	start := time.Now()
	if err := os.MkdirAll(w.Dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(w.Dir, "src.tmp")
	for _, d := range []string{tmp, w.Src, w.Build} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	rep.Phase("scratch tree: linking a copy of %s into %s", w.Tree.Dir, w.Src)
	if out, err := exec.CommandContext(ctx, "cp", "-al", w.Tree.Dir, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -al: %v: %s", err, out)
	}
	rep.Phase("scratch tree: git add and commit of the base (once per base; a minute or two)")
	msg := fmt.Sprintf("Linux %s\n\nThe base of the series: %s, as released.\n", w.Tree.Version, w.Tree.Origin)
	if err := InitScratch(ctx, tmp, msg); err != nil {
		return err
	}
	if err := os.Rename(tmp, w.Src); err != nil {
		return err
	}
	rep.Phase("scratch tree: ready in %.0fs", time.Since(start).Seconds())
	return nil
}

// Options configures Generate and Check.
type Options struct {
	Spec   *Spec
	Inputs Inputs // BaseDir is set from the workspace's tree
	Author Identity
	// Date is the date of every commit (RFC 3339); "" means now.
	Date    string
	Version int
	// OutDir holds the versions: OutDir/vN/*.patch.
	OutDir string
	// Tested are the cover letter's lines on testing, put where the
	// cover's body has a line "@TESTED@".
	Tested []string

	// Build runs the per-patch builds.
	Build     bool
	Jobs      int
	Fragments []configs.Fragment
	// LLVM, with Build, also builds the driver at each patch with clang:
	// make LLVM=1 or LLVM=-N ("" for none).
	LLVM string
	// AllModConfig, with Build, also builds the driver at each patch in
	// an allmodconfig tree, with sparse (C=1, CHECK=Sparse) unless Sparse
	// is "" (NoSparse then says why).
	AllModConfig     bool
	Sparse, NoSparse string
	// I386, with Build, also builds the driver at each patch in an i386
	// allmodconfig tree (netdev's 32-bit build).
	I386 bool

	Reporter kbuild.Reporter
	// Result receives each check's result as it is known.
	Result func(Result)
	// Recheck runs the checks even when the same mails, on the same
	// base with the same driver, passed them before.
	Recheck bool
}

// Result is one check of one patch (Patch 0: the cover letter or the
// series as a whole).
type Result struct {
	Patch, Of int
	Name      string
	Passed    bool
	Skipped   bool
	Detail    string // what was checked, on one line
	Output    string // what went wrong
	Took      time.Duration
}

// Generated is a written series.
type Generated struct {
	Dir   string
	Cover string
	Files []string // the patches, in order
	// Tree is the tree of the last generated commit.
	Tree string
	// RangeDiff names the previous version the cover letter compares
	// against ("" for none).
	RangeDiff string
}

// VersionDir is where version v of the series is written.
func VersionDir(out string, v int) string { return filepath.Join(out, fmt.Sprintf("v%d", v)) }

// Generate writes version opts.Version of the series into
// VersionDir(opts.OutDir, opts.Version), replacing what was there, and
// points the scratch tree's branch wireguard-vN at its commits.
func Generate(ctx context.Context, w *Workspace, opts *Options) (*Generated, error) {
	in := opts.Inputs
	in.BaseDir = w.Tree.Dir
	steps, err := Plan(opts.Spec, in)
	if err != nil {
		return nil, err
	}
	changelog, err := opts.Spec.Changelog(opts.Version)
	if err != nil {
		return nil, err
	}
	var msgs []string
	for _, st := range steps {
		msgs = append(msgs, Message(st.Patch, opts.Author))
	}
	r := *w.Repo
	r.ID, r.Date = opts.Author, opts.Date
	branch := Branch(opts.Version)
	opts.Reporter.Phase("series: %d patches from %s onto %s (branch %s)", len(steps), opts.Spec.File, w.Tree.Version, branch)
	commits, err := CommitSteps(ctx, &r, steps, msgs, branch)
	if err != nil {
		return nil, err
	}
	g := &Generated{Dir: VersionDir(opts.OutDir, opts.Version), Tree: commits[len(commits)-1].Tree}
	if opts.Version > 1 && r.HasRev(ctx, Branch(opts.Version-1)) {
		g.RangeDiff = BaseTag + ".." + Branch(opts.Version-1)
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(opts.OutDir, ".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	files, err := FormatPatch(ctx, &r, branch, opts.Version, Prefix, g.RangeDiff, tmp)
	if err != nil {
		return nil, err
	}
	if len(files) != len(steps)+1 {
		return nil, fmt.Errorf("git format-patch wrote %d files, want %d patches and a cover letter", len(files), len(steps))
	}
	// Every mail goes to everyone get_maintainer.pl names for any patch,
	// as b4 sends a series: a reviewer of one part sees the rest, and no
	// patch goes out without a To (the uapi header and MAINTAINERS have
	// no maintainer of their own in the base).
	var all Recipients
	var cp [][]CPMessage
	for _, f := range files[1:] {
		rc, err := GetMaintainer(ctx, w.Tree.Dir, f)
		if err != nil {
			return nil, err
		}
		all.Add(rc)
		msgs, err := Checkpatch(ctx, w.Tree.Dir, f)
		if err != nil {
			return nil, err
		}
		cp = append(cp, msgs)
	}
	for _, f := range files[1:] {
		if err := rewrite(f, func(b []byte) ([]byte, error) { return AddRecipients(b, all), nil }); err != nil {
			return nil, err
		}
	}
	body := coverBody(opts, w.Tree, changelog, checkpatchNotes(opts.Spec, cp, len(steps)), g.RangeDiff)
	err = rewrite(files[0], func(b []byte) ([]byte, error) {
		b, err := FillCover(b, opts.Spec.Cover.Subject, body)
		return AddRecipients(b, all), err
	})
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(g.Dir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, g.Dir); err != nil {
		return nil, err
	}
	for _, f := range files {
		g.Files = append(g.Files, filepath.Join(g.Dir, filepath.Base(f)))
	}
	g.Cover, g.Files = g.Files[0], g.Files[1:]
	return g, nil
}

func rewrite(file string, f func([]byte) ([]byte, error)) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if b, err = f(b); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return os.WriteFile(file, b, 0o644)
}

// TestedMarker in the cover's body is replaced by Options.Tested.
const TestedMarker = "@TESTED@"

// noResults stands for Options.Tested when there are none; the check of
// the cover letter fails on it.
const noResults = "*** NO TEST RESULTS: pass --tested FILE ***"

func coverBody(opts *Options, tree *ksrc.Tree, changelog, notes []string, rangeDiff string) []string {
	var body []string
	for _, l := range opts.Spec.Cover.Body {
		if strings.TrimSpace(l) == TestedMarker {
			if len(opts.Tested) == 0 {
				body = append(body, noResults)
			}
			for _, t := range opts.Tested {
				body = append(body, wrap(t, MaxBodyWidth, "  ")...)
			}
			continue
		}
		body = append(body, l)
	}
	body = append(body, "")
	body = append(body, notes...)
	body = append(body, "")
	body = append(body, wrap(fmt.Sprintf("The series applies to Linux %s (%s).", tree.Version, tree.Origin), MaxBodyWidth, "")...)
	if len(changelog) > 0 {
		body = append(body, "")
		body = append(body, changelog...)
		if rangeDiff == "" {
			body = append(body, "", fmt.Sprintf("(No range-diff: v%d is not in this scratch tree.)", opts.Version-1))
		}
	}
	return body
}

// Mails returns the cover letter and the patches of version v in dir.
func Mails(dir string, v int) (cover string, patches []string, err error) {
	all, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf("v%d-*.patch", v)))
	if err != nil {
		return "", nil, err
	}
	slices.Sort(all)
	for _, f := range all {
		if strings.HasPrefix(filepath.Base(f), fmt.Sprintf("v%d-0000-", v)) {
			cover = f
		} else {
			patches = append(patches, f)
		}
	}
	if cover == "" && len(patches) == 0 {
		return "", nil, fmt.Errorf("no v%d-*.patch in %s: run `wgbuild patches --version %d` first", v, dir, v)
	}
	return cover, patches, nil
}

// Check checks the mails of version opts.Version in
// VersionDir(opts.OutDir, opts.Version): their form, then, patch by patch
// on the scratch tree's base, git am, the build, checkpatch and
// kernel-doc, and at the end that the tree's driver is kernel/. want is
// the tree the series should end in ("" to skip that comparison). Each
// result goes to opts.Result; the return value says whether all passed.
func Check(ctx context.Context, w *Workspace, opts *Options, want string) (bool, error) {
	dir := VersionDir(opts.OutDir, opts.Version)
	cover, files, err := Mails(dir, opts.Version)
	if err != nil {
		return false, err
	}
	n := len(files)
	key, err := checkKey(opts, cover, files, want)
	if err != nil {
		return false, err
	}
	record := filepath.Join(w.Dir, "checked", key+".json")
	if !opts.Recheck {
		if rs, when, err := loadChecked(record); err == nil {
			opts.Reporter.Phase("checks: the same mails passed on %s; replaying (--recheck runs them again)", when.Format(time.RFC3339))
			for _, r := range rs {
				r.Took = 0
				opts.Result(r)
			}
			return true, nil
		}
	}
	ok := true
	var all []Result
	report := func(r Result) {
		r.Of = n
		if !r.Passed && !r.Skipped {
			ok = false
		}
		all = append(all, r)
		opts.Result(r)
	}

	in := opts.Inputs
	in.BaseDir = w.Tree.Dir

	// The cover letter.
	res := Result{Name: "cover letter", Detail: filepath.Base(cover)}
	if cover == "" {
		res.Output = "no cover letter (v" + fmt.Sprint(opts.Version) + "-0000-cover-letter.patch)"
	} else if m, err := readMail(cover); err != nil {
		res.Output = err.Error()
	} else if p := CheckMail(m, opts.Version, 0, n, opts.Author, opts.Version > 1); len(p) > 0 {
		res.Output = strings.Join(p, "\n")
	} else {
		res.Passed = true
	}
	report(res)
	if n > MaxPatches {
		report(Result{Name: "size", Output: fmt.Sprintf("%d patches: at most %d", n, MaxPatches)})
	}
	report(uapiCheck(ctx, w.Tree.Dir, in.KernelDir))

	r := *w.Repo
	r.ID = opts.Author
	if _, err := r.Git(ctx, nil, "checkout", "-q", "-f", "-B", Branch(opts.Version), BaseTag); err != nil {
		return false, err
	}
	if _, err := r.Git(ctx, nil, "clean", "-q", "-f", "-d"); err != nil {
		return false, err
	}
	_, _ = r.Git(ctx, nil, "am", "--abort")
	logs := filepath.Join(w.Dir, "logs", fmt.Sprintf("v%d", opts.Version))
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return false, err
	}
	b := &builder{src: w.Src, bdir: w.Build, logs: logs, tree: w.Tree, frags: opts.Fragments, jobs: defaultJobs(opts.Jobs), rep: opts.Reporter}
	var variants []*variant
	if opts.Build && opts.LLVM != "" {
		if err := kbuild.CheckLLVM(opts.LLVM); err != nil {
			report(Result{Name: "clang W=1", Skipped: true, Detail: "not run: " + err.Error()})
		} else {
			variants = append(variants, b.newVariant("clang W=1", "clang", opts.LLVM, false))
		}
	}
	if opts.Build && opts.AllModConfig {
		v := b.newVariant("allmodconfig W=1", "allmod", "", true)
		if opts.Sparse != "" {
			v.name, v.sparse = "allmodconfig W=1 C=1", opts.Sparse
		} else {
			report(Result{Name: "sparse", Skipped: true, Detail: "not run: " + opts.NoSparse})
		}
		variants = append(variants, v)
	}
	if opts.Build && opts.I386 {
		v := b.newVariant("i386 allmodconfig W=1", "i386", "", true)
		v.arch = "i386"
		variants = append(variants, v)
	}
	applied := true
	for i, f := range files {
		idx := i + 1
		if !applied {
			report(Result{Patch: idx, Name: "git am", Skipped: true, Detail: "an earlier patch did not apply"})
			continue
		}
		m, err := readMail(f)
		if err != nil {
			report(Result{Patch: idx, Name: "form", Output: err.Error()})
			applied = false
			continue
		}
		res := Result{Patch: idx, Name: "form", Detail: m.Subject}
		if p := CheckMail(m, opts.Version, idx, n, opts.Author, false); len(p) > 0 {
			res.Output = strings.Join(p, "\n")
		} else {
			res.Passed = true
		}
		report(res)

		start := time.Now()
		res = Result{Patch: idx, Name: "git am", Detail: filepath.Base(f)}
		if out, err := r.Git(ctx, nil, "am", "-q", "--whitespace=error-all", f); err != nil {
			res.Output = strings.TrimSpace(out + "\n" + err.Error())
			_, _ = r.Git(ctx, nil, "am", "--abort")
			applied = false
		} else {
			res.Passed = true
		}
		res.Took = time.Since(start)
		report(res)
		if !applied {
			continue
		}
		touched := DiffFiles(m.Diff)

		if opts.Build {
			start = time.Now()
			br := b.build(ctx, idx, touched)
			report(Result{Patch: idx, Name: "build W=1", Passed: br.Problems == "", Detail: br.Summary, Output: br.Problems, Took: time.Since(start)})
			for _, v := range variants {
				start = time.Now()
				br := v.build(ctx, idx, touched)
				report(Result{Patch: idx, Name: v.name, Passed: br.Problems == "", Detail: br.Summary, Output: br.Problems, Took: time.Since(start)})
			}
		}

		start = time.Now()
		res = Result{Patch: idx, Name: "checkpatch"}
		msgs, err := Checkpatch(ctx, w.Tree.Dir, f)
		if err != nil {
			res.Output = err.Error()
		} else {
			acc, rest := splitAccepted(msgs, opts.Spec.accepted(i))
			res.Passed = len(rest) == 0
			res.Detail = strings.Join(CheckpatchArgs[:2], " ")
			if len(acc) > 0 {
				res.Detail += fmt.Sprintf(", %d explained in the cover letter (%s)", len(acc), typesOf(acc))
			}
			for _, m := range rest {
				res.Output += m.String() + "\n"
			}
		}
		res.Took = time.Since(start)
		report(res)

		res = Result{Patch: idx, Name: "kernel-doc"}
		var docs []string
		for _, t := range touched {
			if (strings.HasSuffix(t, ".c") || strings.HasSuffix(t, ".h")) && exists(filepath.Join(w.Src, t)) {
				docs = append(docs, t)
			}
		}
		if len(docs) == 0 {
			res.Passed, res.Detail = true, "no C files"
		} else if kd, err := kcheck.KernelDoc(ctx, filepath.Join(w.Tree.Dir, "scripts"), w.Src, docs); err != nil {
			res.Output = err.Error()
		} else {
			res.Passed, res.Output = kd.Passed, kd.Output
			res.Detail = fmt.Sprintf("-none on %d files", len(docs))
		}
		report(res)
	}

	if applied {
		res := Result{Name: "end state", Detail: "drivers/net/wireguard, the uapi header and drivers/net/Kconfig are kernel/ and Kconfig as the in-tree build lays them out"}
		diff, err := FinalDiff(w.Src, in)
		switch {
		case err != nil:
			res.Output = err.Error()
		case len(diff) > 0:
			res.Output = "after the series these differ from kernel/ (or Kconfig): " + strings.Join(diff, ", ")
		default:
			res.Passed = true
		}
		if want != "" && res.Passed {
			if got, err := r.rev(ctx, "HEAD^{tree}"); err != nil || got != want {
				res.Passed = false
				res.Output = fmt.Sprintf("the mails applied give tree %s, the generated commits %s", got, want)
			}
		}
		report(res)
	}
	if ok {
		if err := saveChecked(record, all); err != nil {
			opts.Reporter.Phase("warning: could not record the checks: %v", err)
		}
	}
	return ok, nil
}

func typesOf(ms []CPMessage) string {
	var t []string
	for _, m := range ms {
		if !slices.Contains(t, m.Type) {
			t = append(t, m.Type)
		}
	}
	return strings.Join(t, ", ")
}

func readMail(f string) (*Mail, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	return ParseMail(f, b)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// SpecDigest is a short digest of the series' inputs, for messages.
func SpecDigest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:6])
}

var errNoIdentity = errors.New("no identity for Signed-off-by")

// DefaultIdentity finds who signs the patches off: flag, then
// $WGKIT_PATCH_AUTHOR, then git config user.name and user.email of the
// repository at dir.
func DefaultIdentity(flag, dir string) (Identity, error) {
	if flag != "" {
		return ParseIdentity(flag)
	}
	if env := os.Getenv("WGKIT_PATCH_AUTHOR"); env != "" {
		id, err := ParseIdentity(env)
		if err != nil {
			return id, fmt.Errorf("$WGKIT_PATCH_AUTHOR: %w", err)
		}
		return id, nil
	}
	get := func(k string) string {
		cmd := exec.Command("git", "config", k)
		cmd.Dir = dir
		out, _ := cmd.Output()
		return strings.TrimSpace(string(out))
	}
	name, email := get("user.name"), get("user.email")
	if name == "" || email == "" {
		return Identity{}, fmt.Errorf("%w: pass --author \"Full Name <you@example.org>\", set WGKIT_PATCH_AUTHOR, or run git config user.name and user.email", errNoIdentity)
	}
	return Identity{Name: name, Email: email}, nil
}

// SourceDate is the date of the last commit of the repository at dir
// that touched paths: the series' commits carry it, so that the same
// sources give the same series. "" when dir is not a git checkout.
func SourceDate(dir string, paths ...string) string {
	cmd := exec.Command("git", append([]string{"log", "-1", "--format=%cI", "--"}, paths...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// checkKey identifies a check: the mails, the driver they must end in,
// the spec's accepted checkpatch types, the build's configuration.
func checkKey(opts *Options, cover string, files []string, want string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "series-check v1\nversion %d\nauthor %s\nbuild %v\nllvm %s\nallmodconfig %v\nsparse %s\ni386 %v\nwant %s\n", opts.Version, opts.Author, opts.Build, opts.LLVM, opts.AllModConfig, opts.Sparse, opts.I386, want)
	for _, f := range append([]string{cover}, files...) {
		b, err := os.ReadFile(f)
		if err != nil && f != "" {
			return "", err
		}
		fmt.Fprintf(h, "mail %s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	if opts.LLVM != "" {
		fmt.Fprintf(h, "clang here %v\n", kbuild.CheckLLVM(opts.LLVM) == nil)
	}
	for _, fr := range opts.Fragments {
		fmt.Fprintf(h, "fragment %s %d\n", fr.Name, len(fr.Data))
		h.Write(fr.Data)
	}
	for i := -1; i < len(opts.Spec.Patches); i++ {
		acc := opts.Spec.accepted(i)
		for _, t := range slices.Sorted(maps.Keys(acc)) {
			fmt.Fprintf(h, "accept %d %s\n", i, t)
		}
	}
	srcs, err := kbuild.Sources(opts.Inputs.KernelDir)
	if err != nil {
		return "", err
	}
	for _, f := range srcs {
		fmt.Fprintf(h, "src %s %d\n", f.Rel, len(f.Data))
		h.Write(f.Data)
	}
	k, err := os.ReadFile(opts.Inputs.KconfigFile)
	if err != nil {
		return "", err
	}
	h.Write(k)
	return hex.EncodeToString(h.Sum(nil)), nil
}

type checkedRecord struct {
	When    time.Time `json:"when"`
	Results []Result  `json:"results"`
}

func loadChecked(file string) ([]Result, time.Time, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, time.Time{}, err
	}
	var r checkedRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, time.Time{}, err
	}
	return r.Results, r.When, nil
}

func saveChecked(file string, rs []Result) error {
	b, err := json.MarshalIndent(checkedRecord{When: time.Now().UTC(), Results: rs}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// uapiCheck checks the user API the series builds on. Where the base
// generates its uapi header and netlink code from the netlink spec (7.2 on),
// kernel/ must have them byte for byte, so that the series keeps them and
// the driver is written against what the spec says. On an older base,
// every constant of the base's header must be in ours with the same value,
// or wg(8) and every other client would break; what ours adds is listed.
func uapiCheck(ctx context.Context, base, kernelDir string) Result {
	res := Result{Name: "uapi"}
	theirs, generated := kbuild.TreeUAPI(base)
	if theirs == nil {
		res.Passed, res.Detail = true, "the base has no "+upstreamUAPI+" to compare with"
		return res
	}
	if generated {
		var differ []string
		for _, rel := range kbuild.SpecGenerated {
			ours, err := os.ReadFile(filepath.Join(kernelDir, filepath.FromSlash(rel)))
			if err != nil {
				res.Output = err.Error()
				return res
			}
			b, err := os.ReadFile(filepath.Join(base, filepath.FromSlash(kbuild.TreePath(rel))))
			if err != nil || !bytes.Equal(ours, b) {
				differ = append(differ, "kernel/"+rel+" is not the base's "+kbuild.TreePath(rel))
			}
		}
		if len(differ) > 0 {
			res.Output = strings.Join(differ, "\n") + "\nthe base generates them from " + kbuild.NetlinkSpec +
				" (tools/net/ynl/ynl-regen.sh): take the base's files into kernel/, then adapt netlink.c to what changed"
			return res
		}
		res.Passed = true
		res.Detail = "kernel/" + strings.Join(kbuild.SpecGenerated, ", kernel/") + " are the base's, generated from " +
			kbuild.NetlinkSpec + ": the series keeps them"
		return res
	}
	ours, err := os.ReadFile(filepath.Join(kernelDir, "uapi", "wireguard.h"))
	if err != nil {
		res.Output = err.Error()
		return res
	}
	breaks, added, err := kbuild.UAPIDiff(ctx, ours, theirs)
	switch {
	case err != nil:
		res.Output = err.Error()
	case len(breaks) > 0:
		res.Output = "kernel/uapi/wireguard.h breaks the base's " + upstreamUAPI + ":\n" + strings.Join(breaks, "\n")
	default:
		res.Passed = true
		res.Detail = "every constant of the base's " + upstreamUAPI + " has its value in kernel/uapi/wireguard.h"
		if len(added) > 0 {
			res.Detail += "; ours adds " + strings.Join(added, ", ")
		}
	}
	return res
}
