// Package kconfig reads kernel configuration fragments and .config files
// and checks that what a fragment asked for survived `make olddefconfig`:
// an option whose dependencies are not met is silently dropped by Kconfig,
// and a guest kernel without, say, CONFIG_VETH fails much later and much
// less clearly.
package kconfig

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Option is one CONFIG_ assignment requested by a fragment.
type Option struct {
	Symbol string // without the CONFIG_ prefix
	Value  string // "y", "m", "n" (for "# CONFIG_X is not set"), a number or a quoted string
	Source string // file:line that asked for it
}

func (o Option) String() string { return "CONFIG_" + o.Symbol + "=" + o.Value }

var (
	assignRe = regexp.MustCompile(`^CONFIG_([A-Za-z0-9_]+)=(.*)$`)
	notSetRe = regexp.MustCompile(`^# CONFIG_([A-Za-z0-9_]+) is not set$`)
)

// ParseFragment reads a fragment. Blank lines and comments are skipped;
// any other line that is not an assignment is an error naming it.
func ParseFragment(name string, data []byte) ([]Option, error) {
	var opts []Option
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		src := fmt.Sprintf("%s:%d", name, n)
		if m := notSetRe.FindStringSubmatch(line); m != nil {
			opts = append(opts, Option{Symbol: m[1], Value: "n", Source: src})
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := assignRe.FindStringSubmatch(line)
		if m == nil || m[2] == "" {
			return nil, fmt.Errorf("%s: %q is not a Kconfig assignment (want CONFIG_FOO=y, =m, =n, a number or a \"string\", or \"# CONFIG_FOO is not set\")", src, line)
		}
		opts = append(opts, Option{Symbol: m[1], Value: m[2], Source: src})
	}
	return opts, sc.Err()
}

// ParseConfig reads a .config into symbol → value; options that are "not
// set" are absent.
func ParseConfig(data []byte) map[string]string {
	cfg := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if m := assignRe.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			cfg[m[1]] = m[2]
		}
	}
	return cfg
}

// Effective returns the requested options with later fragments overriding
// earlier ones, in the order first requested.
func Effective(opts []Option) []Option {
	idx := map[string]int{}
	var out []Option
	for _, o := range opts {
		if i, ok := idx[o.Symbol]; ok {
			out[i] = o
			continue
		}
		idx[o.Symbol] = len(out)
		out = append(out, o)
	}
	return out
}

var symbolRe = regexp.MustCompile(`(?m)^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$`)

// Symbols returns every symbol the Kconfig files of a source tree define.
func Symbols(tree string) (map[string]bool, error) {
	syms := map[string]bool{}
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "Documentation", "tools", "samples":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), "Kconfig") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range symbolRe.FindAllSubmatch(b, -1) {
			syms[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the Kconfig files of %s: %w", tree, err)
	}
	return syms, nil
}

// Result is what Check found.
type Result struct {
	// Dropped are requested options that the final .config does not have
	// as asked: a dependency is missing or a choice went another way.
	Dropped []Mismatch
	// Unknown are requested options that this kernel does not define at
	// all (an option of a newer or older kernel); they are ignored.
	Unknown []Option
}

// Mismatch is a requested option and what the .config has instead.
type Mismatch struct {
	Option
	Got string // "n" when not set
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s (from %s) ended up =%s", m.Option, m.Source, m.Got)
}

// Check compares the effective requested options with the final config.
func Check(requested []Option, final map[string]string, known map[string]bool) Result {
	var r Result
	for _, o := range Effective(requested) {
		if !known[o.Symbol] {
			r.Unknown = append(r.Unknown, o)
			continue
		}
		got, ok := final[o.Symbol]
		if !ok {
			got = "n"
		}
		if got != o.Value {
			r.Dropped = append(r.Dropped, Mismatch{Option: o, Got: got})
		}
	}
	sort.Slice(r.Unknown, func(i, j int) bool { return r.Unknown[i].Symbol < r.Unknown[j].Symbol })
	return r
}

// Err returns an error naming every dropped option, or nil.
func (r Result) Err() error {
	if len(r.Dropped) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d requested kernel option(s) did not survive olddefconfig (a dependency is missing, or the option cannot be set that way):", len(r.Dropped))
	for _, m := range r.Dropped {
		b.WriteString("\n  " + m.String())
	}
	b.WriteString("\nadd what they depend on to your --config-fragment, or drop them (see the option's \"depends on\" in `make menuconfig`, key /)")
	return fmt.Errorf("%s", b.String())
}

// UnknownList names the unknown options for a progress line.
func (r Result) UnknownList() string {
	var s []string
	for _, o := range r.Unknown {
		s = append(s, "CONFIG_"+o.Symbol)
	}
	return strings.Join(s, ", ")
}
