package guest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"slices"
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

	"github.com/wgkit/wgkit/initramfs/manifest"
)

// ---------------------------------------------------------------------------
// Network namespaces

// inNetns runs fn on an OS thread that has joined ns, then moves the thread
// back. Sockets that fn creates (and processes it forks) stay in ns. If the
// thread cannot be moved back it stays locked, so the runtime discards it
// when the goroutine exits instead of reusing a thread in the wrong netns.
func inNetns(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// inNetnsGet is inNetns for a function that returns a value, such as a
// socket it opens in ns.
func inNetnsGet[T any](ns netns.NsHandle, fn func() (T, error)) (T, error) {
	var v T
	err := inNetns(ns, func() error {
		var err error
		v, err = fn()
		return err
	})
	return v, err
}

// newNetns creates an anonymous network namespace that lives as long as the
// returned handle (and any socket in it) stays open.
func newNetns() (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{err: fmt.Errorf("get current netns: %w", err)}
			return
		}
		defer orig.Close()
		ns, err := netns.New() // unshare(CLONE_NEWNET): this thread is now in ns
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{err: fmt.Errorf("unshare netns: %w", err)}
			return
		}
		if err := netns.Set(orig); err != nil {
			ns.Close()
			c <- result{err: fmt.Errorf("return to original netns: %w", err)}
			return // thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		c <- result{ns: ns}
	}()
	r := <-c
	return r.ns, r.err
}

// testNS is a fresh network namespace with an rtnetlink handle and a wgctrl
// client whose sockets live in it.
type testNS struct {
	ns   netns.NsHandle
	rtnl *vnl.Handle
	wg   *wgctrl.Client
}

// newTestNS creates a namespace that is torn down when the test ends.
func newTestNS(t *testing.T) *testNS {
	t.Helper()
	ns, err := newNetns()
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	n := &testNS{ns: ns}
	t.Cleanup(n.close)

	if n.rtnl, err = vnl.NewHandleAt(ns, unix.NETLINK_ROUTE); err != nil {
		t.Fatalf("rtnetlink handle in new netns: %v", err)
	}
	if err := inNetns(ns, func() error {
		var err error
		n.wg, err = wgctrl.New()
		return err
	}); err != nil {
		t.Fatalf("wgctrl client in new netns: %v", err)
	}
	return n
}

// close releases every handle; the kernel then destroys the namespace and
// any device still in it.
func (n *testNS) close() {
	if n.wg != nil {
		n.wg.Close()
	}
	if n.rtnl != nil {
		n.rtnl.Close()
	}
	n.ns.Close()
}

// addWG creates a wireguard link named name and deletes it at the end of
// the test unless it is gone by then.
func (n *testNS) addWG(t *testing.T, name string) vnl.Link {
	t.Helper()
	if err := n.rtnl.LinkAdd(&vnl.Wireguard{LinkAttrs: vnl.LinkAttrs{Name: name}}); err != nil {
		t.Fatalf("ip link add %s type wireguard: %v", name, err)
	}
	t.Cleanup(func() {
		if l, err := n.rtnl.LinkByName(name); err == nil {
			if err := n.rtnl.LinkDel(l); err != nil {
				t.Errorf("cleanup: delete %s: %v", name, err)
			}
		}
	})
	return n.link(t, name)
}

// dumpRetry repeats an rtnetlink dump that a concurrent change interrupted
// (NLM_F_DUMP_INTR: its result may be incomplete), up to ten times.
func dumpRetry[T any](dump func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := dump()
		if !errors.Is(err, vnl.ErrDumpInterrupted) || i == 9 {
			return v, err
		}
	}
}

func (n *testNS) link(t *testing.T, name string) vnl.Link {
	t.Helper()
	l, err := n.rtnl.LinkByName(name)
	if err != nil {
		t.Fatalf("look up link %s: %v", name, err)
	}
	return l
}

// hasLink reports whether a link named name exists in the namespace.
func (n *testNS) hasLink(t *testing.T, name string) bool {
	t.Helper()
	_, err := n.rtnl.LinkByName(name)
	var nf vnl.LinkNotFoundError
	switch {
	case err == nil:
		return true
	case errors.As(err, &nf), errors.Is(err, unix.ENODEV):
		return false
	default:
		t.Fatalf("look up link %s: %v", name, err)
		return false
	}
}

func (n *testNS) up(t *testing.T, name string) {
	t.Helper()
	if err := n.rtnl.LinkSetUp(n.link(t, name)); err != nil {
		t.Fatalf("ip link set %s up: %v", name, err)
	}
}

func (n *testNS) device(t *testing.T, name string) *wgtypes.Device {
	t.Helper()
	d, err := n.wg.Device(name)
	if err != nil {
		t.Fatalf("wgctrl Device(%s): %v", name, err)
	}
	return d
}

func (n *testNS) configure(t *testing.T, name string, cfg wgtypes.Config) {
	t.Helper()
	if err := n.wg.ConfigureDevice(name, cfg); err != nil {
		t.Fatalf("wgctrl ConfigureDevice(%s): %v", name, err)
	}
}

// listenUDP binds a UDP socket inside the namespace.
func (n *testNS) listenUDP(network string, port int) (net.PacketConn, error) {
	var pc net.PacketConn
	err := inNetns(n.ns, func() error {
		var err error
		pc, err = net.ListenPacket(network, fmt.Sprintf(":%d", port))
		return err
	})
	return pc, err
}

// portBusy reports whether UDP port (IPv4 wildcard) is bound in the
// namespace, by trying to bind it.
func (n *testNS) portBusy(t *testing.T, port int) bool {
	t.Helper()
	pc, err := n.listenUDP("udp4", port)
	if err == nil {
		pc.Close()
		return false
	}
	if errors.Is(err, unix.EADDRINUSE) {
		return true
	}
	t.Fatalf("probe UDP port %d: %v", port, err)
	return false
}

// command runs a program inside the namespace (it is forked from a thread
// that joined the namespace) and returns its stdout.
func (n *testNS) command(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := n.run(cmd)
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w (stderr: %q)", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// run runs cmd to completion, forked from a thread inside the namespace so
// that the process starts in it.
func (n *testNS) run(cmd *exec.Cmd) error {
	return inNetns(n.ns, cmd.Run)
}

// ---------------------------------------------------------------------------
// Link properties read with raw rtnetlink, so that the ARPHRD type is the
// number the kernel sent and not a library's name for it.

type linkInfo struct {
	name  string
	kind  string
	typ   uint16 // ifinfomsg.ifi_type (ARPHRD_*)
	flags uint32 // ifinfomsg.ifi_flags (IFF_*)
	mtu   uint32
}

func (n *testNS) linkInfo(t *testing.T, ifindex int) linkInfo {
	t.Helper()
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: int(n.ns)})
	if err != nil {
		t.Fatalf("dial rtnetlink: %v", err)
	}
	defer c.Close()

	req := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(req[4:8], uint32(ifindex))
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request},
		Data:   req,
	})
	if err != nil {
		t.Fatalf("RTM_GETLINK ifindex %d: %v", ifindex, err)
	}
	if len(msgs) != 1 || len(msgs[0].Data) < unix.SizeofIfInfomsg {
		t.Fatalf("RTM_GETLINK ifindex %d: want 1 message with an ifinfomsg, got %d messages", ifindex, len(msgs))
	}
	b := msgs[0].Data
	li := linkInfo{
		typ:   binary.NativeEndian.Uint16(b[2:4]),
		flags: binary.NativeEndian.Uint32(b[8:12]),
	}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfInfomsg:])
	if err != nil {
		t.Fatalf("decode RTM_NEWLINK attributes: %v", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			li.name = ad.String()
		case unix.IFLA_MTU:
			li.mtu = ad.Uint32()
		case unix.IFLA_LINKINFO:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == unix.IFLA_INFO_KIND {
						li.kind = nad.String()
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatalf("decode RTM_NEWLINK attributes: %v", err)
	}
	return li
}

// ---------------------------------------------------------------------------
// Keys and prefixes

// newPrivateKey returns a random private key.
func newPrivateKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatalf("generate private key: %v", err)
	}
	return k
}

// peerKey returns a deterministic 32-byte key for peer i of a test. It is not
// derived from a private key (the devices under test have none when they
// hold many peers, so the kernel never computes with it), which keeps
// thousand-peer setups cheap under emulation.
func peerKey(test string, i int) wgtypes.Key {
	return wgtypes.Key(sha256.Sum256(fmt.Appendf(nil, "wgvm/%s/peer/%d", test, i)))
}

// prefix parses a CIDR and returns it masked (the canonical form the kernel
// reports back).
func prefix(t *testing.T, s string) net.IPNet {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatalf("parse prefix %q: %v", s, err)
	}
	return ipNet(p.Masked())
}

// unmaskedPrefix parses a CIDR but keeps the host bits (10.1.2.3/8 stays
// 10.1.2.3/8), to test the kernel's normalisation.
func unmaskedPrefix(t *testing.T, s string) net.IPNet {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatalf("parse prefix %q: %v", s, err)
	}
	return ipNet(p)
}

func ipNet(p netip.Prefix) net.IPNet {
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

func prefixes(t *testing.T, ss ...string) []net.IPNet {
	t.Helper()
	out := make([]net.IPNet, 0, len(ss))
	for _, s := range ss {
		out = append(out, prefix(t, s))
	}
	return out
}

// prefixString is the canonical text of an allowed IP as the kernel reports
// it (masked, IPv4 as 4 bytes).
func prefixString(n net.IPNet) string {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return "invalid(" + n.String() + ")"
	}
	ones, bits := n.Mask.Size()
	if bits == 32 {
		addr = addr.Unmap()
	}
	return netip.PrefixFrom(addr, ones).String()
}

func udpAddr(t *testing.T, s string) *net.UDPAddr {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("parse endpoint %q: %v", s, err)
	}
	return net.UDPAddrFromAddrPort(ap)
}

func endpointString(a *net.UDPAddr) string {
	if a == nil {
		return ""
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

func ptr[T any](v T) *T { return &v }

// ---------------------------------------------------------------------------
// Comparable views of a device

type peerView struct {
	PresharedKey    wgtypes.Key
	Endpoint        string
	Keepalive       time.Duration
	AllowedIPs      []string // sorted, canonical
	ProtocolVersion int
}

type deviceView struct {
	PrivateKey   wgtypes.Key
	PublicKey    wgtypes.Key
	ListenPort   int
	FirewallMark int
	Peers        map[wgtypes.Key]peerView
}

func viewOf(d *wgtypes.Device) deviceView {
	v := deviceView{
		PrivateKey:   d.PrivateKey,
		PublicKey:    d.PublicKey,
		ListenPort:   d.ListenPort,
		FirewallMark: d.FirewallMark,
		Peers:        make(map[wgtypes.Key]peerView, len(d.Peers)),
	}
	for _, p := range d.Peers {
		v.Peers[p.PublicKey] = peerView{
			PresharedKey:    p.PresharedKey,
			Endpoint:        endpointString(p.Endpoint),
			Keepalive:       p.PersistentKeepaliveInterval,
			AllowedIPs:      sortedPrefixes(p.AllowedIPs),
			ProtocolVersion: p.ProtocolVersion,
		}
	}
	return v
}

func sortedPrefixes(ns []net.IPNet) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, prefixString(n))
	}
	sort.Strings(out)
	return out
}

// diffViews lists the differences between two device views, at most max.
func diffViews(want, got deviceView, max int) []string {
	var d []string
	add := func(format string, args ...any) {
		if len(d) < max {
			d = append(d, fmt.Sprintf(format, args...))
		}
	}
	if want.PrivateKey != got.PrivateKey {
		add("private key: want %s, got %s", want.PrivateKey, got.PrivateKey)
	}
	if want.PublicKey != got.PublicKey {
		add("public key: want %s, got %s", want.PublicKey, got.PublicKey)
	}
	if want.ListenPort != got.ListenPort {
		add("listen port: want %d, got %d", want.ListenPort, got.ListenPort)
	}
	if want.FirewallMark != got.FirewallMark {
		add("fwmark: want %#x, got %#x", want.FirewallMark, got.FirewallMark)
	}
	for k, wp := range want.Peers {
		gp, ok := got.Peers[k]
		if !ok {
			add("peer %s: missing", k)
			continue
		}
		if !reflect.DeepEqual(wp, gp) {
			add("peer %s: want %+v, got %+v", k, wp, gp)
		}
	}
	for k, gp := range got.Peers {
		if _, ok := want.Peers[k]; !ok {
			add("peer %s: unexpected, %+v", k, gp)
		}
	}
	return d
}

// assertUnchanged fails the test if the device differs from before.
func assertUnchanged(t *testing.T, before, after deviceView) {
	t.Helper()
	if d := diffViews(before, after, 10); len(d) > 0 {
		t.Errorf("device changed although the request failed:\n  %s", strings.Join(d, "\n  "))
	}
}

// peerIPs maps each peer to its sorted allowed IPs.
type peerIPs map[wgtypes.Key][]string

func peerIPsOf(d *wgtypes.Device) peerIPs {
	m := make(peerIPs, len(d.Peers))
	for _, p := range d.Peers {
		m[p.PublicKey] = sortedPrefixes(p.AllowedIPs)
	}
	return m
}

// diffPeerIPs compares peers and their allowed IPs as sets; names maps keys
// to readable labels for the messages.
func diffPeerIPs(want, got peerIPs, names map[wgtypes.Key]string, max int) []string {
	label := func(k wgtypes.Key) string {
		if n, ok := names[k]; ok {
			return n
		}
		return k.String()
	}
	var d []string
	add := func(format string, args ...any) {
		if len(d) < max {
			d = append(d, fmt.Sprintf(format, args...))
		}
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			add("peer %s: missing (want allowed IPs %v)", label(k), w)
		case !slices.Equal(w, g):
			add("peer %s: allowed IPs want %v, got %v", label(k), w, g)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			add("peer %s: unexpected (allowed IPs %v)", label(k), g)
		}
	}
	if len(want) != len(got) {
		add("peer count: want %d, got %d", len(want), len(got))
	}
	return d
}

func assertPeerIPs(t *testing.T, d *wgtypes.Device, want peerIPs, names map[wgtypes.Key]string) {
	t.Helper()
	if diff := diffPeerIPs(want, peerIPsOf(d), names, 10); len(diff) > 0 {
		t.Errorf("peers of %s differ from what was configured:\n  %s", d.Name, strings.Join(diff, "\n  "))
	}
}

// ---------------------------------------------------------------------------
// Many-peer configurations

// bigConfig returns peers × ipsPerPeer distinct allowed IPs, half IPv4 and
// half IPv6, and the expected read-back.
func bigConfig(test string, peers, ipsPerPeer int) ([]wgtypes.PeerConfig, peerIPs) {
	cfg := make([]wgtypes.PeerConfig, 0, peers)
	want := make(peerIPs, peers)
	for i := range peers {
		pc := wgtypes.PeerConfig{PublicKey: peerKey(test, i)}
		var ss []string
		for j := range ipsPerPeer {
			var p netip.Prefix
			if j%2 == 0 {
				// 10.x.y.z/30, one /30 per (i, j): i < 2^14, j/2 < 2^4.
				v := uint32(10)<<24 | uint32(i)<<10 | uint32(j/2)<<2
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 30)
			} else {
				var a [16]byte
				a[0], a[1] = 0xfd, 0x00
				binary.BigEndian.PutUint32(a[4:8], uint32(i))
				binary.BigEndian.PutUint32(a[8:12], uint32(j))
				p = netip.PrefixFrom(netip.AddrFrom16(a), 96)
			}
			pc.AllowedIPs = append(pc.AllowedIPs, ipNet(p))
			ss = append(ss, p.String())
		}
		sort.Strings(ss)
		cfg = append(cfg, pc)
		want[pc.PublicKey] = ss
	}
	return cfg, want
}

// ---------------------------------------------------------------------------
// Raw generic netlink

// genlClient sends hand-built WireGuard generic netlink requests.
type genlClient struct {
	c   *genetlink.Conn
	fam genetlink.Family
}

// genl dials generic netlink inside the namespace and resolves the
// "wireguard" family.
func (n *testNS) genl(t *testing.T) *genlClient {
	t.Helper()
	c, err := genetlink.Dial(&netlink.Config{NetNS: int(n.ns)})
	if err != nil {
		t.Fatalf("dial generic netlink: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	fam, err := c.GetFamily(genlName)
	if err != nil {
		t.Fatalf("resolve generic netlink family %q: %v", genlName, err)
	}
	if fam.Version != genlVersion {
		t.Errorf("family %q version: want %d, got %d", genlName, genlVersion, fam.Version)
	}
	return &genlClient{c: c, fam: fam}
}

// genlMsg is a WireGuard generic netlink message with raw attribute bytes.
func genlMsg(cmd uint8, attrs []byte) genetlink.Message {
	return genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: genlVersion},
		Data:   attrs,
	}
}

// set sends WG_CMD_SET_DEVICE with the given attribute bytes and waits for
// the acknowledgement.
func (g *genlClient) set(attrs []byte) error {
	_, err := g.c.Execute(genlMsg(cmdSetDevice, attrs), g.fam.ID, netlink.Request|netlink.Acknowledge)
	return err
}

// get sends WG_CMD_GET_DEVICE as a dump with the given attribute bytes.
func (g *genlClient) get(attrs []byte) ([]genetlink.Message, error) {
	return g.c.Execute(genlMsg(cmdGetDevice, attrs), g.fam.ID, netlink.Request|netlink.Dump)
}

// nlattr hand-builds one attribute whose header claims length hdrLen
// (0 means the true length), padded to 4 bytes. A claimed length larger
// than the payload makes a truncated attribute.
func nlattr(typ uint16, hdrLen int, payload []byte) []byte {
	if hdrLen == 0 {
		hdrLen = 4 + len(payload)
	}
	b := make([]byte, 4, 4+len(payload)+3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(hdrLen))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u16(v uint16) []byte { return binary.NativeEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// cstring is a NUL-terminated attribute payload.
func cstring(s string) []byte { return append([]byte(s), 0) }

// sockaddrIn builds a struct sockaddr_in (port in network byte order).
func sockaddrIn(addr netip.Addr, port uint16) []byte {
	b := make([]byte, sizeofSockIn)
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:4], port)
	a := addr.As4()
	copy(b[4:8], a[:])
	return b
}

// sockaddrIn6 builds a struct sockaddr_in6 (port in network byte order).
func sockaddrIn6(addr netip.Addr, port uint16) []byte {
	b := make([]byte, sizeofSockIn6)
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:4], port)
	a := addr.As16()
	copy(b[8:24], a[:])
	return b
}

// errnoOf extracts the errno from a netlink error, or 0.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// errUnknownFlags stands, in a test's table, for the errno that unknown
// bits in a flags attribute fail with: EINVAL, from the flag masks of the
// policies generated from the family's netlink spec (upstream since 7.2).
// Upstream's module before 7.2 checked the bits in its handlers and said
// EOPNOTSUPP; errnoMatches accepts that from the upstream module alone.
const errUnknownFlags = unix.Errno(1 << 20)

// errnoMatches reports whether got is the errno want, with errUnknownFlags
// as above.
func errnoMatches(got, want unix.Errno) bool {
	if want != errUnknownFlags {
		return got == want
	}
	return got == unix.EINVAL ||
		(got == unix.EOPNOTSUPP && os.Getenv(manifest.ModuleEnv) == manifest.ModuleUpstream)
}

func errnoName(e unix.Errno) string {
	if e == errUnknownFlags {
		return "EINVAL (unknown flag bits)"
	}
	if e == 0 {
		return "no errno"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

// ---------------------------------------------------------------------------
// Raw dump socket, for reading a GET_DEVICE dump one datagram at a time.

type rawGenl struct {
	fd  int
	pid uint32
	seq uint32
}

// rawGenlSocket opens a NETLINK_GENERIC socket in the namespace with a
// small receive buffer, so the kernel produces the dump in parts.
func (n *testNS) rawGenlSocket(t *testing.T, rcvbuf int) *rawGenl {
	t.Helper()
	var fd int
	if err := inNetns(n.ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
		return err
	}); err != nil {
		t.Fatalf("open raw generic netlink socket: %v", err)
	}
	r := &rawGenl{fd: fd}
	t.Cleanup(func() { r.close() })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
		t.Fatalf("SO_RCVBUF: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatalf("bind netlink socket: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	r.pid = sa.(*unix.SockaddrNetlink).Pid
	return r
}

func (r *rawGenl) close() {
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// sendDump sends WG_CMD_GET_DEVICE|NLM_F_DUMP for ifname.
func (r *rawGenl) sendDump(family uint16, ifname string) error {
	r.seq++
	attrs := nlattr(deviceAIfname, 0, cstring(ifname))
	b := make([]byte, unix.SizeofNlMsghdr+4, unix.SizeofNlMsghdr+4+len(attrs))
	binary.NativeEndian.PutUint32(b[0:4], uint32(unix.SizeofNlMsghdr+4+len(attrs)))
	binary.NativeEndian.PutUint16(b[4:6], family)
	binary.NativeEndian.PutUint16(b[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(b[8:12], r.seq)
	binary.NativeEndian.PutUint32(b[12:16], r.pid)
	b[16] = cmdGetDevice
	b[17] = genlVersion
	b = append(b, attrs...)
	return unix.Sendto(r.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// recv reads one datagram, waiting at most timeout.
func (r *rawGenl) recv(timeout time.Duration) ([]syscall.NetlinkMessage, error) {
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(r.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	buf := make([]byte, 1<<17)
	for {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return nil, fmt.Errorf("no netlink message within %v", timeout)
		}
		if err != nil {
			return nil, err
		}
		return syscall.ParseNetlinkMessage(buf[:n])
	}
}

// dumpReader accumulates a GET_DEVICE dump that arrives in parts.
type dumpReader struct {
	messages int  // WG_CMD_GET_DEVICE messages seen
	intr     bool // some message (data or DONE) carried NLM_F_DUMP_INTR
	done     bool // NLMSG_DONE seen
	err      error
	peers    map[wgtypes.Key]map[string]bool
	lastPeer wgtypes.Key // last peer in the most recent message
	nests    []peerNest  // every peer nest, in the order received
	inMsg    int         // peer nests seen so far in the current message
}

// peerNest records one peer nest of a dump: the message it came in, whether
// it was the first peer of that message, and the attribute types it held.
type peerNest struct {
	msg   int
	first bool
	key   wgtypes.Key
	attrs []uint16
}

func newDumpReader() *dumpReader {
	return &dumpReader{peers: map[wgtypes.Key]map[string]bool{}}
}

// finished reports whether the dump has ended (cleanly or with an error).
func (d *dumpReader) finished() bool { return d.done || d.err != nil }

// add consumes one datagram; a parse failure of the kernel's own output is
// returned as an error (the test fails), a netlink error ends the dump.
func (d *dumpReader) add(msgs []syscall.NetlinkMessage) error {
	for _, m := range msgs {
		if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
			d.intr = true
		}
		switch m.Header.Type {
		case unix.NLMSG_DONE:
			d.done = true
			if len(m.Data) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(m.Data[:4])); e != 0 {
					d.err = unix.Errno(-e)
				}
			}
			return nil
		case unix.NLMSG_ERROR:
			if len(m.Data) < 4 {
				return fmt.Errorf("short NLMSG_ERROR (%d bytes)", len(m.Data))
			}
			e := int32(binary.NativeEndian.Uint32(m.Data[:4]))
			if e == 0 {
				return fmt.Errorf("unexpected ACK inside a dump")
			}
			d.err = unix.Errno(-e)
			return nil
		}
		if len(m.Data) < 4 {
			return fmt.Errorf("message type %d: %d bytes, no genl header", m.Header.Type, len(m.Data))
		}
		if m.Data[0] != cmdGetDevice {
			return fmt.Errorf("dump message with genl command %d, want %d", m.Data[0], cmdGetDevice)
		}
		d.messages++
		d.inMsg = 0
		if err := d.parse(m.Data[4:]); err != nil {
			return fmt.Errorf("dump message %d: %w", d.messages, err)
		}
	}
	return nil
}

func (d *dumpReader) parse(b []byte) error {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return err
	}
	for ad.Next() {
		switch ad.Type() {
		case deviceAPeers:
			ad.Nested(func(pad *netlink.AttributeDecoder) error {
				for pad.Next() {
					pad.Nested(d.parsePeer)
				}
				return nil
			})
		}
	}
	return ad.Err()
}

func (d *dumpReader) parsePeer(ad *netlink.AttributeDecoder) error {
	var key wgtypes.Key
	var haveKey bool
	var ips []string
	var types []uint16
	for ad.Next() {
		types = append(types, ad.Type())
		switch ad.Type() {
		case peerAPublicKey:
			b := ad.Bytes()
			if len(b) != keyLen {
				return fmt.Errorf("peer public key of %d bytes", len(b))
			}
			copy(key[:], b)
			haveKey = true
		case peerAAllowedIPs:
			ad.Nested(func(aad *netlink.AttributeDecoder) error {
				for aad.Next() {
					aad.Nested(func(ipd *netlink.AttributeDecoder) error {
						var family uint16
						var addr []byte
						var cidr uint8
						for ipd.Next() {
							switch ipd.Type() {
							case allowedIPAFamily:
								family = ipd.Uint16()
							case allowedIPAIPAddr:
								addr = ipd.Bytes()
							case allowedIPACidrMask:
								cidr = ipd.Uint8()
							}
						}
						a, ok := netip.AddrFromSlice(addr)
						if !ok || (family == unix.AF_INET) != a.Is4() {
							return fmt.Errorf("allowed IP with family %d and %d address bytes", family, len(addr))
						}
						ips = append(ips, netip.PrefixFrom(a, int(cidr)).String())
						return nil
					})
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return err
	}
	if !haveKey {
		return fmt.Errorf("peer without public key")
	}
	set, ok := d.peers[key]
	if !ok {
		set = map[string]bool{}
		d.peers[key] = set
	}
	for _, ip := range ips {
		set[ip] = true
	}
	d.lastPeer = key
	d.nests = append(d.nests, peerNest{msg: d.messages, first: d.inMsg == 0, key: key, attrs: types})
	d.inMsg++
	return nil
}

// peerIPs returns the accumulated peers in the form diffPeerIPs compares.
func (d *dumpReader) peerIPs() peerIPs {
	m := make(peerIPs, len(d.peers))
	for k, set := range d.peers {
		ss := make([]string, 0, len(set))
		for s := range set {
			ss = append(ss, s)
		}
		sort.Strings(ss)
		m[k] = ss
	}
	return m
}

// readAll keeps reading until the dump ends or the deadline passes.
func (d *dumpReader) readAll(r *rawGenl, deadline time.Time) error {
	for !d.finished() {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("dump did not end before the deadline (%d messages so far)", d.messages)
		}
		msgs, err := r.recv(left)
		if err != nil {
			return fmt.Errorf("after %d dump messages: %w", d.messages, err)
		}
		if err := d.add(msgs); err != nil {
			return err
		}
	}
	return nil
}
