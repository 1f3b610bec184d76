package series

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// CheckpatchArgs are the flags the series is held to.
var CheckpatchArgs = []string{"--strict", "--max-line-length=80", "--show-types", "--no-summary"}

// CPMessage is one message of checkpatch.pl.
type CPMessage struct {
	Level string // ERROR, WARNING, CHECK
	Type  string // FILE_PATH_CHANGES...
	Text  string // the message and the lines it quotes
}

func (m CPMessage) String() string { return m.Level + ":" + m.Type + ": " + m.Text }

var cpRe = regexp.MustCompile(`^(ERROR|WARNING|CHECK):([A-Z0-9_]+): (.*)$`)

// Checkpatch runs the tree's scripts/checkpatch.pl on a patch file, from
// the tree's root, and returns its messages.
func Checkpatch(ctx context.Context, treeDir, patch string) ([]CPMessage, error) {
	abs, err := filepath.Abs(patch)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "perl", append(append([]string{"scripts/checkpatch.pl"}, CheckpatchArgs...), abs)...)
	cmd.Dir = treeDir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, fmt.Errorf("running checkpatch.pl: %w", err)
	}
	msgs := ParseCheckpatch(out.String())
	if err != nil && len(msgs) == 0 {
		return nil, fmt.Errorf("checkpatch.pl %s failed without a message: %s", filepath.Base(patch), strings.TrimSpace(out.String()))
	}
	return msgs, nil
}

// ParseCheckpatch splits checkpatch.pl --show-types output into messages:
// each starts with LEVEL:TYPE: and runs to the next blank line.
func ParseCheckpatch(out string) []CPMessage {
	var msgs []CPMessage
	var cur *CPMessage
	for _, l := range strings.Split(out, "\n") {
		if m := cpRe.FindStringSubmatch(l); m != nil {
			msgs = append(msgs, CPMessage{Level: m[1], Type: m[2], Text: m[3]})
			cur = &msgs[len(msgs)-1]
			continue
		}
		if cur == nil {
			continue
		}
		if strings.TrimSpace(l) == "" {
			cur = nil
			continue
		}
		cur.Text += "\n" + l
	}
	return msgs
}

// splitAccepted divides messages into those whose type is accepted and
// the rest.
func splitAccepted(msgs []CPMessage, accepted map[string]string) (ok, rest []CPMessage) {
	for _, m := range msgs {
		if _, yes := accepted[m.Type]; yes {
			ok = append(ok, m)
		} else {
			rest = append(rest, m)
		}
	}
	return ok, rest
}

// checkpatchNotes is the cover letter's section on the checkpatch
// messages that remain: for each accepted type that occurs, the patches
// it occurs in and why it stays. msgs[i] are patch i's messages.
func checkpatchNotes(s *Spec, msgs [][]CPMessage, n int) []string {
	type note struct {
		why     string
		patches []int
	}
	notes := map[string]*note{}
	var order []string
	for i, ms := range msgs {
		acc := s.accepted(i)
		for _, m := range ms {
			why, ok := acc[m.Type]
			if !ok {
				continue
			}
			nt := notes[m.Type]
			if nt == nil {
				nt = &note{why: why}
				notes[m.Type] = nt
				order = append(order, m.Type)
			}
			if !slices.Contains(nt.patches, i+1) {
				nt.patches = append(nt.patches, i+1)
			}
		}
	}
	if len(order) == 0 {
		return []string{fmt.Sprintf("checkpatch.pl %s is clean on every patch.", strings.Join(CheckpatchArgs[:2], " "))}
	}
	out := wrap(fmt.Sprintf("checkpatch.pl %s leaves these messages, on purpose:", strings.Join(CheckpatchArgs[:2], " ")), MaxBodyWidth, "")
	for _, t := range order {
		nt := notes[t]
		out = append(out, "")
		out = append(out, wrap(fmt.Sprintf("- %s (%s): %s", t, patchList(nt.patches, n), nt.why), MaxBodyWidth, "  ")...)
	}
	return out
}

// patchList says "patch 3" or "patches 2-5, 7".
func patchList(ps []int, n int) string {
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ps[i], ps[j]))
		} else {
			parts = append(parts, fmt.Sprint(ps[i]))
		}
		i = j + 1
	}
	if len(ps) == 1 {
		return "patch " + parts[0]
	}
	if len(ps) == n {
		return "every patch"
	}
	return "patches " + strings.Join(parts, ", ")
}

// wrap wraps text at width, continuation lines indented by indent.
func wrap(text string, width int, indent string) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) > width:
			lines = append(lines, line)
			line = indent + w
		default:
			line += " " + w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
