// Package bench turns the guest's benchmark measurements
// (manifest.BenchSample, one per workload, variant and round) into rows: the
// median of each variant, our module against upstream's round by round, the
// A/A control (upstream against itself) that says what difference is noise,
// and the tunnel against the bare veth, the ceiling. It prints them as a
// table, JSON and an SVG chart.
package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

// The variants, as the guest names them.
const (
	Veth       = "veth"
	Upstream   = "upstream"
	UpstreamAA = "upstream-aa"
	Ours       = "ours"
	WGGo       = "wireguard-go"
)

// Variants in the table's order.
var Variants = []string{Veth, Upstream, UpstreamAA, Ours, WGGo}

// Spread is a median with the least and greatest value over rounds.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func spread(v []float64) *Spread {
	if len(v) == 0 {
		return nil
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &Spread{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// Row is one metric.
type Row struct {
	Metric string `json:"metric"`
	Unit   string `json:"unit"`
	Higher bool   `json:"higher_is_better"`
	// Values are each variant's figures over the rounds.
	Values map[string]*Spread `json:"values"`
	// Ratio is ours against upstream round by round, oriented so that
	// above 1 means ours is better (ours/upstream for throughput,
	// upstream/ours for times and costs); AA is upstream against its own
	// second run, the same way; Ceiling is ours against the bare veth.
	Ratio   *Spread `json:"ratio,omitempty"`
	AA      *Spread `json:"aa,omitempty"`
	Ceiling *Spread `json:"ceiling,omitempty"`
	// Verdict is "better" or "worse" when Ratio's whole range is on one
	// side of 1 and its median further from 1 than any A/A round, "≈"
	// otherwise; "" without a ratio.
	Verdict string `json:"verdict,omitempty"`
}

// Rows aggregates samples, in the order the metrics first appear.
func Rows(samples []manifest.BenchSample) []*Row {
	type key struct {
		metric, variant string
	}
	byRound := map[key]map[int]float64{}
	var rows []*Row
	index := map[string]*Row{}
	for _, s := range samples {
		r := index[s.Metric]
		if r == nil {
			r = &Row{Metric: s.Metric, Unit: s.Unit, Higher: s.Higher, Values: map[string]*Spread{}}
			index[s.Metric] = r
			rows = append(rows, r)
		}
		k := key{s.Metric, s.Variant}
		if byRound[k] == nil {
			byRound[k] = map[int]float64{}
		}
		byRound[k][s.Round] = s.Value
	}
	for _, r := range rows {
		for _, v := range Variants {
			var vals []float64
			for _, x := range byRound[key{r.Metric, v}] {
				vals = append(vals, x)
			}
			if sp := spread(vals); sp != nil {
				r.Values[v] = sp
			}
		}
		ratios := func(a, b string) *Spread {
			var out []float64
			for round, x := range byRound[key{r.Metric, a}] {
				y, ok := byRound[key{r.Metric, b}][round]
				if !ok {
					continue
				}
				num, den := x, y
				if !r.Higher {
					num, den = y, x
				}
				switch {
				case num == 0 && den == 0:
					out = append(out, 1)
				case den != 0:
					out = append(out, num/den)
				}
				// else: no ratio to zero (no loss against some):
				// that round says nothing as a ratio.
			}
			return spread(out)
		}
		r.Ratio = ratios(Ours, Upstream)
		r.AA = ratios(Upstream, UpstreamAA)
		if r.Higher {
			r.Ceiling = ratios(Ours, Veth)
		}
		r.Verdict = verdict(r.Ratio, r.AA)
	}
	return rows
}

// verdict says whether ratio is beyond the noise aa shows.
func verdict(ratio, aa *Spread) string {
	if ratio == nil {
		return ""
	}
	noise := 0.0
	if aa != nil {
		noise = max(math.Abs(aa.Min-1), math.Abs(aa.Max-1))
	}
	switch {
	case ratio.Min > 1 && ratio.Median-1 > noise:
		return "better"
	case ratio.Max < 1 && 1-ratio.Median > noise:
		return "worse"
	}
	return "≈"
}

// WriteTable prints the rows for people.
func WriteTable(w io.Writer, rows []*Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "metric\tunit\t")
	for _, v := range Variants {
		fmt.Fprintf(tw, "%s\t", v)
	}
	fmt.Fprint(tw, "ours vs upstream\tA/A\t\tours/veth\t\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t", r.Metric, r.Unit)
		for _, v := range Variants {
			fmt.Fprintf(tw, "%s\t", figure(r.Values[v]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", ratioText(r.Ratio), ratioText(r.AA), r.Verdict, ratioText(r.Ceiling))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "Figures are medians over rounds. Ratios are round by round, median (min–max), oriented so that above 1 is better for ours (or for the first upstream run in A/A); \"better\"/\"worse\" only where the whole range is on one side of 1 and the median further from 1 than any A/A round.")
	return err
}

func figure(s *Spread) string {
	if s == nil {
		return "-"
	}
	switch m := math.Abs(s.Median); {
	case m >= 100:
		return fmt.Sprintf("%.0f", s.Median)
	case m >= 10:
		return fmt.Sprintf("%.1f", s.Median)
	}
	return fmt.Sprintf("%.2f", s.Median)
}

func ratioText(s *Spread) string {
	if s == nil {
		return "-"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2f", s.Median)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

// maxAxisRatio is where the chart's axis ends.
const maxAxisRatio = 3.0

// WriteSVG draws ours against upstream per metric: a bar at the median
// ratio, a whisker over its range, the A/A range shaded behind it, and a
// line at 1.
func WriteSVG(w io.Writer, title string, rows []*Row) error {
	var plotted []*Row
	for _, r := range rows {
		if r.Ratio != nil {
			plotted = append(plotted, r)
		}
	}
	const (
		left, right, top, rowH = 170.0, 40.0, 50.0, 26.0
		width                  = 760.0
	)
	lo, hi := 0.5, 1.5
	for _, r := range plotted {
		lo, hi = math.Min(lo, r.Ratio.Min), math.Max(hi, r.Ratio.Max)
		if r.AA != nil {
			lo, hi = math.Min(lo, r.AA.Min), math.Max(hi, r.AA.Max)
		}
	}
	// A ratio far out (a loss of almost nothing against some) would
	// squeeze every other row into a sliver: the axis stops at
	// maxAxisRatio, bars beyond end at its edge and keep their figure.
	hi = math.Min(hi, maxAxisRatio)
	lo, hi = math.Floor(lo*4)/4, math.Ceil(hi*4)/4
	plotW := width - left - right
	x := func(v float64) float64 { return left + (math.Min(math.Max(v, lo), hi)-lo)/(hi-lo)*plotW }
	height := top + rowH*float64(len(plotted)) + 50
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", left, esc(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="38" fill="#555">ours vs upstream, above 1 is better for ours; grey: upstream vs itself (A/A noise)</text>`+"\n", left)
	for v := math.Ceil(lo*4) / 4; v <= hi+1e-9; v += 0.25 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#eee"/>`+"\n", x(v), top, x(v), height-40)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%.2f</text>`+"\n", x(v), height-25, v)
	}
	for i, r := range plotted {
		y := top + rowH*float64(i)
		mid := y + rowH/2
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-8, mid+4, esc(r.Metric))
		if r.AA != nil {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#ddd"/>`+"\n", x(r.AA.Min), y+3, math.Max(x(r.AA.Max)-x(r.AA.Min), 1), rowH-6)
		}
		color := "#888"
		switch r.Verdict {
		case "better":
			color = "#2a7"
		case "worse":
			color = "#c33"
		}
		x0, x1 := x(1), x(r.Ratio.Median)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", math.Min(x0, x1), y+8, math.Max(math.Abs(x1-x0), 1), rowH-16, color)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x(r.Ratio.Min), mid, x(r.Ratio.Max), mid)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#333">%.2f</text>`+"\n", math.Max(x1, x(r.Ratio.Max))+4, mid+4, r.Ratio.Median)
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="black" stroke-dasharray="4 3"/>`+"\n", x(1), top-4, x(1), height-40)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func esc(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	return r.Replace(s)
}

// Report is the JSON file.
type Report struct {
	Kernel  string                 `json:"kernel"`
	Accel   string                 `json:"accel"`
	Rounds  int                    `json:"rounds"`
	Seconds int                    `json:"seconds"`
	Peers   int                    `json:"peers"`
	Rows    []*Row                 `json:"rows"`
	Samples []manifest.BenchSample `json:"samples"`
}

// SortSamples orders samples by round, variant and metric, for stable
// JSON.
func SortSamples(s []manifest.BenchSample) {
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if a.Round != b.Round {
			return a.Round < b.Round
		}
		if a.Variant != b.Variant {
			return a.Variant < b.Variant
		}
		return a.Metric < b.Metric
	})
}
