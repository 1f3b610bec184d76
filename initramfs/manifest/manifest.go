// Package manifest is the contract between the host, which builds the guest
// image, and the guest's init (vmtest/cmd/wgvm-init), which reads it: what
// to load, what to run, and the markers that frame the guest's output.
package manifest

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Guest paths.
const (
	// Dir holds everything the overlay archive adds.
	Dir = "/wgvm"
	// Path is where the manifest sits in the guest.
	Path = Dir + "/manifest.json"
	// ModulesDir holds the kernel modules. It is deliberately not
	// /lib/modules, whose *.ko u-root's init would load in the wrong order.
	ModulesDir = Dir + "/modules"
	// ModulesList lists the modules in load order, one guest path a line,
	// for people reading the image.
	ModulesList = Dir + "/modules.order"
	// TestBinary is the guest test binary.
	TestBinary = Dir + "/guest.test"
	// TestsTTY is the serial port the test output goes to; the console is
	// ttyS0.
	TestsTTY = "/dev/ttyS1"
)

// Markers the guest prints. Each starts a line.
const (
	// InitMarker is printed on the console when the guest init starts,
	// ending the host's boot deadline.
	InitMarker = "WGVM-INIT"
	// ResultMarker ends the test output: "WGVM-RESULT exit=N" or
	// "WGVM-RESULT error=<quoted message>".
	ResultMarker = "WGVM-RESULT"
)

// Manifest tells the guest init what to do.
type Manifest struct {
	// Kernel is the release the image was built for, checked against
	// uname -r to catch a mismatched kernel early.
	Kernel string `json:"kernel"`
	// Modules are loaded in this order.
	Modules []Module `json:"modules"`
	// Test is the test binary invocation.
	Test Test `json:"test"`
	// Unload names modules to remove, in order, after the tests ran; a
	// failure to remove one fails the run.
	Unload []string `json:"unload,omitempty"`
}

// Module is one kernel module to load.
type Module struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Params string `json:"params,omitempty"`
}

// Test describes how to run the guest test binary.
type Test struct {
	Binary string   `json:"binary"`
	Args   []string `json:"args"`
	Env    []string `json:"env"`
	Dir    string   `json:"dir"`
	// TimeoutSeconds bounds the run; the guest kills the binary after it.
	TimeoutSeconds int `json:"timeout_seconds"`
}

// Read reads a manifest file.
func Read(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// Marshal encodes a manifest.
func (m *Manifest) Marshal() ([]byte, error) {
	return json.MarshalIndent(m, "", "  ")
}

// Result is what a ResultMarker line carries.
type Result struct {
	Exit  int    // the test binary's exit code
	Error string // set instead when the guest could not run the tests
}

// String formats r as a marker line (without the newline).
func (r Result) String() string {
	if r.Error != "" {
		return ResultMarker + " error=" + strconv.Quote(r.Error)
	}
	return ResultMarker + " exit=" + strconv.Itoa(r.Exit)
}

// ParseResult parses a marker line; ok is false if line is not one.
func ParseResult(line string) (r Result, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimRight(line, "\r\n"), ResultMarker+" ")
	if !found {
		return Result{}, false
	}
	if v, found := strings.CutPrefix(rest, "exit="); found {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Result{}, false
		}
		return Result{Exit: n}, true
	}
	if v, found := strings.CutPrefix(rest, "error="); found {
		msg, err := strconv.Unquote(v)
		if err != nil {
			msg = v
		}
		if msg == "" {
			msg = "unknown error"
		}
		return Result{Error: msg}, true
	}
	return Result{}, false
}

// The kernel's own WireGuard selftest (wgbuild conformance): the host puts
// netns.sh, unmodified, and the tools it calls into the image, and names
// the script in the guest suite's environment.
const (
	// SelftestDir holds the script and the shell setup that traces it.
	SelftestDir = Dir + "/selftest"
	// SelftestScript is tools/testing/selftests/wireguard/netns.sh of the
	// kernel under test.
	SelftestScript = SelftestDir + "/netns.sh"
	// SelftestEnv names the script for the guest suite's
	// TestKernelSelftest; without it that test skips.
	SelftestEnv = "WGVM_SELFTEST"
	// SelftestToolsDir holds the commands the script runs (bash, ip, ss,
	// ping, iperf3, ncat, iptables, wg); it goes first in the script's
	// PATH.
	SelftestToolsDir = SelftestDir + "/bin"
)

// StressSecondsEnv sets how many seconds the guest suite's TestStressChurn
// churns (wgbuild vmtest --stress-duration).
const StressSecondsEnv = "WGVM_STRESS_SECONDS"

// ModuleEnv tells the guest suite which wireguard module it tests:
// ModuleUpstream for the kernel's own, anything else for ours. A test that
// would skip for a feature upstream lacks fails for ours instead.
const (
	ModuleEnv      = "WGVM_MODULE"
	ModuleUpstream = "upstream"
)
