package guest

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/wgkit/wgkit/initramfs/manifest"
)

const (
	// guestEnv is set to "1" by the VM harness; without it the suite skips.
	guestEnv = manifest.GuestEnv
	// helperEnv selects a helper mode when the test binary re-executes
	// itself (see runHelper).
	helperEnv = "WGVM_GUEST_HELPER"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	// -test.list (the host asks what the suite defines) runs nothing.
	if os.Getenv(guestEnv) != "1" && !listing() {
		fmt.Println("guest suite: runs inside the VM via `make vmtest`")
		os.Exit(0)
	}
	// wgbuild bench loads the modules itself.
	if !listing() && os.Getenv(manifest.BenchModulesEnv) == "" {
		if err := checkModule(); err != nil {
			fmt.Fprintf(os.Stderr, "guest suite: %v\n", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func listing() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.list") {
			return true
		}
	}
	return false
}

// requireUpstream is called where a test is about to skip because the module
// lacks a feature that upstream's lacks too: for our module, which has it,
// that is a failure, not a skip. The host says which module runs
// (manifest.ModuleEnv).
func requireUpstream(t *testing.T, what string) {
	t.Helper()
	if m := os.Getenv(manifest.ModuleEnv); m != manifest.ModuleUpstream {
		t.Fatalf("%s, but the module under test is %q, which must have it (only %q may skip here)", what, m, manifest.ModuleUpstream)
	}
}

// checkModule fails fast, with one clear message, when the wireguard module
// is not loaded: otherwise every test would fail on its own.
func checkModule() error {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return fmt.Errorf("dial generic netlink: %w", err)
	}
	defer c.Close()
	if _, err := c.GetFamily(genlName); err != nil {
		return fmt.Errorf("generic netlink family %q not found (%v): load the wireguard module before running the suite", genlName, err)
	}
	return nil
}

// runHelper runs the code of a re-executed child process and returns its exit
// code. Helpers report on stdout; the parent test makes the assertions.
func runHelper(mode string) int {
	switch mode {
	case helperUnprivileged:
		return unprivilegedHelper(os.Stdout)
	case helperUsernsOuter:
		return usernsOuterHelper(os.Stdout)
	case helperUsernsInner:
		return usernsInnerHelper(os.Stdin, os.Stdout)
	case helperFuzzDenied:
		return fuzzHelper(mode, os.Stdout)
	case helperFuzzUserns:
		return fuzzUsernsHelper(os.Stdin, os.Stdout)
	case helperWGGo:
		return wggoHelper(os.Stdin, os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperEnv, mode)
		return 2
	}
}

// isolated marks a test that works only in network namespaces of its own
// (newTestNS, newTunnel) and reads nothing global, so that it runs in
// parallel with the other isolated tests once the sequential ones are done
// (-test.parallel, which the host sets). Tests that touch the module or
// the initial namespace stay sequential, and so do those that write an
// executable and run it (a parallel test's fork could hold it open:
// ETXTBSY).
func isolated(t *testing.T) {
	t.Helper()
	t.Parallel()
}

// loadTest marks an isolated test that loads the guest (floods, fuzzers,
// churn, scale, traffic during changes): on a fast kernel it runs among
// the isolated tests, which keeps the guest's CPUs busy while others wait
// (the edit loop's time); on a slow (debug) kernel it runs alone, as
// before: there a namespace's teardown under churn can hold RTNL long
// enough that another load test's netlink call waited past its 12 s
// (TestFuzzNetlink beside TestStressChurn, 6.1 debug, make stress).
func loadTest(t *testing.T) {
	t.Helper()
	if timeScale == 1 {
		t.Parallel()
	}
}
