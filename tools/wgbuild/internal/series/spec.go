// Package series cuts the driver in kernel/ into a net-next patch series:
// it reads the description of the cut (patches/series), computes what
// each patch changes in a kernel tree, makes the commits in a scratch git
// tree of the base, writes them out with git format-patch (cover letter,
// To/Cc from the base's get_maintainer.pl), and checks each patch the way
// a netdev maintainer would: git am, a W=1 build after each patch,
// checkpatch --strict, kernel-doc, and the form of the mails.
package series

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Special entries of a patch's "files:" line, for what is not a file of
// kernel/.
const (
	// RemoveUpstream removes the base tree's own WireGuard driver: its
	// directory, uapi header, Kconfig entries and Makefile line.
	RemoveUpstream = "@remove-upstream"
	// KconfigPrefix adds an entry of the top-level Kconfig to
	// drivers/net/Kconfig: "@kconfig:WIREGUARD".
	KconfigPrefix = "@kconfig:"
	// NetMakefile adds the line of drivers/net/Makefile that descends
	// into drivers/net/wireguard.
	NetMakefile = "@net-makefile"
	// Maintainers puts the spec's MAINTAINERS entry into MAINTAINERS.
	Maintainers = "@maintainers"
)

// SubjectPrefix starts every subject after the [PATCH ...] tag.
const SubjectPrefix = "wireguard: "

// MaxPatches is the most patches a series may have.
const MaxPatches = 15

// MaxBodyWidth is the widest line a commit message may have.
const MaxBodyWidth = 72

// MaintainerPlaceholder in the MAINTAINERS entry is replaced by the
// maintainer's identity.
const MaintainerPlaceholder = "@MAINTAINER@"

// Spec is the description of the series: patches/series.
type Spec struct {
	// File is where the spec was read from, for messages.
	File string
	// Cover is the cover letter's subject and body.
	Cover Text
	// Changes holds the changelog of each version (2, 3...).
	Changes map[int][]string
	// Accept lists the checkpatch message types that may remain in every
	// patch, each with the explanation the cover letter gives.
	Accept []Accept
	// MaintainersEntry is the driver's MAINTAINERS entry, one line each,
	// with MaintainerPlaceholder for the maintainer.
	MaintainersEntry []string
	// Patches in order.
	Patches []*Patch
}

// Text is a subject and a body.
type Text struct {
	Subject string
	Body    []string
	Line    int // where it starts in the spec
}

// Accept is a checkpatch message type that may remain, and why.
type Accept struct {
	Type string
	Why  string
}

// Patch is one patch of the series.
type Patch struct {
	Text
	// Files are paths relative to kernel/, or special entries (@...).
	Files []string
	// Lines are lines of files that earlier patches add without them.
	Lines []HeldLine
	// Accept lists checkpatch types that may remain in this patch.
	Accept []Accept
}

// HeldLine is one line of a kernel/ file that a later patch adds.
type HeldLine struct {
	File string
	Line string
}

// ReadSpec reads and parses the spec file.
func ReadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the series description: %w", err)
	}
	return ParseSpec(path, b)
}

var (
	changesRe = regexp.MustCompile(`^changes v(\d+):$`)
	acceptRe  = regexp.MustCompile(`^accept ([A-Z0-9_]+): (.+)$`)
)

// ParseSpec parses a spec. The format is line based:
//
//	# a comment (in the first column)
//	cover: <subject>            the cover letter; its body follows
//	changes v<N>:               the changelog of version N follows
//	accept <TYPE>: <why>        a checkpatch type that may remain (before
//	                            the first patch: in every patch)
//	maintainers:                the MAINTAINERS entry follows
//	patch: <subject>            a patch; then its keys and its message:
//	files: <file> ...           kernel/ files and special entries
//	lines: <file>: <line>       a line of <file> that this patch adds
//	accept <TYPE>: <why>        a checkpatch type that may remain here
//
// A body (the message, the changelog, the entry) is the lines indented by
// one tab that follow, the tab removed; an empty line inside it is a
// paragraph break.
func ParseSpec(name string, data []byte) (*Spec, error) {
	s := &Spec{File: name, Changes: map[int][]string{}}
	var body *[]string // where indented lines go
	var cur *Patch
	changes := map[int]*[]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	errf := func(format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, args...))
	}
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \r")
		switch {
		case strings.HasPrefix(line, "#"):
			continue
		case line == "":
			if body != nil && len(*body) > 0 {
				*body = append(*body, "")
			}
			continue
		case strings.HasPrefix(line, "\t"):
			if body == nil {
				return nil, errf("indented line outside a body: bodies follow cover:, patch:, changes vN: or maintainers:")
			}
			*body = append(*body, strings.TrimPrefix(line, "\t"))
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		val = strings.TrimSpace(val)
		switch {
		case !ok:
			return nil, errf("want \"key: value\", got %q", line)
		case key == "cover":
			if s.Cover.Subject != "" {
				return nil, errf("a second cover:")
			}
			s.Cover = Text{Subject: val, Line: n}
			body, cur = &s.Cover.Body, nil
		case changesRe.MatchString(line):
			v, _ := strconv.Atoi(changesRe.FindStringSubmatch(line)[1])
			if _, dup := changes[v]; dup || v < 2 {
				return nil, errf("changes v%d: given twice, or for a version below 2", v)
			}
			changes[v] = new([]string)
			body, cur = changes[v], nil
		case key == "maintainers":
			body, cur = &s.MaintainersEntry, nil
		case key == "patch":
			cur = &Patch{Text: Text{Subject: val, Line: n}}
			s.Patches = append(s.Patches, cur)
			body = &cur.Body
		case acceptRe.MatchString(line):
			m := acceptRe.FindStringSubmatch(line)
			a := Accept{Type: m[1], Why: m[2]}
			if cur == nil {
				s.Accept = append(s.Accept, a)
			} else {
				cur.Accept = append(cur.Accept, a)
			}
		case cur == nil:
			return nil, errf("%q before the first patch:", key)
		case key == "files":
			cur.Files = append(cur.Files, strings.Fields(val)...)
		case key == "lines":
			file, l, ok := strings.Cut(val, ": ")
			if !ok || l == "" {
				return nil, errf("want \"lines: <file>: <the line>\"")
			}
			cur.Lines = append(cur.Lines, HeldLine{File: file, Line: l})
		default:
			return nil, errf("unknown key %q (want files, lines or accept)", key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for v, l := range changes {
		s.Changes[v] = trimBlank(*l)
	}
	s.Cover.Body = trimBlank(s.Cover.Body)
	s.MaintainersEntry = trimBlank(s.MaintainersEntry)
	for _, p := range s.Patches {
		p.Body = trimBlank(p.Body)
	}
	return s, s.validate()
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// validate checks what does not need kernel/: the form of subjects and
// messages, the number of patches.
func (s *Spec) validate() error {
	var errs []string
	add := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s:%d: %s", s.File, line, fmt.Sprintf(format, args...)))
	}
	if s.Cover.Subject == "" {
		add(1, "no cover: (the cover letter's subject and body)")
	} else if len(s.Cover.Body) == 0 {
		add(s.Cover.Line, "the cover letter has no body")
	}
	if len(s.Patches) == 0 {
		add(1, "no patch:")
	}
	if len(s.Patches) > MaxPatches {
		add(s.Patches[MaxPatches].Line, "%d patches: a series has at most %d", len(s.Patches), MaxPatches)
	}
	texts := []Text{s.Cover}
	for _, p := range s.Patches {
		texts = append(texts, p.Text)
	}
	for i, t := range texts {
		if i > 0 && !strings.HasPrefix(t.Subject, SubjectPrefix) {
			add(t.Line, "subject %q: start it with %q", t.Subject, SubjectPrefix)
		}
		if i > 0 {
			rest := strings.TrimPrefix(t.Subject, SubjectPrefix)
			if rest == "" || strings.HasSuffix(rest, ".") || (rest[0] >= 'A' && rest[0] <= 'Z') {
				add(t.Line, "subject %q: kernel style is \"wireguard: <imperative, lower case, no final period>\"", t.Subject)
			}
			if len(t.Body) == 0 {
				add(t.Line, "patch %q has no message: say what it adds and why", t.Subject)
			}
		}
		for j, l := range t.Body {
			if w := len([]rune(l)); w > MaxBodyWidth {
				add(t.Line+1+j, "message line of %d characters: wrap at %d", w, MaxBodyWidth)
			}
		}
	}
	for i, p := range s.Patches {
		if len(p.Files) == 0 && len(p.Lines) == 0 {
			add(p.Line, "patch %d (%s) changes nothing: give files: or lines:", i+1, p.Subject)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the series description is not valid:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// Changelog returns the changelog for version v: the changes of v, v-1,
// ... 2, newest first, as the cover letter shows them. It is an error for
// v > 1 to have no entry of its own.
func (s *Spec) Changelog(v int) ([]string, error) {
	if v <= 1 {
		return nil, nil
	}
	if _, ok := s.Changes[v]; !ok || len(s.Changes[v]) == 0 {
		return nil, fmt.Errorf("%s: no \"changes v%d:\" block: say what changed since v%d before sending v%d", s.File, v, v-1, v)
	}
	var vs []int
	for k := range s.Changes {
		if k <= v {
			vs = append(vs, k)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(vs)))
	var out []string
	for _, k := range vs {
		out = append(out, fmt.Sprintf("Changes in v%d:", k))
		out = append(out, s.Changes[k]...)
		out = append(out, "")
	}
	return trimBlank(out), nil
}

// accepted returns the checkpatch types that may remain in patch i (0
// based), with their explanations: the spec's and the patch's own.
func (s *Spec) accepted(i int) map[string]string {
	m := map[string]string{}
	for _, a := range s.Accept {
		m[a.Type] = a.Why
	}
	if i >= 0 && i < len(s.Patches) {
		for _, a := range s.Patches[i].Accept {
			m[a.Type] = a.Why
		}
	}
	return m
}
