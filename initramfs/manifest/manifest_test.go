package manifest

import "testing"

func TestResultRoundTrip(t *testing.T) {
	for _, r := range []Result{{Exit: 0}, {Exit: 1}, {Exit: -1}, {Error: `loading wireguard: "unknown symbol"`}} {
		got, ok := ParseResult(r.String() + "\r\n")
		if !ok || got != r {
			t.Errorf("ParseResult(%q) = %+v, %v; want %+v", r.String(), got, ok, r)
		}
	}
}

func TestParseResult(t *testing.T) {
	tests := []struct {
		line string
		want Result
		ok   bool
	}{
		{"WGVM-RESULT exit=0", Result{}, true},
		{"WGVM-RESULT exit=2\n", Result{Exit: 2}, true},
		{"WGVM-RESULT error=boom", Result{Error: "boom"}, true},
		{"WGVM-RESULT exit=x", Result{}, false},
		{"WGVM-RESULT", Result{}, false},
		{"PASS", Result{}, false},
		{"  WGVM-RESULT exit=0", Result{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseResult(tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseResult(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBenchLine(t *testing.T) {
	s := BenchSample{Variant: "ours", Round: 2, Metric: "tcp1", Value: 123.5, Unit: "Mbit/s", Higher: true}
	for _, tt := range []struct {
		line string
		ok   bool
	}{
		{s.Line(), true},
		{"    " + s.Line(), true}, // as go test indents a subtest's output
		{"tcp1 123.5", false},
		{BenchMarker + "{not json", false},
		{BenchMarker + `{"variant":"ours"}`, false}, // no metric
	} {
		got, ok := ParseBenchLine(tt.line)
		if ok != tt.ok || ok && got != s {
			t.Errorf("ParseBenchLine(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, s, tt.ok)
		}
	}
}
