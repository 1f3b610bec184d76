package series

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Recipients are the To and Cc of a mail.
type Recipients struct {
	To, Cc []string
}

// Add merges o into r, keeping order and dropping repeats (an address in
// To is not repeated in Cc).
func (r *Recipients) Add(o Recipients) {
	for _, a := range o.To {
		if !slices.Contains(r.To, a) {
			r.To = append(r.To, a)
		}
	}
	r.Cc = slices.DeleteFunc(r.Cc, func(a string) bool { return slices.Contains(r.To, a) })
	for _, a := range o.Cc {
		if !slices.Contains(r.To, a) && !slices.Contains(r.Cc, a) {
			r.Cc = append(r.Cc, a)
		}
	}
}

// GetMaintainer runs the base tree's scripts/get_maintainer.pl on a patch
// file, from the base tree (so that its MAINTAINERS decides), and splits
// what it prints: maintainers go to To, lists and reviewers to Cc.
func GetMaintainer(ctx context.Context, baseDir, patch string) (Recipients, error) {
	abs, err := filepath.Abs(patch)
	if err != nil {
		return Recipients{}, err
	}
	cmd := exec.CommandContext(ctx, "perl", "scripts/get_maintainer.pl", "--no-git", "--no-git-fallback",
		"--rolestats", "--no-remove-duplicates", abs)
	cmd.Dir = baseDir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return Recipients{}, fmt.Errorf("scripts/get_maintainer.pl %s in %s: %w: %s", filepath.Base(patch), baseDir, err, strings.TrimSpace(errb.String()))
	}
	return ParseGetMaintainer(out.String()), nil
}

// ParseGetMaintainer splits get_maintainer.pl --rolestats output: lines
// such as `Name <a@b> (maintainer:SECTION)` go to To, the others (lists,
// reviewers) to Cc.
func ParseGetMaintainer(out string) Recipients {
	var r Recipients
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		addr, role := l, ""
		if i := strings.LastIndex(l, " ("); i > 0 && strings.HasSuffix(l, ")") {
			addr, role = l[:i], l[i+2:len(l)-1]
		}
		if strings.HasPrefix(role, "maintainer") {
			r.Add(Recipients{To: []string{addr}})
		} else {
			r.Add(Recipients{Cc: []string{addr}})
		}
	}
	return r
}

// AddRecipients adds To and Cc headers at the end of a mail's header.
func AddRecipients(m []byte, r Recipients) []byte {
	end := bytes.Index(m, []byte("\n\n"))
	if end < 0 {
		return m
	}
	var h strings.Builder
	for _, f := range []struct {
		name  string
		addrs []string
	}{{"To", r.To}, {"Cc", r.Cc}} {
		if len(f.addrs) > 0 {
			h.WriteString("\n" + f.name + ": " + strings.Join(f.addrs, ",\n    "))
		}
	}
	return slices.Concat(m[:end], []byte(h.String()), m[end:])
}

// Cover letter placeholders of git format-patch.
const (
	subjectHere = "*** SUBJECT HERE ***"
	blurbHere   = "*** BLURB HERE ***"
)

// FillCover puts the subject and body into a cover letter from git
// format-patch.
func FillCover(m []byte, subject string, body []string) ([]byte, error) {
	if !bytes.Contains(m, []byte(subjectHere)) || !bytes.Contains(m, []byte(blurbHere)) {
		return nil, fmt.Errorf("not a cover letter from git format-patch: no %q or %q", subjectHere, blurbHere)
	}
	m = bytes.Replace(m, []byte(subjectHere), []byte(subject), 1)
	return bytes.Replace(m, []byte(blurbHere), []byte(strings.Join(body, "\n")), 1), nil
}

// Mail is a patch mail as git format-patch writes it.
type Mail struct {
	File    string
	From    string
	Subject string
	To, Cc  string
	// Message is the commit message: the body up to the "---" line.
	Message string
	// Diff is what follows the "---" line.
	Diff string
}

// ParseMail reads a format-patch file.
func ParseMail(file string, data []byte) (*Mail, error) {
	first, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok || !bytes.HasPrefix(first, []byte("From ")) {
		return nil, fmt.Errorf("%s: not a git format-patch mail (no mbox \"From \" line)", file)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(rest))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(msg.Body); err != nil {
		return nil, err
	}
	m := &Mail{File: file, From: msg.Header.Get("From"), Subject: msg.Header.Get("Subject"),
		To: msg.Header.Get("To"), Cc: msg.Header.Get("Cc")}
	b := body.String()
	if i := strings.Index(b, "\n---\n"); i >= 0 {
		m.Message, m.Diff = b[:i+1], b[i+5:]
	} else if strings.HasPrefix(b, "---\n") {
		m.Diff = b[4:]
	} else {
		m.Message = b
	}
	return m, nil
}

var subjectRe = regexp.MustCompile(`^\[PATCH net-next v(\d+) (\d+)/(\d+)\] (.*)$`)

// CheckMail checks a mail's form: the subject's tag and numbering (i of n
// in version v, i == 0 for the cover letter), the sender, the
// Signed-off-by, the recipients and, for the cover letter, that it was
// filled in. It returns the problems found.
func CheckMail(m *Mail, v, i, n int, id Identity, changelog bool) []string {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	sm := subjectRe.FindStringSubmatch(m.Subject)
	width := len(strconv.Itoa(n))
	switch {
	case sm == nil:
		bad("subject %q: want \"[PATCH net-next v%d %0*d/%d] ...\"", m.Subject, v, width, i, n)
	default:
		if sm[1] != strconv.Itoa(v) {
			bad("subject %q: version v%s, want v%d", m.Subject, sm[1], v)
		}
		if sm[2] != fmt.Sprintf("%0*d", width, i) || sm[3] != strconv.Itoa(n) {
			bad("subject %q: numbered %s/%s, want %0*d/%d", m.Subject, sm[2], sm[3], width, i, n)
		}
		if i > 0 && !strings.HasPrefix(sm[4], SubjectPrefix) {
			bad("subject %q: the summary must start with %q", m.Subject, SubjectPrefix)
		}
		if strings.Contains(sm[4], subjectHere) {
			bad("the cover letter's subject was not filled in")
		}
	}
	if a, err := mail.ParseAddress(m.From); err != nil || a.Address != id.Email {
		bad("From: %q, want %s", m.From, id)
	}
	if strings.TrimSpace(m.To) == "" {
		bad("no To: (get_maintainer.pl found nobody?)")
	}
	if i == 0 {
		if strings.Contains(m.Message, blurbHere) {
			bad("the cover letter's body was not filled in")
		}
		if strings.Contains(m.Message, noResults) {
			bad("the cover letter has no test results: run `wgbuild vmtest --kernel <base> --in-tree --json FILE` and pass --tested FILE (make patches does both)")
		}
		if changelog && !strings.Contains(m.Message, fmt.Sprintf("Changes in v%d:", v)) {
			bad("the cover letter of v%d has no \"Changes in v%d:\" section", v, v)
		}
		return probs
	}
	sob := "Signed-off-by: " + id.String()
	var text []string
	hasSOB := false
	sc := bufio.NewScanner(strings.NewReader(m.Message))
	for sc.Scan() {
		l := sc.Text()
		if l == sob {
			hasSOB = true
		}
		if strings.TrimSpace(l) != "" && !strings.Contains(l, "-by: ") {
			text = append(text, l)
		}
	}
	if !hasSOB {
		bad("no %q line", sob)
	}
	if len(text) == 0 {
		bad("no commit message: say what the patch does and why")
	}
	if strings.TrimSpace(m.Diff) == "" {
		bad("no diff")
	}
	return probs
}

var diffGitRe = regexp.MustCompile(`(?m)^diff --git a/(\S+) b/(\S+)$`)

// DiffFiles lists the files a patch's diff touches.
func DiffFiles(diff string) []string {
	var files []string
	for _, m := range diffGitRe.FindAllStringSubmatch(diff, -1) {
		if !slices.Contains(files, m[2]) {
			files = append(files, m[2])
		}
	}
	return files
}
