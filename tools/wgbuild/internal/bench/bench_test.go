package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

// samples builds one metric's samples: values[variant][round-1].
func samples(metric string, higher bool, values map[string][]float64) []manifest.BenchSample {
	var out []manifest.BenchSample
	for _, v := range Variants {
		for i, x := range values[v] {
			out = append(out, manifest.BenchSample{Variant: v, Round: i + 1, Metric: metric, Value: x, Unit: "u", Higher: higher})
		}
	}
	return out
}

func TestRows(t *testing.T) {
	tests := []struct {
		name            string
		higher          bool
		values          map[string][]float64
		ratio, aa, ceil *Spread
		verdict         string
	}{
		{
			name:   "throughput, ours faster beyond A/A",
			higher: true,
			values: map[string][]float64{Veth: {400, 400, 400}, Upstream: {100, 100, 100}, UpstreamAA: {100, 98, 102}, Ours: {120, 110, 130}},
			ratio:  &Spread{Median: 1.2, Min: 1.1, Max: 1.3, N: 3},
			aa:     &Spread{Median: 1, Min: 100.0 / 102, Max: 100.0 / 98, N: 3},
			ceil:   &Spread{Median: 0.3, Min: 0.275, Max: 0.325, N: 3},
			// Above 1 by more than any A/A round is from 1.
			verdict: "better",
		},
		{
			name:   "latency: lower is better, so the ratio is upstream/ours",
			higher: false,
			values: map[string][]float64{Upstream: {100, 100}, UpstreamAA: {100, 100}, Ours: {200, 250}},
			ratio:  &Spread{Median: 0.45, Min: 0.4, Max: 0.5, N: 2},
			aa:     &Spread{Median: 1, Min: 1, Max: 1, N: 2},
			// No ceiling for a lower-is-better row.
			verdict: "worse",
		},
		{
			name:   "within the A/A noise",
			higher: true,
			values: map[string][]float64{Upstream: {100, 100, 100}, UpstreamAA: {80, 100, 125}, Ours: {110, 105, 108}},
			ratio:  &Spread{Median: 1.08, Min: 1.05, Max: 1.1, N: 3},
			aa:     &Spread{Median: 1, Min: 0.8, Max: 1.25, N: 3},
			// The whole range is above 1, but A/A moved 25%.
			verdict: "≈",
		},
		{
			name:    "no A/A: any consistent difference counts",
			higher:  true,
			values:  map[string][]float64{Upstream: {100}, Ours: {99}},
			ratio:   &Spread{Median: 0.99, Min: 0.99, Max: 0.99, N: 1},
			verdict: "worse",
		},
		{
			name:   "a range across 1 is never a verdict",
			higher: true,
			values: map[string][]float64{Upstream: {100, 100, 100}, Ours: {150, 150, 90}},
			ratio:  &Spread{Median: 1.5, Min: 0.9, Max: 1.5, N: 3},
			// Not all rounds agree.
			verdict: "≈",
		},
		{
			name:   "no upstream: no ratio",
			higher: true,
			values: map[string][]float64{Veth: {1}, Ours: {2}},
			ceil:   &Spread{Median: 2, Min: 2, Max: 2, N: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := Rows(samples("m", tt.higher, tt.values))
			if len(rows) != 1 {
				t.Fatalf("got %d rows, want 1", len(rows))
			}
			r := rows[0]
			check := func(what string, got, want *Spread) {
				t.Helper()
				if (got == nil) != (want == nil) {
					t.Fatalf("%s = %+v, want %+v", what, got, want)
				}
				if got == nil {
					return
				}
				near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
				if !near(got.Median, want.Median) || !near(got.Min, want.Min) || !near(got.Max, want.Max) || got.N != want.N {
					t.Errorf("%s = %+v, want %+v", what, *got, *want)
				}
			}
			check("ratio", r.Ratio, tt.ratio)
			check("A/A", r.AA, tt.aa)
			check("ceiling", r.Ceiling, tt.ceil)
			if r.Verdict != tt.verdict {
				t.Errorf("verdict = %q, want %q", r.Verdict, tt.verdict)
			}
		})
	}
}

func TestRowsPairRounds(t *testing.T) {
	// A round that only one side finished (the run failed half-way) is
	// left out of the ratio rather than paired with another round.
	s := samples("m", true, map[string][]float64{Upstream: {100, 200}, Ours: {100}})
	r := Rows(s)[0]
	if r.Ratio == nil || r.Ratio.N != 1 || r.Ratio.Median != 1 {
		t.Errorf("ratio = %+v, want 1 over the one common round", r.Ratio)
	}
	if got := r.Values[Upstream].Median; got != 150 {
		t.Errorf("upstream median = %v, want 150", got)
	}
}

func TestWriteTableAndSVG(t *testing.T) {
	s := samples("tcp1", true, map[string][]float64{Veth: {500, 510}, Upstream: {100, 110}, UpstreamAA: {105, 100}, Ours: {120, 125}, WGGo: {50, 52}})
	s = append(s, samples("rtt-p50-idle", false, map[string][]float64{Upstream: {300, 310}, UpstreamAA: {305, 300}, Ours: {280, 270}})...)
	rows := Rows(s)
	var tbl bytes.Buffer
	if err := WriteTable(&tbl, rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tcp1", "rtt-p50-idle", "wireguard-go", "better", "1.17 (1.14–1.20)"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, "a <title> & more", rows); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&svg)
	rects := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// The background, and per row an A/A band and a bar.
	if rects != 1+2*len(rows) {
		t.Errorf("the SVG has %d rects, want %d", rects, 1+2*len(rows))
	}
}

// A ratio far out (a loss of almost nothing against some) keeps the chart
// readable: the axis ends at maxAxisRatio, the figure is still printed.
func TestWriteSVGFarRatio(t *testing.T) {
	rows := []*Row{
		{Metric: "udp-loss", Ratio: &Spread{Median: 1200.69, Min: 1200.69, Max: 1200.69, N: 1}, Verdict: "better"},
		{Metric: "tcp1", Ratio: &Spread{Median: 1.1, Min: 1.0, Max: 1.2, N: 3}, AA: &Spread{Median: 1, Min: 0.9, Max: 1.1, N: 3}},
	}
	var svg strings.Builder
	if err := WriteSVG(&svg, "far", rows); err != nil {
		t.Fatal(err)
	}
	out := svg.String()
	if !strings.Contains(out, "1200.69") {
		t.Errorf("the far row's figure is missing from the chart")
	}
	if lines := strings.Count(out, "\n"); lines > 100 {
		t.Errorf("the chart has %d lines: the axis was stretched to the far ratio", lines)
	}
	if strings.Contains(out, ">3.25<") {
		t.Errorf("the axis goes past %v", maxAxisRatio)
	}
}
