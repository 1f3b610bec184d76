package guest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The user namespace tests run the test binary twice over: the parent
// starts it as nobody with no capabilities (helperUsernsOuter), and that
// unprivileged process re-executes itself into a new user namespace, which
// it owns, and a new network namespace (helperUsernsInner): root in there,
// uid 65534 outside. The inner helper reports "ready", waits for a line on
// stdin (the parent may move a device into its network namespace first),
// does its requests, reports "done" and stays until stdin is closed, so
// that the parent can still look into the namespace.
const (
	helperUsernsOuter = "userns-outer"
	helperUsernsInner = "userns-inner"
	// usernsMovedEnv names a device the parent moves into the inner
	// helper's network namespace; unset, there is none.
	usernsMovedEnv = "WGVM_USERNS_MOVED"
	// usernsInnerModeEnv selects the inner helper's mode; unset, it is
	// helperUsernsInner.
	usernsInnerModeEnv = "WGVM_USERNS_INNER"
	// usernsOwnDevice is the device the inner helper creates itself.
	usernsOwnDevice = "wgu0"
	// Ports and marks the helper tries to set.
	usernsOwnPort    = 47001
	usernsOwnFwmark  = 0x44
	usernsMovedPort  = 47002
	usernsMovedMark  = 0x45
	usernsHelperWait = 60 * time.Second
)

// usernsKey is a key that the parent and the helper both derive.
func usernsKey(i int) wgtypes.Key { return peerKey("userns", i) }

// usernsPrivateKey is the private key the helper gives its own device.
func usernsPrivateKey() wgtypes.Key { return clamp(usernsKey(0)) }

// usernsOuterHelper runs as nobody: it reports its identity and starts the
// inner helper in a new user and network namespace.
func usernsOuterHelper(w io.Writer) int {
	fmt.Fprintf(w, "outer.uid=%d\nouter.gid=%d\nouter.capeff=%s\n", os.Getuid(), os.Getgid(), capEff())
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(w, "unshare=find executable: %v\n", err)
		return 0
	}
	inner := helperUsernsInner
	if m := os.Getenv(usernsInnerModeEnv); m != "" {
		inner = m
	}
	env := []string{helperEnv + "=" + inner}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, helperEnv+"=") {
			env = append(env, e)
		}
	}
	cmd := exec.Command(exe)
	cmd.Dir = "/"
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		// Root inside is this unprivileged user outside.
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(w, "unshare=%v\n", err)
		return 0
	}
	if err := cmd.Wait(); err != nil {
		fmt.Fprintf(w, "inner.exit=%v\n", err)
	}
	return 0
}

// usernsInnerHelper runs as root of its own user namespace.
func usernsInnerHelper(in io.Reader, w io.Writer) int {
	fmt.Fprintf(w, "inner.uid=%d\ninner.gid=%d\ninner.capeff=%s\ninner.pid=%d\n", os.Getuid(), os.Getgid(), capEff(), os.Getpid())
	fmt.Fprintln(w, "ready")
	sc := bufio.NewScanner(in)
	if !sc.Scan() {
		fmt.Fprintln(w, "stdin=closed before the go-ahead")
		return 0
	}
	c, err := genetlink.Dial(nil)
	if err != nil {
		fmt.Fprintf(w, "family=dial: %v\ndone\n", err)
		return 0
	}
	defer c.Close()
	fam, err := c.GetFamily(genlName)
	if err != nil {
		fmt.Fprintf(w, "family=%v\ndone\n", err)
		return 0
	}
	fmt.Fprintln(w, "family=ok")
	g := &genlClient{c: c, fam: fam}
	wg, err := wgctrl.New()
	if err != nil {
		fmt.Fprintf(w, "wgctrl=%v\ndone\n", err)
		return 0
	}
	defer wg.Close()

	usernsOwn(w, g, wg)
	if moved := os.Getenv(usernsMovedEnv); moved != "" {
		usernsMoved(w, g, wg, moved)
	}
	fmt.Fprintln(w, "done")
	for sc.Scan() {
	}
	return 0
}

// usernsOwn creates a device in the helper's namespace and configures and
// reads it through generic netlink.
func usernsOwn(w io.Writer, g *genlClient, wg *wgctrl.Client) {
	const name = usernsOwnDevice
	err := vnl.LinkAdd(&vnl.Wireguard{LinkAttrs: vnl.LinkAttrs{Name: name}})
	fmt.Fprintf(w, "own.linkadd=%s\n", outcome(err))
	if err != nil {
		return
	}
	_, err = g.get(aIfname(name))
	fmt.Fprintf(w, "own.get=%s\n", outcome(err))
	priv := usernsPrivateKey()
	err = g.set(cat(aIfname(name), nlattr(deviceAPrivateKey, 0, priv[:]),
		aPeers(aElem(aPeerKey(usernsKey(1)), aAllowedIPs(aAllowedIP(unix.AF_INET, v4("10.44.0.0"), 24))))))
	fmt.Fprintf(w, "own.set=%s\n", outcome(err))
	// The device was created in this namespace, so its root may set the
	// port and fwmark too.
	err = g.set(cat(aIfname(name), nlattr(deviceAListenPort, 0, u16(usernsOwnPort)), nlattr(deviceAFwmark, 0, u32(usernsOwnFwmark))))
	fmt.Fprintf(w, "own.portfwmark=%s\n", outcome(err))
	reportDevice(w, wg, "own", name)
}

// usernsMoved tries SET_DEVICE on a device that was created in a namespace
// where the helper has no privilege and moved into the helper's.
func usernsMoved(w io.Writer, g *genlClient, wg *wgctrl.Client, name string) {
	_, err := vnl.LinkByName(name)
	fmt.Fprintf(w, "moved.present=%s\n", outcome(err))
	_, err = g.get(aIfname(name))
	fmt.Fprintf(w, "moved.get=%s\n", outcome(err))
	err = g.set(cat(aIfname(name), nlattr(deviceAListenPort, 0, u16(usernsMovedPort))))
	fmt.Fprintf(w, "moved.port=%s\n", outcome(err))
	err = g.set(cat(aIfname(name), nlattr(deviceAFwmark, 0, u32(usernsMovedMark))))
	fmt.Fprintf(w, "moved.fwmark=%s\n", outcome(err))
	// Port and a peer together: refused as a whole.
	err = g.set(cat(aIfname(name), nlattr(deviceAListenPort, 0, u16(usernsMovedPort)),
		aPeers(aElem(aPeerKey(usernsKey(3)), aAllowedIPs(aAllowedIP(unix.AF_INET, v4("10.46.0.0"), 24))))))
	fmt.Fprintf(w, "moved.portpeers=%s\n", outcome(err))
	err = g.set(cat(aIfname(name), aPeers(aElem(aPeerKey(usernsKey(2)), aAllowedIPs(aAllowedIP(unix.AF_INET, v4("10.45.0.0"), 24))))))
	fmt.Fprintf(w, "moved.peers=%s\n", outcome(err))
	reportDevice(w, wg, "moved", name)
}

// reportDevice reads a device through wgctrl and reports its fields as
// <prefix>.now.<field>.
func reportDevice(w io.Writer, wg *wgctrl.Client, prefix, name string) {
	d, err := wg.Device(name)
	if err != nil {
		fmt.Fprintf(w, "%s.now.read=%v\n", prefix, err)
		return
	}
	prefix += ".now"
	fmt.Fprintf(w, "%s.read=ok\n%s.private=%s\n%s.public=%s\n%s.port=%d\n%s.fwmark=%#x\n%s.peers=%s\n",
		prefix, prefix, d.PrivateKey, prefix, d.PublicKey, prefix, d.ListenPort, prefix, d.FirewallMark, prefix, peersString(d))
}

// peersString is "key:ip,ip;key:ip", sorted.
func peersString(d *wgtypes.Device) string {
	var ps []string
	for k, ips := range peerIPsOf(d) {
		ps = append(ps, k.String()+":"+strings.Join(ips, ","))
	}
	sort.Strings(ps)
	return strings.Join(ps, ";")
}

// usernsHelper is the parent's handle on a running helper pair.
type usernsHelper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	got    map[string]string
	out    strings.Builder
	stderr bytes.Buffer
	closed bool
	// wait bounds each waitFor; usernsHelperWait unless set.
	wait time.Duration
}

// startUsernsHelper starts the outer helper as nobody and waits until the
// inner one is ready in its namespaces.
func startUsernsHelper(t *testing.T, exe string, env ...string) *usernsHelper {
	t.Helper()
	h := &usernsHelper{lines: make(chan string, 100), got: map[string]string{}}
	h.cmd = exec.Command(exe)
	h.cmd.Dir = "/"
	h.cmd.Env = append([]string{helperEnv + "=" + helperUsernsOuter}, env...)
	h.cmd.Stderr = &h.stderr
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start the helper: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() { h.stop(t) })
	if !h.waitFor(t, "ready") {
		t.Fatalf("the helper ended before its namespaces were ready (unshare: %q)", h.got["unshare"])
	}
	return h
}

// waitFor records the helper's key=value lines until the line marker; it
// returns false if the helper's output ended first.
func (h *usernsHelper) waitFor(t *testing.T, marker string) bool {
	t.Helper()
	wait := h.wait
	if wait == 0 {
		wait = usernsHelperWait
	}
	timeout := time.After(wait)
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				return false
			}
			fmt.Fprintln(&h.out, l)
			if l == marker {
				return true
			}
			if k, v, ok := strings.Cut(l, "="); ok {
				h.got[k] = v
			}
		case <-timeout:
			t.Fatalf("no %q from the helper within %v", marker, wait)
			return false
		}
	}
}

// proceed gives the inner helper its go-ahead and waits until it is done.
func (h *usernsHelper) proceed(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
		t.Fatalf("write to the helper: %v", err)
	}
	if !h.waitFor(t, "done") {
		t.Fatalf("the helper ended before it was done")
	}
}

// stop closes the helper's stdin, reads the rest of its output and waits
// for it; if it does not end, it is killed (by its own pid).
func (h *usernsHelper) stop(t *testing.T) {
	if h.closed {
		return
	}
	h.closed = true
	h.stdin.Close()
	timeout := time.After(usernsHelperWait)
drain:
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				break drain
			}
			fmt.Fprintln(&h.out, l)
		case <-timeout:
			t.Errorf("the helper (pid %d) did not end within %v; killing it", h.cmd.Process.Pid, usernsHelperWait)
			h.cmd.Process.Kill()
			break drain
		}
	}
	h.cmd.Wait()
	if t.Failed() {
		t.Logf("helper output:\n%s\nstderr:\n%s", h.out.String(), h.stderr.String())
	}
}

// check compares reported values.
func (h *usernsHelper) check(t *testing.T, want []struct{ key, value, why string }) {
	t.Helper()
	for _, w := range want {
		if got, ok := h.got[w.key]; !ok || got != w.value {
			t.Errorf("helper %s: want %q, got %q (%s)", w.key, w.value, got, w.why)
		}
	}
}

// innerPid returns the pid of the inner helper and checks, from outside,
// that it is uid 65534 in a user namespace owned by uid 65534, in a network
// namespace other than ours.
func (h *usernsHelper) innerPid(t *testing.T) int {
	t.Helper()
	var pid int
	if _, err := fmt.Sscan(h.got["inner.pid"], &pid); err != nil || pid <= 0 {
		t.Fatalf("helper reported no pid (%q)", h.got["inner.pid"])
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the inner helper's status: %v", err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			if f := strings.Fields(v); len(f) < 2 || f[0] != fmt.Sprint(nobody) || f[1] != fmt.Sprint(nobody) {
				t.Errorf("inner helper seen from outside: Uid %q, want real and effective uid %d", strings.TrimSpace(v), nobody)
			}
		}
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open the inner helper's user namespace: %v", err)
	}
	defer unix.Close(fd)
	if owner, err := unix.IoctlGetUint32(fd, unix.NS_GET_OWNER_UID); err != nil {
		t.Errorf("NS_GET_OWNER_UID: %v", err)
	} else if owner != nobody {
		t.Errorf("the inner helper's user namespace is owned by uid %d, want %d (the unprivileged outer helper)", owner, nobody)
	}
	var self, inner unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &inner); err != nil {
		t.Fatal(err)
	}
	if self.Ino == inner.Ino {
		t.Errorf("the inner helper is in the test's own network namespace")
	}
	return pid
}

// identityChecks are what both tests expect of the helpers' identities.
var identityChecks = []struct{ key, value, why string }{
	{"outer.uid", fmt.Sprint(nobody), "the outer helper runs as nobody"},
	{"outer.gid", fmt.Sprint(nobody), "the outer helper runs as nobody"},
	{"outer.capeff", "0000000000000000", "the outer helper has no capabilities"},
	{"inner.uid", "0", "root inside the new user namespace"},
	{"inner.gid", "0", "root inside the new user namespace"},
}

// TestUserNamespaceAdmin: root of a user namespace that an unprivileged
// user created may create a wireguard device in its own network namespace
// and use WG_CMD_GET_DEVICE and WG_CMD_SET_DEVICE on it. The family's
// operations require CAP_NET_ADMIN in the user namespace that owns the
// device's network namespace (GENL_UNS_ADMIN_PERM), not in the initial one
// (GENL_ADMIN_PERM would refuse this helper both).
func TestUserNamespaceAdmin(t *testing.T) {
	exe := worldExecutableCopy(t)
	h := startUsernsHelper(t, exe)
	h.check(t, identityChecks)
	h.innerPid(t)
	h.proceed(t)

	priv := usernsPrivateKey()
	h.check(t, []struct{ key, value, why string }{
		{"family", "ok", "the family resolves in the new namespace"},
		{"own.linkadd", "ok", "userns root may create a link in its netns"},
		{"own.get", "ok", "GET_DEVICE needs CAP_NET_ADMIN in the netns's user namespace only"},
		{"own.set", "ok", "SET_DEVICE needs CAP_NET_ADMIN in the netns's user namespace only"},
		{"own.portfwmark", "ok", "the device was created in this namespace, so its root may set port and fwmark"},
		{"own.now.read", "ok", "wgctrl reads the device"},
		{"own.now.private", priv.String(), "the private key set reads back"},
		{"own.now.public", priv.PublicKey().String(), "the public key is derived from it"},
		{"own.now.peers", usernsKey(1).String() + ":10.44.0.0/24", "the peer set reads back"},
		{"own.now.port", fmt.Sprint(usernsOwnPort), "the port set reads back"},
		{"own.now.fwmark", fmt.Sprintf("%#x", usernsOwnFwmark), "the fwmark set reads back"},
	})
}

// TestCreatingNamespaceAdmin: a device created by root and moved into a
// network namespace owned by an unprivileged user namespace. Its UDP
// sockets stay in the namespace it was created in, so the listen port and
// fwmark, which act on them, need CAP_NET_ADMIN there: root of the new user
// namespace gets EPERM for them, but may change peers. Root outside, in the
// same namespace, may set the port (the control).
func TestCreatingNamespaceAdmin(t *testing.T) {
	// Not isolated: it writes an executable, and a fork by a parallel
	// test between that write and its close makes the exec fail with
	// ETXTBSY (golang.org/issue/22315).
	const name, port, mark = "wgvm-uns0", 46500, 0x55
	creator := newTestNS(t) // owned by the initial user namespace
	l := creator.addWG(t, name)
	creator.configure(t, name, wgtypes.Config{
		ListenPort:   ptr(port),
		FirewallMark: ptr(mark),
		Peers:        []wgtypes.PeerConfig{{PublicKey: usernsKey(4), AllowedIPs: prefixes(t, "10.47.0.0/24")}},
	})

	exe := worldExecutableCopy(t)
	h := startUsernsHelper(t, exe, usernsMovedEnv+"="+name)
	h.check(t, identityChecks)
	pid := h.innerPid(t)
	ns, err := netns.GetFromPath(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatalf("open the helper's network namespace: %v", err)
	}
	defer ns.Close()
	if err := creator.rtnl.LinkSetNsFd(l, int(ns)); err != nil {
		t.Fatalf("ip link set %s netns <helper's>: %v", name, err)
	}
	h.proceed(t)

	h.check(t, []struct{ key, value, why string }{
		{"family", "ok", "the family resolves in the new namespace"},
		{"moved.present", "ok", "the device was moved into the helper's namespace"},
		{"moved.get", "ok", "GET_DEVICE needs CAP_NET_ADMIN in the current netns's user namespace only"},
		{"moved.port", "EPERM", "the listen port needs CAP_NET_ADMIN in the creating namespace"},
		{"moved.fwmark", "EPERM", "the fwmark needs CAP_NET_ADMIN in the creating namespace"},
		{"moved.portpeers", "EPERM", "a port with peers is refused as a whole"},
		{"moved.peers", "ok", "peers alone need no privilege in the creating namespace"},
		{"moved.now.read", "ok", "wgctrl reads the device"},
		{"moved.now.port", fmt.Sprint(port), "the refused port change left the port alone"},
		{"moved.now.fwmark", fmt.Sprintf("%#x", mark), "the refused fwmark change left the fwmark alone"},
		{"moved.now.peers", peersString(&wgtypes.Device{Peers: []wgtypes.Peer{
			{PublicKey: usernsKey(2), AllowedIPs: prefixes(t, "10.45.0.0/24")},
			{PublicKey: usernsKey(4), AllowedIPs: prefixes(t, "10.47.0.0/24")},
		}}), "the peer added alone is there, the one sent with a port is not"},
	})

	// Control: root of the initial user namespace, which owns the creating
	// namespace, may set the port of the same device in the same place.
	const port2 = 46501
	if err := controlSetPort(ns, name, port2); err != nil {
		t.Errorf("control: SET_DEVICE listen port as root in the helper's namespace: want success, got %v", err)
	}
	var d *wgtypes.Device
	if err := inNetns(ns, func() error {
		c, err := wgctrl.New()
		if err != nil {
			return err
		}
		defer c.Close()
		d, err = c.Device(name)
		return err
	}); err != nil {
		t.Fatalf("control: read %s in the helper's namespace: %v", name, err)
	}
	if d.ListenPort != port2 {
		t.Errorf("control: listen port set by root: want %d, got %d", port2, d.ListenPort)
	}
}

// controlSetPort sets the listen port of name in ns as root of the initial
// user namespace.
func controlSetPort(ns netns.NsHandle, name string, port uint16) error {
	c, err := genetlink.Dial(&netlink.Config{NetNS: int(ns)})
	if err != nil {
		return err
	}
	defer c.Close()
	fam, err := c.GetFamily(genlName)
	if err != nil {
		return err
	}
	g := &genlClient{c: c, fam: fam}
	return g.set(cat(aIfname(name), nlattr(deviceAListenPort, 0, u16(port))))
}
