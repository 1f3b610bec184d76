package manifest

import (
	"encoding/json"
	"strings"
)

// The benchmark (wgbuild bench): the host puts the wireguard modules to
// compare into the image, unloaded, and the guest suite's TestBench loads
// each in turn, runs the same workloads on it, unloads it, and prints one
// BenchMarker line per measurement.
const (
	// BenchDir holds the modules the guest loads itself, one
	// <variant>.ko each (ours.ko, upstream.ko).
	BenchDir = Dir + "/bench"
	// BenchModulesEnv lists them: "ours=/wgvm/bench/ours.ko upstream=...".
	BenchModulesEnv = "WGVM_BENCH_MODULES"
	// BenchRoundsEnv is how many rounds (every variant once a round).
	BenchRoundsEnv = "WGVM_BENCH_ROUNDS"
	// BenchSecondsEnv is how long each throughput workload runs.
	BenchSecondsEnv = "WGVM_BENCH_SECONDS"
	// BenchPeersEnv is the configuration plane's peer count.
	BenchPeersEnv = "WGVM_BENCH_PEERS"
	// BenchMarker starts each measurement line; JSON of a BenchSample
	// follows.
	BenchMarker = "WGVM-BENCH "
)

// BenchSample is one measurement: one workload, one variant, one round.
type BenchSample struct {
	// Variant is what carried the traffic: "veth" (no tunnel),
	// "upstream", "upstream-aa" (upstream again: the A/A control),
	// "ours", "wireguard-go".
	Variant string `json:"variant"`
	Round   int    `json:"round"`
	// Metric names the workload and the figure ("tcp1", "ping-p99").
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	// Higher says a larger value is better (throughput); false for
	// times and costs.
	Higher bool `json:"higher"`
}

// Line is s as the guest prints it.
func (s BenchSample) Line() string {
	b, _ := json.Marshal(s)
	return BenchMarker + string(b)
}

// ParseBenchLine reads a line the guest printed; ok is false for any other
// line.
func ParseBenchLine(line string) (s BenchSample, ok bool) {
	_, rest, found := strings.Cut(line, BenchMarker)
	if !found {
		return s, false
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), &s); err != nil {
		return s, false
	}
	return s, s.Variant != "" && s.Metric != ""
}
