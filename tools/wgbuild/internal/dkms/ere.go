package dkms

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Mode says how a translated pattern is applied.
type Mode int

const (
	// WholeFile: grep -E -z, the whole file as one record, as
	// regexp.Match sees a file's bytes. "." is refused: Go's does not
	// match a newline, grep -z's does, and a newline cannot be written
	// inside a grep pattern.
	WholeFile Mode = iota
	// PerLine: grep -E or sed -E on each line, as a Go pattern matched
	// against a line without its newline. "." is allowed.
	PerLine
)

// spaceSet is Go's \s: [\t\n\f\r ]. POSIX [[:space:]] also has \v, which
// kernel sources do not contain.
var spaceSet = []rune{'\t', '\n', '\f', '\r', ' '}

// ToERE translates a Go regular expression into a POSIX extended regular
// expression with the GNU extensions \b and \B, for grep -E and sed -E
// under LC_ALL=C, such that both match the same ASCII texts. Constructs
// without an exact counterpart (multi-line mode, "." in WholeFile mode,
// control characters other than a tab and Go's \s class, non-ASCII) are
// errors,
// so a probe that the DKMS build cannot run the same way fails the Go
// tests rather than a user's build.
func ToERE(re *regexp.Regexp, mode Mode) (string, error) {
	t, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return "", err
	}
	s, _, err := ere(t, mode)
	if err != nil {
		return "", fmt.Errorf("pattern %q: %w", re.String(), err)
	}
	return s, nil
}

// ere returns the translation of t and whether it is a single atom (so a
// repetition operator can follow it without parentheses).
func ere(t *syntax.Regexp, mode Mode) (string, bool, error) {
	switch t.Op {
	case syntax.OpEmptyMatch:
		return "()", true, nil
	case syntax.OpLiteral:
		var b strings.Builder
		for _, r := range t.Rune {
			s, err := literal(r, t.Flags&syntax.FoldCase != 0)
			if err != nil {
				return "", false, err
			}
			b.WriteString(s)
		}
		return b.String(), len(t.Rune) == 1, nil
	case syntax.OpCharClass:
		s, err := class(t.Rune)
		return s, true, err
	case syntax.OpAnyCharNotNL:
		if mode == WholeFile {
			return "", false, fmt.Errorf(`"." cannot be probed over a whole header with grep: write a class such as [^;] instead`)
		}
		return ".", true, nil
	case syntax.OpAnyChar:
		if mode == PerLine {
			return ".", true, nil
		}
		return "", false, fmt.Errorf(`(?s). cannot be probed with grep: write a class instead`)
	case syntax.OpBeginText:
		return "^", true, nil
	case syntax.OpEndText:
		return "$", true, nil
	case syntax.OpBeginLine, syntax.OpEndLine:
		if mode == PerLine {
			return map[syntax.Op]string{syntax.OpBeginLine: "^", syntax.OpEndLine: "$"}[t.Op], true, nil
		}
		return "", false, fmt.Errorf("multi-line anchors ((?m)^, (?m)$) have no grep -z counterpart")
	case syntax.OpWordBoundary:
		return `\b`, true, nil
	case syntax.OpNoWordBoundary:
		return `\B`, true, nil
	case syntax.OpCapture:
		s, _, err := ere(t.Sub[0], mode)
		return "(" + s + ")", true, err
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		s, atom, err := ere(t.Sub[0], mode)
		if err != nil {
			return "", false, err
		}
		if !atom {
			s = "(" + s + ")"
		}
		// Greediness does not change whether a pattern matches.
		switch t.Op {
		case syntax.OpStar:
			return s + "*", false, nil
		case syntax.OpPlus:
			return s + "+", false, nil
		case syntax.OpQuest:
			return s + "?", false, nil
		}
		lim := strconv.Itoa(t.Min)
		switch {
		case t.Max == -1:
			lim += ","
		case t.Max != t.Min:
			lim += "," + strconv.Itoa(t.Max)
		}
		return s + "{" + lim + "}", false, nil
	case syntax.OpConcat:
		var b strings.Builder
		for _, sub := range t.Sub {
			s, _, err := ere(sub, mode)
			if err != nil {
				return "", false, err
			}
			if sub.Op == syntax.OpAlternate {
				s = "(" + s + ")"
			}
			b.WriteString(s)
		}
		return b.String(), false, nil
	case syntax.OpAlternate:
		var parts []string
		for _, sub := range t.Sub {
			s, _, err := ere(sub, mode)
			if err != nil {
				return "", false, err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, "|"), false, nil
	}
	return "", false, fmt.Errorf("%v is not supported", t.Op)
}

// writable reports whether r can be written as itself in a pattern that
// the scripts pass to grep and sed in single quotes: printable ASCII and a
// tab (a newline would split a grep pattern in two).
func writable(r rune) bool {
	return r == '\t' || (r >= ' ' && r < 0x7f)
}

func literal(r rune, fold bool) (string, error) {
	if !writable(r) {
		return "", fmt.Errorf("character %q: only printable ASCII and tabs can be written in a grep pattern", r)
	}
	if fold && unicode.IsLetter(r) {
		return "[" + string(unicode.ToUpper(r)) + string(unicode.ToLower(r)) + "]", nil
	}
	if strings.ContainsRune(`.[]()*+?{}|^$\`, r) {
		return `\` + string(r), nil
	}
	return string(r), nil
}

// class translates a character class given as Go's sorted range pairs.
func class(ranges []rune) (string, error) {
	negated := false
	if n := len(ranges); n > 0 && ranges[n-1] == unicode.MaxRune {
		negated = true
		ranges = complement(ranges)
	}
	set := expand(ranges)
	if set == nil {
		return "", fmt.Errorf("character class with non-ASCII characters")
	}
	var b strings.Builder
	b.WriteString("[")
	if negated {
		b.WriteString("^")
	}
	if hasAll(set, spaceSet) {
		b.WriteString("[:space:]")
		for _, r := range spaceSet {
			delete(set, r)
		}
	}
	// ']' first, '-' last, '^' not first: the only bracket specials.
	var chars []rune
	for r := range set {
		if !writable(r) {
			return "", fmt.Errorf("control character %q in a class: only a tab and Go's \\s class can be written in a grep pattern", r)
		}
		chars = append(chars, r)
	}
	slices.Sort(chars)
	var body strings.Builder
	var dash, bracket, caret, open bool
	for i := 0; i < len(chars); {
		r := chars[i]
		switch r {
		case '-':
			dash = true
		case ']':
			bracket = true
		case '^':
			caret = true
		case '[':
			open = true
		}
		if special(r) {
			i++
			continue
		}
		j := i
		for j+1 < len(chars) && chars[j+1] == chars[j]+1 && !special(chars[j+1]) {
			j++
		}
		if j-i >= 2 {
			body.WriteString(string(r) + "-" + string(chars[j]))
		} else {
			for k := i; k <= j; k++ {
				body.WriteRune(chars[k])
			}
		}
		i = j + 1
	}
	// ']' is literal first, '-' first or last, '^' anywhere but first;
	// '[' goes where it cannot start "[:", "[." or "[=".
	if bracket {
		b.WriteString("]")
	}
	b.WriteString(body.String())
	if open {
		b.WriteString("[")
	}
	empty := b.Len() == 1 || (negated && b.Len() == 2)
	switch {
	case caret && empty && dash:
		b.WriteString("-^")
		dash = false
	case caret && empty && !negated:
		return `\^`, nil
	case caret:
		b.WriteString("^")
	}
	if dash {
		b.WriteString("-")
	}
	if b.Len() == 1 || (negated && b.Len() == 2) {
		return "", fmt.Errorf("an empty character class")
	}
	b.WriteString("]")
	return b.String(), nil
}

// special reports characters that must not sit inside a range in a
// bracket expression, so they can be placed where they are literal.
func special(r rune) bool { return r == '-' || r == ']' || r == '^' || r == '[' }

// complement returns the ranges Go's class [^...] excludes, limited to
// ASCII; non-ASCII characters do not occur in the texts probed.
func complement(ranges []rune) []rune {
	var out []rune
	next := rune(0)
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		if lo > next {
			out = append(out, next, lo-1)
		}
		next = hi + 1
	}
	if next <= unicode.MaxRune {
		out = append(out, next, unicode.MaxRune)
	}
	// Keep only ASCII.
	var ascii []rune
	for i := 0; i+1 < len(out); i += 2 {
		lo, hi := out[i], min(out[i+1], unicode.MaxASCII)
		if lo <= hi {
			ascii = append(ascii, lo, hi)
		}
	}
	return ascii
}

// expand lists the characters of ranges; nil if one is not ASCII.
func expand(ranges []rune) map[rune]bool {
	set := map[rune]bool{}
	for i := 0; i+1 < len(ranges); i += 2 {
		if ranges[i+1] > unicode.MaxASCII {
			return nil
		}
		for r := ranges[i]; r <= ranges[i+1]; r++ {
			set[r] = true
		}
	}
	return set
}

func hasAll(set map[rune]bool, rs []rune) bool {
	for _, r := range rs {
		if !set[r] {
			return false
		}
	}
	return true
}
