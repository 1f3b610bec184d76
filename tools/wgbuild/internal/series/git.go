package series

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Identity is who signs the patches off: "Name <email>".
type Identity struct {
	Name, Email string
}

func (id Identity) String() string { return id.Name + " <" + id.Email + ">" }

var identityRe = regexp.MustCompile(`^\s*([^<>]*[^<>\s])\s*<([^<>@\s]+@[^<>\s]+)>\s*$`)

// ParseIdentity parses "Name <email>".
func ParseIdentity(s string) (Identity, error) {
	m := identityRe.FindStringSubmatch(s)
	if m == nil {
		return Identity{}, fmt.Errorf("identity %q: want \"Full Name <user@example.org>\"", s)
	}
	return Identity{Name: m[1], Email: m[2]}, nil
}

// Repo runs git in a repository with a fixed environment: no user or
// system configuration (so that nobody's format.* or am.* settings change
// the series), no automatic gc, and the given identity and date for
// every commit. It does not trust ctime: the scratch tree's files are
// hard links into the pristine tree, and every new `cp -al` of that tree
// (an in-tree build's workspace, say) changes the ctime of all of them;
// trusted, it would make `git checkout -f` rewrite all 80,000 files, and
// the next kernel build recompile everything.
type Repo struct {
	Dir  string
	ID   Identity
	Date string // RFC 3339; "" means now
	// IndexFile, when set, is the index git uses instead of .git/index.
	IndexFile string
}

// Git runs git with args and returns its standard output; an error
// carries its standard error.
func (r *Repo) Git(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{
		"-c", "gc.auto=0", "-c", "core.autocrlf=false", "-c", "core.quotepath=false", "-c", "core.trustctime=false",
		"-c", "advice.detachedHead=false", "-c", "init.defaultBranch=master",
	}, args...)...)
	cmd.Dir = r.Dir
	env := append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "LC_ALL=C", "TZ=UTC",
		"GIT_AUTHOR_NAME="+r.ID.Name, "GIT_AUTHOR_EMAIL="+r.ID.Email,
		"GIT_COMMITTER_NAME="+r.ID.Name, "GIT_COMMITTER_EMAIL="+r.ID.Email)
	if r.Date != "" {
		env = append(env, "GIT_AUTHOR_DATE="+r.Date, "GIT_COMMITTER_DATE="+r.Date)
	}
	if r.IndexFile != "" {
		env = append(env, "GIT_INDEX_FILE="+r.IndexFile)
	}
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return out.String(), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return out.String(), nil
}

func (r *Repo) rev(ctx context.Context, rev string) (string, error) {
	out, err := r.Git(ctx, nil, "rev-parse", "--verify", "-q", rev)
	return strings.TrimSpace(out), err
}

// HasRev reports whether rev names a commit.
func (r *Repo) HasRev(ctx context.Context, rev string) bool {
	_, err := r.rev(ctx, rev+"^{commit}")
	return err == nil
}

// BaseTag names the base commit in a scratch tree.
const BaseTag = "base"

// InitScratch makes dir a git repository whose one commit, tagged
// BaseTag, is the tree already in dir, committed as is (ignored files too:
// everything in a release tarball is part of the tree). message is the
// commit message.
func InitScratch(ctx context.Context, dir, message string) error {
	r := &Repo{Dir: dir, ID: Identity{Name: "wgbuild", Email: "wgbuild@localhost"}, Date: "2000-01-01T00:00:00Z"}
	if _, err := r.Git(ctx, nil, "init", "-q"); err != nil {
		return err
	}
	if _, err := r.Git(ctx, nil, "add", "-A", "-f", "."); err != nil {
		return err
	}
	if _, err := r.Git(ctx, nil, "commit", "-q", "--no-verify", "-m", message); err != nil {
		return err
	}
	_, err := r.Git(ctx, nil, "tag", BaseTag)
	return err
}

// Commit is a generated commit.
type Commit struct {
	Hash, Tree string
}

const zeroOID = "0000000000000000000000000000000000000000"

// CommitSteps makes one commit per step on top of BaseTag, without
// touching the work tree (a private index and git's plumbing), and points
// branch at the last. messages[i] is step i's commit message.
func CommitSteps(ctx context.Context, r *Repo, steps []Step, messages []string, branch string) ([]Commit, error) {
	if len(steps) != len(messages) {
		return nil, errors.New("series: one message per step")
	}
	idx, err := os.CreateTemp("", "wgbuild-series-index-*")
	if err != nil {
		return nil, err
	}
	idx.Close()
	os.Remove(idx.Name()) // git wants to create it
	defer os.Remove(idx.Name())
	ri := *r
	ri.IndexFile = idx.Name()
	if _, err := ri.Git(ctx, nil, "read-tree", BaseTag); err != nil {
		return nil, err
	}
	parent, err := ri.rev(ctx, BaseTag+"^{commit}")
	if err != nil {
		return nil, fmt.Errorf("scratch tree %s has no %s commit: %w", r.Dir, BaseTag, err)
	}
	var out []Commit
	for i, st := range steps {
		var info bytes.Buffer
		for _, c := range st.Changes {
			if c.Delete {
				fmt.Fprintf(&info, "0 %s\t%s\n", zeroOID, c.Path)
				continue
			}
			blob, err := ri.Git(ctx, c.Data, "hash-object", "-w", "--stdin")
			if err != nil {
				return nil, err
			}
			mode := "100644"
			if c.Exec {
				mode = "100755"
			}
			fmt.Fprintf(&info, "%s %s\t%s\n", mode, strings.TrimSpace(blob), c.Path)
		}
		if _, err := ri.Git(ctx, info.Bytes(), "update-index", "--index-info"); err != nil {
			return nil, err
		}
		tree, err := ri.Git(ctx, nil, "write-tree")
		if err != nil {
			return nil, err
		}
		tree = strings.TrimSpace(tree)
		commit, err := ri.Git(ctx, []byte(messages[i]), "commit-tree", tree, "-p", parent, "-F", "-")
		if err != nil {
			return nil, err
		}
		parent = strings.TrimSpace(commit)
		out = append(out, Commit{Hash: parent, Tree: tree})
	}
	if _, err := r.Git(ctx, nil, "update-ref", "refs/heads/"+branch, parent); err != nil {
		return nil, err
	}
	return out, nil
}

// Message is a commit message in the kernel's form: subject, body,
// Signed-off-by.
func Message(p *Patch, id Identity) string {
	var b strings.Builder
	b.WriteString(p.Subject + "\n\n")
	for _, l := range p.Body {
		b.WriteString(l + "\n")
	}
	b.WriteString("\nSigned-off-by: " + id.String() + "\n")
	return b.String()
}

// FormatPatch writes the mails of base..branch into dir with git
// format-patch: a cover letter, subjects "[PATCH net-next vN i/n]". With
// prev (a range such as "base..wireguard-v1") the cover letter ends with
// the range-diff against it.
func FormatPatch(ctx context.Context, r *Repo, branch string, version int, prefix, prev, dir string) ([]string, error) {
	args := []string{"format-patch", "--cover-letter", "--subject-prefix=" + prefix,
		fmt.Sprintf("--reroll-count=%d", version), "-o", dir}
	if prev != "" {
		args = append(args, "--range-diff="+prev)
	}
	args = append(args, BaseTag+".."+branch)
	out, err := r.Git(ctx, nil, args...)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			files = append(files, filepath.Join(dir, filepath.Base(l)))
		}
	}
	return files, nil
}
