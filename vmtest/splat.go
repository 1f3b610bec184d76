package vmtest

import (
	"regexp"
	"strings"
)

// A Splat is a kernel report of something going wrong: a WARNING, BUG,
// Oops, KASAN or UBSAN report, lockdep or RCU complaint, hung task, stall
// or panic. Any splat fails a run.
type Splat struct {
	// Kind classifies the first line: "WARNING", "BUG", "Oops", "KASAN",
	// "UBSAN", "lockdep", "RCU", "hung task", "netdev refcount", "soft
	// lockup", "stall", "panic" or "call trace".
	Kind string
	// Title is the line that started the report, without its timestamp.
	Title string
	// Line is the 1-based console line number of Title.
	Line int
	// Fatal is set when the report ended the kernel (an Oops or a panic).
	Fatal bool
	// Context holds the report with some lines before it, as printed.
	Context []string
}

type trigger struct {
	re    *regexp.Regexp
	kind  string
	fatal bool
}

// triggers are tried in order on each console line, timestamp removed.
var triggers = []trigger{
	{regexp.MustCompile(`^Kernel panic - not syncing`), "panic", true},
	{regexp.MustCompile(`BUG: KASAN: |^KASAN: |BUG: KFENCE: `), "KASAN", false},
	{regexp.MustCompile(`^UBSAN: `), "UBSAN", false},
	{regexp.MustCompile(`^unreferenced object 0x[0-9a-f]+ \(size \d+\)`), "kmemleak", false},
	{regexp.MustCompile(`BUG: soft lockup|BUG: workqueue lockup`), "soft lockup", false},
	{regexp.MustCompile(`^kernel BUG at `), "BUG", true},
	{regexp.MustCompile(`\bBUG: `), "BUG", false},
	// die() headers: "Oops: 0002 [#1] PREEMPT SMP NOPTI",
	// "general protection fault, ...: 0000 [#1] SMP", "invalid opcode: 0000 [#1]".
	{regexp.MustCompile(`^Oops\b|^general protection fault|: [0-9a-f]{4} \[#\d+\]`), "Oops", true},
	{regexp.MustCompile(`^WARNING: (possible (circular|recursive) locking|inconsistent lock state|bad unlock balance|possible irq lock inversion|lock held when returning|held lock freed|.*lock.*detected)`), "lockdep", false},
	{regexp.MustCompile(`^WARNING: suspicious RCU usage`), "RCU", false},
	{regexp.MustCompile(`^WARNING: `), "WARNING", false},
	{regexp.MustCompile(`^INFO: task .* blocked for more than`), "hung task", false},
	// A device whose references never drop: a leak the core reports
	// every ten seconds while unregistering it hangs.
	{regexp.MustCompile(`unregister_netdevice: waiting for \S+ to become free`), "netdev refcount", false},
	{regexp.MustCompile(`rcu: INFO: .*(stall|stalls)|INFO: rcu_\w+ (self-)?detected stall`), "stall", false},
	{regexp.MustCompile(`^Call Trace:`), "call trace", false},
}

// prefix matches the printk decorations in front of a message:
// "[   12.345678] ", an optional caller id "[    T1] " or "[  C0] ".
var prefix = regexp.MustCompile(`^(<\d+>)?(\[\s*\d+\.\d+\]\s?)?(\[\s*[TC]\d+\]\s?)?`)

// endOfReport matches the lines that close a report.
var endOfReport = regexp.MustCompile(`---\[ end (trace [0-9a-f]+|Kernel panic.*) \]---|^---\[ end trace`)

// startOfReport matches the lines printed just before a report's title.
var startOfReport = regexp.MustCompile(`-+\[ cut here \]-+|^={10,}\s*$`)

const (
	// contextBefore is how many lines before a title a report may start.
	contextBefore = 3
	// reportLines bounds a report that has no end marker.
	reportLines = 30
	// maxReportLines bounds a report that does have one.
	maxReportLines = 80
	// panicGap is how far after a fatal report its panic line may come.
	panicGap = 40
)

// StripPrefix removes the printk timestamp and caller id from a console line.
func StripPrefix(line string) string {
	return prefix.ReplaceAllString(strings.TrimRight(line, "\r\n"), "")
}

// ScanSplats finds the kernel splats in console output. Lines belonging to
// one report (a BUG line, its Oops header, call trace and the panic that
// followed) become one Splat; a more serious later line of the same report
// makes it Fatal.
func ScanSplats(lines []string) []Splat {
	var out []Splat
	end := -1 // index of the last line of the current report
	for i, raw := range lines {
		msg := StripPrefix(raw)
		kind, fatal, ok := classify(msg)
		if !ok {
			continue
		}
		if i <= end && len(out) > 0 {
			if fatal {
				out[len(out)-1].Fatal = true
			}
			continue
		}
		if kind == "panic" && len(out) > 0 && out[len(out)-1].Fatal && i-end <= panicGap {
			// The panic that an Oops turned into: part of the same report.
			s := &out[len(out)-1]
			newEnd := reportEnd(lines, i, false)
			for _, l := range lines[end+1 : newEnd+1] {
				s.Context = append(s.Context, strings.TrimRight(l, "\r\n"))
			}
			end = newEnd
			continue
		}
		start := i
		for j := i - 1; j >= 0 && j >= i-contextBefore && j > end; j-- {
			if startOfReport.MatchString(StripPrefix(lines[j])) {
				start = j
				break
			}
		}
		end = reportEnd(lines, i, isRule(lines[start]))
		ctx := make([]string, 0, end-start+1)
		for _, l := range lines[start : end+1] {
			ctx = append(ctx, strings.TrimRight(l, "\r\n"))
		}
		out = append(out, Splat{Kind: kind, Title: msg, Line: i + 1, Fatal: fatal, Context: ctx})
	}
	return out
}

func classify(msg string) (kind string, fatal, ok bool) {
	for _, t := range triggers {
		if t.re.MatchString(msg) {
			return t.kind, t.fatal, true
		}
	}
	return "", false, false
}

func isRule(line string) bool {
	return rule.MatchString(StripPrefix(line))
}

var rule = regexp.MustCompile(`^={10,}\s*$`)

// reportEnd returns the index of the last line of the report whose title is
// at index i. Reports framed by "=====" lines (KASAN, UBSAN) end at the
// closing one; others at their end marker, else at the end of their first
// call trace (lockdep and hung task reports, dump_stack() and a panic that
// stopped the machine have no end marker), else after a fixed number of lines.
func reportEnd(lines []string, i int, framed bool) int {
	last := min(len(lines)-1, i+maxReportLines)
	if framed {
		for j := i + 1; j <= last; j++ {
			if isRule(lines[j]) {
				return j
			}
		}
	}
	inTrace := false
	for j := i; j <= last; j++ {
		if endOfReport.MatchString(lines[j]) {
			return j
		}
		msg := strings.TrimSpace(StripPrefix(lines[j]))
		switch {
		case strings.HasPrefix(msg, "Call Trace:"):
			inTrace = true
		case inTrace && msg == "</TASK>":
			// A WARNING's or an Oops's end marker follows soon after.
			for k := j + 1; k <= min(last, j+4); k++ {
				if endOfReport.MatchString(lines[k]) {
					return k
				}
			}
			return j
		}
	}
	return min(len(lines)-1, i+reportLines)
}
