package guest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

const (
	// helperUnprivileged is the helper mode in which the re-executed test
	// binary, running as nobody, tries GET and SET on a device.
	helperUnprivileged = "unprivileged"
	unprivDeviceEnv    = "WGVM_UNPRIV_DEVICE"
	nobody             = 65534
)

// unprivilegedHelper runs in the child: it reports its identity and
// capabilities and the outcome of GET_DEVICE and SET_DEVICE as key=value
// lines.
func unprivilegedHelper(w io.Writer) int {
	dev := os.Getenv(unprivDeviceEnv)
	fmt.Fprintf(w, "uid=%d\ngid=%d\ncapeff=%s\n", os.Getuid(), os.Getgid(), capEff())
	c, err := genetlink.Dial(nil)
	if err != nil {
		fmt.Fprintf(w, "dial=%v\n", err)
		return 0
	}
	defer c.Close()
	fam, err := c.GetFamily(genlName)
	if err != nil {
		fmt.Fprintf(w, "family=%v\n", err)
		return 0
	}
	fmt.Fprintf(w, "family=ok\n")
	_, err = c.Execute(genlMsg(cmdGetDevice, aIfname(dev)), fam.ID, netlink.Request|netlink.Dump)
	fmt.Fprintf(w, "get=%s\n", outcome(err))
	// A SET_DEVICE that names the device and changes nothing.
	_, err = c.Execute(genlMsg(cmdSetDevice, aIfname(dev)), fam.ID, netlink.Request|netlink.Acknowledge)
	fmt.Fprintf(w, "set=%s\n", outcome(err))
	return 0
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	if e := errnoOf(err); e != 0 {
		return errnoName(e)
	}
	return "error: " + err.Error()
}

// capEff returns the CapEff line of /proc/self/status.
func capEff() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown: " + err.Error()
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "missing"
}

// worldExecutableCopy copies the test binary to a directory that uid 65534
// can traverse, since the original may live where only root can.
func worldExecutableCopy(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	dir, err := os.MkdirTemp("", "wgvm-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatalf("read the test binary: %v", err)
	}
	dst := filepath.Join(dir, "guest.test")
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// runHelperAs re-executes the test binary in helper mode inside the
// fixture's namespace with the given credentials (nil: as root) and returns
// its key=value report.
func runHelperAs(t *testing.T, f *rawFixture, exe string, cred *syscall.Credential) map[string]string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(exe)
	cmd.Dir = "/"
	cmd.Env = []string{helperEnv + "=" + helperUnprivileged, unprivDeviceEnv + "=" + f.name}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := f.n.run(cmd); err != nil {
		t.Fatalf("run the helper: %v (stderr: %q)", err, stderr.String())
	}
	got := map[string]string{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			got[k] = v
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("helper output:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	})
	return got
}

// TestUnprivilegedDenied re-executes the test binary as uid/gid 65534 with
// no capabilities, in the device's namespace: both GET_DEVICE and
// SET_DEVICE must fail with EPERM, and the device must not change. The same
// helper run as root is the control: its requests succeed.
func TestUnprivilegedDenied(t *testing.T) {
	f := newRawFixture(t)
	exe := worldExecutableCopy(t)
	tests := []struct {
		name string
		cred *syscall.Credential
		want []struct{ key, value, why string }
	}{
		{"root (control)", nil, []struct{ key, value, why string }{
			{"uid", "0", "the control runs as root"},
			{"family", "ok", "the family resolves"},
			{"get", "ok", "the helper's GET_DEVICE is valid"},
			{"set", "ok", "the helper's SET_DEVICE is valid"},
		}},
		{"nobody", &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}, []struct{ key, value, why string }{
			{"uid", fmt.Sprint(nobody), "the helper must run as nobody"},
			{"gid", fmt.Sprint(nobody), "the helper must run as nobody"},
			{"capeff", "0000000000000000", "the helper must have no effective capabilities"},
			{"family", "ok", "resolving the family needs no privilege"},
			{"get", "EPERM", "GET_DEVICE needs CAP_NET_ADMIN"},
			{"set", "EPERM", "SET_DEVICE needs CAP_NET_ADMIN"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := viewOf(f.n.device(t, f.name))
			got := runHelperAs(t, f, exe, tc.cred)
			for _, w := range tc.want {
				if got[w.key] != w.value {
					t.Errorf("helper %s: want %q, got %q (%s)", w.key, w.value, got[w.key], w.why)
				}
			}
			assertUnchanged(t, before, viewOf(f.n.device(t, f.name)))
		})
	}
}
