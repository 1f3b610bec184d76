package guest

// Churn under traffic: every configuration change a user or a daemon can
// make, made concurrently and over and over while packets flow through the
// tunnel, then the module unloaded with devices up. What fails here is
// what the debug kernel (KASAN, lockdep, PROVE_RCU, kmemleak) and the
// host's splat scanner see, and a tunnel that no longer carries checksummed
// data at the end.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/wgkit/wgkit/initramfs/manifest"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// stressSeconds is how long TestStressChurn churns by default: long enough
// for every kind of change to happen several times in make vmtest; make
// test asks for 10 s, make stress (wgbuild vmtest --stress-duration) for
// minutes.
const stressSeconds = 5

// stressStuck is how long after the churn's end its goroutines may still
// be inside a system call before the test calls it a deadlock.
const stressStuck = 2 * time.Minute

// stressExtraPeers are peers of A besides B, without endpoints, whose keys
// and allowed IPs the churn changes.
const stressExtraPeers = 8

// churner is one kind of change, made in a loop until the churn ends. Its
// step gets handles of its own (netlink sockets are not shared between
// goroutines) and returns an error for anything the change must not do.
type churner struct {
	name string
	step func(h *churnHandles, i int) error
}

// churnHandles are one churner's netlink sockets in A and B.
type churnHandles struct {
	rtnlA, rtnlB *vnl.Handle
	wgA, wgB     *wgctrl.Client
}

func newChurnHandles(t *testing.T, a, b netns.NsHandle) *churnHandles {
	t.Helper()
	h := &churnHandles{}
	var err error
	if h.rtnlA, err = vnl.NewHandleAt(a, unix.NETLINK_ROUTE); err != nil {
		t.Fatalf("rtnetlink in A: %v", err)
	}
	t.Cleanup(h.rtnlA.Close)
	if h.rtnlB, err = vnl.NewHandleAt(b, unix.NETLINK_ROUTE); err != nil {
		t.Fatalf("rtnetlink in B: %v", err)
	}
	t.Cleanup(h.rtnlB.Close)
	for _, c := range []struct {
		ns netns.NsHandle
		wg **wgctrl.Client
	}{{a, &h.wgA}, {b, &h.wgB}} {
		if err := inNetns(c.ns, func() error {
			var err error
			*c.wg, err = wgctrl.New()
			return err
		}); err != nil {
			t.Fatalf("wgctrl client: %v", err)
		}
		cl := *c.wg
		t.Cleanup(func() { cl.Close() })
	}
	return h
}

// TestStressChurn runs traffic through a tunnel (UDP both ways, IPv4 and
// IPv6, and pings) for WGVM_STRESS_SECONDS while other goroutines, each
// with its own netlink sockets, concurrently: remove and re-add the peer
// and replace all peers, on both sides; change preshared keys, private
// keys (A's to a new one and back, and to the same one) and extra peers'
// keys; move B's inner address to another peer and back and add and remove
// allowed IPs; take A's link down and up; change B's MTU; create devices
// with live handshakes, move them to other namespaces and delete those
// namespaces with the devices in them; and dump both devices and all links
// continuously. No configuration call may fail. Afterwards the
// configuration is restored and a TCP transfer must arrive intact.
func TestStressChurn(t *testing.T) {
	loadTest(t)
	dur := time.Duration(envCount(t, manifest.StressSecondsEnv, stressSeconds)) * time.Second
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)

	// The keys churner gives extra peers new keys; the others read them.
	var extraMu sync.Mutex
	extra := make([]wgtypes.Key, stressExtraPeers)
	for i := range extra {
		extra[i] = peerKey(t.Name(), i)
	}
	extraKey := func(i int) wgtypes.Key {
		extraMu.Lock()
		defer extraMu.Unlock()
		return extra[i]
	}
	peerB := func() wgtypes.PeerConfig { return tn.peerConfig(tn.a, false) }
	peerA := func() wgtypes.PeerConfig { return tn.peerConfig(tn.b, true) }
	extraPeer := func(i int) wgtypes.PeerConfig {
		return wgtypes.PeerConfig{
			PublicKey:         extraKey(i),
			ReplaceAllowedIPs: true,
			AllowedIPs:        prefixes(t, fmt.Sprintf("10.1.%d.0/24", i), fmt.Sprintf("fd01:%x::/64", i)),
		}
	}
	allA := func() []wgtypes.PeerConfig {
		ps := []wgtypes.PeerConfig{peerB()}
		for i := range extra {
			ps = append(ps, extraPeer(i))
		}
		return ps
	}
	tn.a.configure(t, tunDev, wgtypes.Config{Peers: allA()})
	psk := newPrivateKey(t)
	otherKey := newPrivateKey(t)
	var zero wgtypes.Key

	churners := []churner{
		{"peer remove and re-add", func(h *churnHandles, i int) error {
			if i%2 == 0 {
				if err := h.wgA.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: tn.b.key.PublicKey(), Remove: true}}}); err != nil {
					return err
				}
				return h.wgA.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{peerB()}})
			}
			if err := h.wgB.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: tn.a.key.PublicKey(), Remove: true}}}); err != nil {
				return err
			}
			return h.wgB.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{peerA()}})
		}},
		{"replace peers", func(h *churnHandles, i int) error {
			if i%2 == 0 {
				return h.wgA.ConfigureDevice(tunDev, wgtypes.Config{ReplacePeers: true, Peers: allA()})
			}
			return h.wgB.ConfigureDevice(tunDev, wgtypes.Config{ReplacePeers: true, Peers: []wgtypes.PeerConfig{peerA()}})
		}},
		{"keys", func(h *churnHandles, i int) error {
			switch i % 4 {
			case 0: // the same private key again: sessions stay
				return h.wgA.ConfigureDevice(tunDev, wgtypes.Config{PrivateKey: &tn.a.key})
			case 1: // another private key, then back
				if err := h.wgA.ConfigureDevice(tunDev, wgtypes.Config{PrivateKey: &otherKey}); err != nil {
					return err
				}
				return h.wgA.ConfigureDevice(tunDev, wgtypes.Config{PrivateKey: &tn.a.key})
			case 2: // a preshared key on both sides, then none
				k := psk
				if i%8 == 6 {
					k = zero
				}
				if err := h.wgA.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: tn.b.key.PublicKey(), UpdateOnly: true, PresharedKey: &k}}}); err != nil {
					return err
				}
				return h.wgB.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: tn.a.key.PublicKey(), UpdateOnly: true, PresharedKey: &k}}})
			default: // an extra peer under a new key
				j := i / 4 % len(extra)
				extraMu.Lock()
				old := extra[j]
				extra[j] = peerKey(fmt.Sprintf("%s/%d", t.Name(), i), j)
				extraMu.Unlock()
				return h.wgA.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: old, Remove: true}, extraPeer(j)}})
			}
		}},
		{"allowed ips", func(h *churnHandles, i int) error {
			j := i % len(extra)
			switch i % 3 {
			case 0: // B's inner address to another peer and back
				if err := h.wgA.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: extraKey(j), UpdateOnly: true, AllowedIPs: prefixes(t, "10.0.0.2/32")}}}); err != nil {
					return err
				}
				return h.wgA.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{peerB()}})
			case 1: // many more, then back to two
				var more []string
				for k := range 32 {
					more = append(more, fmt.Sprintf("10.%d.%d.0/24", 100+j, k), fmt.Sprintf("fd02:%x:%x::/48", j, k))
				}
				return h.wgA.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: extraKey(j), UpdateOnly: true, AllowedIPs: prefixes(t, more...)}}})
			default:
				return h.wgA.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{extraPeer(j)}})
			}
		}},
		{"link down and up", func(h *churnHandles, i int) error {
			l, err := h.rtnlA.LinkByName(tunDev)
			if err != nil {
				return err
			}
			if err := h.rtnlA.LinkSetDown(l); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
			return h.rtnlA.LinkSetUp(l)
		}},
		{"mtu", func(h *churnHandles, i int) error {
			l, err := h.rtnlB.LinkByName(tunDev)
			if err != nil {
				return err
			}
			return h.rtnlB.LinkSetMTU(l, []int{1280, 1420, 1300, 8000, 1420}[i%5])
		}},
		{"devices moved and namespaces deleted", func(h *churnHandles, i int) error {
			return churnNamespaces(h, tn, i)
		}},
		{"dumps", func(h *churnHandles, i int) error {
			if _, err := h.wgA.Device(tunDev); err != nil {
				return err
			}
			if _, err := h.wgB.Device(tunDev); err != nil {
				return err
			}
			if _, err := h.wgA.Devices(); err != nil {
				return err
			}
			_, err := dumpRetry(h.rtnlA.LinkList)
			return err
		}},
	}

	stopFlows := []func() int64{
		tn.a.flow(t, netip.AddrPortFrom(tn.b.inner4, 9)),
		tn.b.flow(t, netip.AddrPortFrom(tn.a.inner6, 9)),
		tn.a.flow(t, netip.AddrPortFrom(tn.b.inner6, 9)),
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var pings, pingsAnswered atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			pings.Add(1)
			if tn.a.echo(tn.b.inner4, 56, 200*time.Millisecond) == nil {
				pingsAnswered.Add(1)
			}
		}
	}()
	ops := make([]int, len(churners))
	errs := make([][]string, len(churners))
	for k, c := range churners {
		h := newChurnHandles(t, tn.a.ns, tn.b.ns)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if err := c.step(h, i); err != nil && len(errs[k]) < 5 {
					errs[k] = append(errs[k], fmt.Sprintf("step %d: %v", i, err))
				}
				ops[k]++
			}
		}()
	}
	start := time.Now()
	// A churner stuck in the kernel past the end is a deadlock: show what
	// every blocked task waits for, then end the binary, since every
	// later test would block on the same lock.
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(dur + stressStuck):
		// Not t.Fatal: the cleanups would block on the stuck sockets.
		t.Errorf("configuration calls still blocked in the kernel %v after the churn ended: a deadlock. Tasks in uninterruptible sleep:\n%s", stressStuck, blockedTasks())
		os.Exit(1)
	}
	var sent []string
	for _, stop := range stopFlows {
		sent = append(sent, fmt.Sprint(stop()))
	}
	var summary []string
	total := 0
	for k, c := range churners {
		summary = append(summary, fmt.Sprintf("%s %d", c.name, ops[k]))
		total += ops[k]
		for _, e := range errs[k] {
			t.Errorf("%s: %s", c.name, e)
		}
	}
	sort.Strings(summary)
	t.Logf("%d changes in %v (%s); datagrams sent meanwhile %s; pings answered %d of %d",
		total, time.Since(start).Round(time.Millisecond), strings.Join(summary, ", "), strings.Join(sent, ", "), pingsAnswered.Load(), pings.Load())

	// Back to the tunnel's own configuration, then data must flow.
	tn.a.configure(t, tunDev, wgtypes.Config{PrivateKey: &tn.a.key, ReplacePeers: true, Peers: []wgtypes.PeerConfig{peerB()}})
	tn.b.configure(t, tunDev, wgtypes.Config{ReplacePeers: true, Peers: []wgtypes.PeerConfig{peerA()}})
	tn.a.up(t, tunDev)
	if err := tn.b.rtnl.LinkSetMTU(tn.b.link(t, tunDev), tunMTU); err != nil {
		t.Fatalf("B: ip link set %s mtu %d: %v", tunDev, tunMTU, err)
	}
	for _, p := range []netip.Prefix{netip.PrefixFrom(tn.a.inner4, 24), netip.PrefixFrom(tn.a.inner6, 64)} {
		ipn := ipNet(p)
		if err := tn.a.rtnl.AddrAdd(tn.a.link(t, tunDev), &vnl.Addr{IPNet: &ipn, Flags: unix.IFA_F_NODAD}); err != nil && !errors.Is(err, unix.EEXIST) {
			t.Fatalf("A: ip addr add %s dev %s: %v", p, tunDev, err)
		}
	}
	// Both sides may have initiations to retry that cross (see pingUntil).
	if err := tn.a.pingUntil(tn.b.inner4, tunCrossedWait); err != nil {
		t.Fatalf("no session between A and B after the churn: ping %s from A: %v", tn.b.inner4, err)
	}
	data, sum, recv := transferData(t, 13, tunTransferSize(t)/8)
	tn.tcpTransfer(t, "after the churn", tn.b.inner4, data, sum, recv)
	if err := tn.b.ping(tn.a.inner6); err != nil {
		t.Fatalf("ping from B to A over IPv6 after the churn: %v", err)
	}
}

// churnNamespaces is one round of the namespace churner: a device created
// in A (its socket lives there, next to the veth) with B as its peer under
// a key B does not know, so that it keeps initiating; traffic staged on it;
// the device moved into a new namespace, used there, and that namespace
// deleted with the device in it, or, every other round, the device moved
// back and deleted.
func churnNamespaces(h *churnHandles, tn *tunnel, i int) error {
	name := fmt.Sprintf("wgc%d", i%4)
	if err := h.rtnlA.LinkAdd(&vnl.Wireguard{LinkAttrs: vnl.LinkAttrs{Name: name}}); err != nil {
		return fmt.Errorf("ip link add %s: %w", name, err)
	}
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return err
	}
	if err := h.wgA.ConfigureDevice(name, wgtypes.Config{PrivateKey: &key, Peers: []wgtypes.PeerConfig{{
		PublicKey:                   tn.b.key.PublicKey(),
		Endpoint:                    net.UDPAddrFromAddrPort(tn.b.endpoint(i%2 == 1)),
		AllowedIPs:                  []net.IPNet{ipNet(netip.MustParsePrefix("10.77.0.0/16"))},
		PersistentKeepaliveInterval: ptr(time.Second),
	}}}); err != nil {
		return fmt.Errorf("configure %s: %w", name, err)
	}
	l, err := h.rtnlA.LinkByName(name)
	if err != nil {
		return err
	}
	ns, err := newNetns()
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := h.rtnlA.LinkSetNsFd(l, int(ns)); err != nil {
		return fmt.Errorf("ip link set %s netns: %w", name, err)
	}
	r, err := vnl.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer r.Close()
	if l, err = r.LinkByName(name); err != nil {
		return err
	}
	ipn := ipNet(netip.MustParsePrefix("10.77.0.1/16"))
	if err := r.AddrAdd(l, &vnl.Addr{IPNet: &ipn}); err != nil {
		return err
	}
	if err := r.LinkSetUp(l); err != nil {
		return err
	}
	if err := inNetns(ns, func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 77, 0, 2), Port: 9})
		if err != nil {
			return err
		}
		defer c.Close()
		for range 4 {
			if _, err := c.Write(make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("send through %s: %w", name, err)
	}
	time.Sleep(30 * time.Millisecond)
	if i%2 == 0 {
		return nil // ns.Close: the namespace goes, and the device with it
	}
	if err := r.LinkSetNsFd(l, int(tn.a.ns)); err != nil {
		return fmt.Errorf("ip link set %s netns A: %w", name, err)
	}
	if l, err = h.rtnlA.LinkByName(name); err != nil {
		return err
	}
	return h.rtnlA.LinkDel(l)
}

// TestStressModuleUnload unloads the wireguard module while devices are up
// in several namespaces with sessions, traffic, handshakes in progress and
// persistent keepalives: every device must go with it, and the module
// loads again and works. A module that cannot be unloaded (built in, or
// still referenced) fails the test; wgvm-init loaded it from the image, so
// it can.
func TestStressModuleUnload(t *testing.T) {
	m, err := manifest.Read(manifest.Path)
	if err != nil {
		t.Fatalf("reading the image's manifest: %v", err)
	}
	var mod *manifest.Module
	for i := range m.Modules {
		if m.Modules[i].Name == "wireguard" {
			mod = &m.Modules[i]
		}
	}
	if mod == nil {
		t.Fatalf("the manifest loads no module named wireguard: %+v", m.Modules)
	}

	tn := newTunnel(t, tunConfig{})
	tn.establish(t)
	// A third namespace with a device that keeps initiating to B.
	c := newTestNS(t)
	c.addWG(t, "wg1")
	key := newPrivateKey(t)
	c.configure(t, "wg1", wgtypes.Config{PrivateKey: &key, ListenPort: ptr(0), Peers: []wgtypes.PeerConfig{{
		PublicKey:                   tn.b.key.PublicKey(),
		Endpoint:                    udpAddr(t, "127.0.0.1:9"),
		AllowedIPs:                  prefixes(t, "0.0.0.0/0"),
		PersistentKeepaliveInterval: ptr(time.Second),
	}}})
	c.up(t, "wg1")
	stopA := tn.a.flow(t, netip.AddrPortFrom(tn.b.inner4, 9))
	stopB := tn.b.flow(t, netip.AddrPortFrom(tn.a.inner6, 9))
	time.Sleep(500 * time.Millisecond)

	start := time.Now()
	if err := unix.DeleteModule("wireguard", unix.O_NONBLOCK); err != nil {
		stopA()
		stopB()
		t.Fatalf("rmmod wireguard with devices up: %v", err)
	}
	unloaded := time.Since(start)
	sentA, sentB := stopA(), stopB()
	if _, err := os.Stat("/sys/module/wireguard"); err == nil {
		t.Errorf("/sys/module/wireguard is still there after the module was removed")
	}
	for _, n := range []struct {
		ns   *testNS
		link string
	}{{tn.a.testNS, tunDev}, {tn.b.testNS, tunDev}, {c, "wg1"}} {
		if n.ns.hasLink(t, n.link) {
			t.Errorf("%s is still there after the module was removed", n.link)
		}
	}

	f, err := os.Open(mod.Path)
	if err != nil {
		t.Fatalf("module %s: %v", mod.Path, err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), mod.Params, 0); err != nil {
		t.Fatalf("loading %s again: %v (the rest of the suite needs it)", mod.Path, err)
	}
	t.Logf("unloaded with 3 devices up in %v (datagrams sent meanwhile: A %d, B %d), loaded again", unloaded.Round(time.Millisecond), sentA, sentB)

	again := newTunnel(t, tunConfig{})
	again.establish(t)
	if err := again.b.ping(again.a.inner6); err != nil {
		t.Fatalf("ping over a new tunnel after reloading the module: %v", err)
	}
}

// blockedTasks lists the tasks in uninterruptible sleep (D) with their
// kernel stacks (/proc/PID/task/TID/stack), to show who waits for what.
func blockedTasks() string {
	var b strings.Builder
	stats, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*/stat")
	for _, st := range stats {
		raw, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ...: comm may hold spaces, the state follows
		// the last ')'.
		i := bytes.LastIndexByte(raw, ')')
		if i < 0 || i+2 >= len(raw) || raw[i+2] != 'D' {
			continue
		}
		stack, _ := os.ReadFile(filepath.Join(filepath.Dir(st), "stack"))
		fmt.Fprintf(&b, "%s\n%s\n", bytes.TrimSpace(raw[:i+1]), stack)
	}
	if b.Len() == 0 {
		return "(none)"
	}
	return b.String()
}

// cryptRunKnob is the driver's fault injection (CONFIG_WIREGUARD_DEBUG and
// the kernel's CONFIG_FAULT_INJECTION_DEBUG_FS; the debug config has
// both): while it is on, a crypt worker's run handles no packet and queues
// itself again.
const cryptRunKnob = "/sys/kernel/debug/fail_wireguard_crypt_run"

// TestStressRemovalMidCrypt removes peers while their packets wait in the
// device's crypt rings for a worker run that queued itself again: a flush
// of the crypt workqueue does not wait for such a run, and a removal that
// purged the peer's queues after one flush left the rings pointing at
// freed packets (CI saw it once as slab corruption under TestStressChurn).
// Each round: with fail_wireguard_crypt_run on, datagrams flow both ways
// and pile up in the rings of both devices; A removes B and B removes A at
// once; a moment later the knob goes off. A removal must wait until the
// workers have sealed or opened every packet of the peer, so it cannot
// return while the knob is on; one that did not wait lets the workers
// use freed packets, which KASAN reports on the debug kernel (and the host
// fails the run). Then both add each other again and A initiates. The
// knob is the module's, so the test runs on its own.
func TestStressRemovalMidCrypt(t *testing.T) {
	if _, err := os.Stat(cryptRunKnob); err != nil {
		t.Skipf("no %s: needs a kernel with CONFIG_FAULT_INJECTION_DEBUG_FS (--config debug) and ours with CONFIG_WIREGUARD_DEBUG", cryptRunKnob)
	}
	knob := func(name, v string) {
		if err := os.WriteFile(filepath.Join(cryptRunKnob, name), []byte(v), 0); err != nil {
			t.Fatalf("%s/%s: %v", cryptRunKnob, name, err)
		}
	}
	knob("verbose", "0") // no stack trace per injected fault
	knob("interval", "1")
	knob("times", "-1")
	t.Cleanup(func() { knob("probability", "0") })

	const rounds = 10
	hold := scaled(300 * time.Millisecond)
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)
	var sent int64
	waited := 0
	for i := 0; i < rounds; i++ {
		knob("probability", "100")
		stopA := tn.a.flow(t, netip.AddrPortFrom(tn.b.inner4, 9))
		stopB := tn.b.flow(t, netip.AddrPortFrom(tn.a.inner6, 9))
		time.Sleep(hold)
		var wg sync.WaitGroup
		returned := make([]time.Time, 2)
		errs := make([]error, 2)
		for j, s := range []*tunSide{tn.a, tn.b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[j] = s.wg.ConfigureDevice(tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: tn.other(s).key.PublicKey(), Remove: true}}})
				returned[j] = time.Now()
			}()
		}
		time.Sleep(hold)
		off := time.Now()
		knob("probability", "0")
		wg.Wait()
		sent += stopA() + stopB()
		for j, err := range errs {
			if err != nil {
				t.Fatalf("round %d: removing the peer on %s: %v", i, []string{"A", "B"}[j], err)
			}
			if returned[j].After(off) {
				waited++
			}
		}
		for _, s := range []*tunSide{tn.a, tn.b} {
			s.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{tn.peerConfig(s, false)}})
		}
		tn.establish(t)
	}
	t.Logf("%d rounds, %d datagrams sent; %d of %d removals waited for the crypt workers to be let go", rounds, sent, waited, 2*rounds)
	// A removal that returned with the workers held had no packet of its
	// peer pending, or did not wait for them: at least A's packets to B
	// were piled up in each round.
	if waited < rounds {
		t.Errorf("only %d of %d removals waited until the crypt workers ran again: a removal returned while packets of its peer were still in the crypt rings", waited, 2*rounds)
	}
	if err := tn.b.ping(tn.a.inner6); err != nil {
		t.Fatalf("ping from B to A after the rounds: %v", err)
	}
}
