package guest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

// Two kernel WireGuard devices in two network namespaces, A and B, whose
// UDP packets cross a veth pair:
//
//	namespace A                            namespace B
//	wg0 10.0.0.1/24 fd00::1/64             wg0 10.0.0.2/24 fd00::2/64
//	    UDP port tunPortA                      UDP port tunPortB
//	va  192.168.241.1/24 fd00:aa::1/64 ─── vb  192.168.241.2/24 fd00:aa::2/64
//
// The outer family (the one of the UDP packets on the veth) is the family of
// the endpoints each side is configured with.

const (
	tunDev   = "wg0"
	tunVethA = "va"
	tunVethB = "vb"
	tunPortA = 51820
	tunPortB = 51821
	// tunMTU is the default MTU of a wireguard link (upstream's, 1500
	// minus the overhead of an IPv6 outer header).
	tunMTU = 1420
)

// The suite's waits, under TCG, times the kernel's time scale (see
// scaled).
var (
	// tunFirstWait bounds a reply that waits for a handshake.
	tunFirstWait = scaled(10 * time.Second)
	// tunWait bounds a reply over an established session.
	tunWait = scaled(3 * time.Second)
	// tunRefusedWait is how long a reply that must not come is awaited
	// when it would come within a second: a handshake that must fail.
	tunRefusedWait = scaled(3 * time.Second)
	// tunQuiet is how long a socket must stay silent for a packet to count
	// as not delivered (after a later packet has already arrived).
	tunQuiet = scaled(time.Second)
	// tunSettle is how long a counter must stay unchanged to be read as
	// final.
	tunSettle = scaled(200 * time.Millisecond)
	// tunCrossedWait bounds a handshake when both sides have initiations
	// to retry (see pingUntil): nine rounds of WG_REKEY_TIMEOUT.
	tunCrossedWait = scaled(45 * time.Second)
	// tunTransferWait bounds one bulk TCP transfer.
	tunTransferWait = scaled(3 * time.Minute)
)

// tunTransferSize is the size of each bulk TCP transfer: 4 MiB (enough
// for many GSO windows and a SHA-256 check: sized for correctness; speed
// is make bench's), or WGVM_TRANSFER_MIB MiB (make test asks for 16). The
// offload and MTU tests move an eighth and a half of it per transfer.
func tunTransferSize(t *testing.T) int {
	return envCount(t, manifest.TransferMiBEnv, 4) << 20
}

var (
	tunOuterA4 = netip.MustParseAddr("192.168.241.1")
	tunOuterA6 = netip.MustParseAddr("fd00:aa::1")
	tunOuterB4 = netip.MustParseAddr("192.168.241.2")
	tunOuterB6 = netip.MustParseAddr("fd00:aa::2")
	tunInnerA4 = netip.MustParseAddr("10.0.0.1")
	tunInnerA6 = netip.MustParseAddr("fd00::1")
	tunInnerB4 = netip.MustParseAddr("10.0.0.2")
	tunInnerB6 = netip.MustParseAddr("fd00::2")
)

// tunFamilies are the two address families, for subtests over both.
var tunFamilies = []struct {
	name string
	v6   bool
}{{"ipv4", false}, {"ipv6", true}}

// TestTunnelPing: ICMP echo over the tunnel, both ways, inner IPv4 and IPv6
// (the first one starts the handshake).
func TestTunnelPing(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	for _, dir := range []struct {
		name     string
		from, to *tunSide
	}{
		{"A_to_B", tn.a, tn.b},
		{"B_to_A", tn.b, tn.a},
	} {
		for _, fam := range tunFamilies {
			t.Run(dir.name+"_"+fam.name, func(t *testing.T) {
				if err := dir.from.ping(dir.to.inner(fam.v6)); err != nil {
					t.Fatalf("ping from %s to %s: %v", dir.from.name, dir.to.inner(fam.v6), err)
				}
			})
		}
	}
	// Each side sent two echo requests and two replies, and received as
	// many: the device's own counters saw them all (an IPv4 echo is at
	// least 28 bytes).
	for _, s := range []*tunSide{tn.a, tn.b} {
		st := s.stats(t)
		if st.TxPackets < 4 || st.RxPackets < 4 || st.TxBytes < 4*28 || st.RxBytes < 4*28 {
			t.Errorf("%s: device counters tx %d packets/%d bytes, rx %d packets/%d bytes; want at least 4 packets and 112 bytes each way",
				s.name, st.TxPackets, st.TxBytes, st.RxPackets, st.RxBytes)
		}
	}
}

// TestTunnelTCP sends tunTransferSize bytes over TCP from A to B for each
// pair of inner and outer families, checks their SHA-256 and logs the rate.
func TestTunnelTCP(t *testing.T) {
	isolated(t)
	// The data and its hash are computed once, outside the timed part;
	// the receiver stores what it reads and hashes it afterwards, so that
	// the measured rate is the tunnel's and not SHA-256's under TCG.
	start := time.Now()
	data, sum, recv := transferData(t, 7, tunTransferSize(t))
	t.Logf("generated %d bytes in %v", len(data), time.Since(start).Round(time.Millisecond))

	for _, c := range []struct {
		name           string
		inner6, outer6 bool
	}{
		{"v4_in_v4", false, false},
		{"v6_in_v6", true, true},
		{"v4_in_v6", false, true},
		{"v6_in_v4", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tn := newTunnel(t, tunConfig{outer6: c.outer6})
			tn.establish(t)
			tn.tcpTransfer(t, c.name, tn.b.inner(c.inner6), data, sum, recv)
			// Each side's endpoint follows the newest packet from the
			// other: both still in the configured outer family means
			// the transfer crossed the veth in that family.
			for _, s := range []*tunSide{tn.a, tn.b} {
				want := tn.other(s).endpoint(c.outer6)
				if got := endpointString(s.peer(t).Endpoint); got != want.String() {
					t.Errorf("after the transfer, %s's endpoint for its peer is %q, want %s (the outer family of the test)", s.name, got, want)
				}
			}
		})
	}
}

// TestTunnelMTU: the default MTU; a datagram that fills it exactly arrives
// intact, in both outer families (an IPv6 outer packet is then exactly
// 1500 bytes, the veth's MTU); one byte more with DF is refused by the
// sender; a larger one without DF is fragmented and reassembled.
func TestTunnelMTU(t *testing.T) {
	isolated(t)
	for _, outer := range tunFamilies {
		t.Run("outer_"+outer.name, func(t *testing.T) {
			tn := newTunnel(t, tunConfig{outer6: outer.v6})
			for _, s := range []*tunSide{tn.a, tn.b} {
				if mtu := s.link(t, tunDev).Attrs().MTU; mtu != tunMTU {
					t.Fatalf("%s: %s MTU is %d, want the default %d", s.name, tunDev, mtu, tunMTU)
				}
			}
			tn.establish(t)
			for _, inner := range tunFamilies {
				t.Run("inner_"+inner.name, func(t *testing.T) {
					tn.checkMTU(t, inner.v6)
				})
			}
		})
	}
}

// TestTunnelNoPeer: a packet no peer can take (no owner, or an owner
// without an endpoint) fails the sending call as upstream does, comes back
// as ICMP unreachable and counts as a transmit error.
func TestTunnelNoPeer(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	// A second peer of A owns 10.0.0.77 and fd00::77 but has no endpoint.
	tn.a.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{
		PublicKey:  newPrivateKey(t).PublicKey(),
		AllowedIPs: prefixes(t, "10.0.0.77/32", "fd00::77/128"),
	}}})
	const (
		icmp4 = "ICMP 3/1 (host unreachable)"
		icmp6 = "ICMPv6 1/3 (address unreachable)"
	)
	for _, c := range []struct {
		name string
		dst  netip.Addr
		// What upstream's ndo_start_xmit returns, which the sending
		// call reports ("ping: sendmsg: Required key not available").
		sendErr    unix.Errno
		origin     uint8
		typ, code  uint8
		typeString string
	}{
		{"ipv4", netip.MustParseAddr("10.0.0.99"), unix.ENOKEY, unix.SO_EE_ORIGIN_ICMP, 3, 1, icmp4},
		{"ipv6", netip.MustParseAddr("fd00::99"), unix.ENOKEY, unix.SO_EE_ORIGIN_ICMP6, 1, 3, icmp6},
		{"no_endpoint_ipv4", netip.MustParseAddr("10.0.0.77"), unix.EDESTADDRREQ, unix.SO_EE_ORIGIN_ICMP, 3, 1, icmp4},
		{"no_endpoint_ipv6", netip.MustParseAddr("fd00::77"), unix.EDESTADDRREQ, unix.SO_EE_ORIGIN_ICMP6, 1, 3, icmp6},
	} {
		t.Run(c.name, func(t *testing.T) {
			what := "which no peer owns"
			if c.sendErr == unix.EDESTADDRREQ {
				what = "owned by a peer without an endpoint"
			}
			before := tn.a.stats(t)
			sendErr, ee, offender, err := tn.a.udpError(t, netip.AddrPortFrom(c.dst, 9))
			if !errors.Is(sendErr, c.sendErr) {
				t.Errorf("send to %s, %s: got error %v, want %s (as upstream)", c.dst, what, sendErr, errnoName(c.sendErr))
			}
			if err != nil {
				t.Fatalf("UDP to %s, %s: %v", c.dst, what, err)
			}
			t.Logf("error queue: errno %s, origin %d, type %d, code %d, offender %v", errnoName(unix.Errno(ee.Errno)), ee.Origin, ee.Type, ee.Code, offender)
			if unix.Errno(ee.Errno) != unix.EHOSTUNREACH || ee.Origin != c.origin || ee.Type != c.typ || ee.Code != c.code {
				t.Errorf("error queue: got errno %s, origin %d, type %d, code %d; want EHOSTUNREACH from %s (origin %d)",
					errnoName(unix.Errno(ee.Errno)), ee.Origin, ee.Type, ee.Code, c.typeString, c.origin)
			}
			after := tn.a.stats(t)
			if after.TxErrors <= before.TxErrors {
				t.Errorf("A's %s tx_errors did not increase (%d before, %d after) for a packet it could not send", tunDev, before.TxErrors, after.TxErrors)
			}
		})
	}
}

// TestTunnelNoLinkLocal checks that a wireguard link gets no IPv6 link-local
// address (upstream sets addr_gen_mode none when the link goes up; the
// kernel would otherwise give an ARPHRD_NONE link a random one), and so
// that the stack sends nothing on its own over the tunnel, such as router
// solicitations that no peer could take.
func TestTunnelNoLinkLocal(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	for _, s := range []*tunSide{tn.a, tn.b} {
		addrs, err := dumpRetry(func() ([]vnl.Addr, error) { return s.rtnl.AddrList(s.link(t, tunDev), unix.AF_INET6) })
		if err != nil {
			t.Fatalf("%s: ip -6 addr show dev %s: %v", s.name, tunDev, err)
		}
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() {
				t.Errorf("%s: %s has the link-local address %s, want none", s.name, tunDev, a.IPNet)
			}
		}
	}
	// No test traffic: any transmit error is the stack's own packet.
	time.Sleep(2 * time.Second)
	for _, s := range []*tunSide{tn.a, tn.b} {
		if st := s.stats(t); st.TxErrors != 0 || st.TxPackets != 0 {
			t.Errorf("%s: %s counted %d tx_packets and %d tx_errors with no traffic sent through it", s.name, tunDev, st.TxPackets, st.TxErrors)
		}
	}
}

// TestTunnelAllowedIPsSource: B drops, and counts, inner packets from A
// whose source address B's peer entry for A does not allow.
func TestTunnelAllowedIPsSource(t *testing.T) {
	isolated(t)
	// A may send B anything from its /24 and /64; B accepts from A only
	// A's own /32 and /128.
	tn := newTunnel(t, tunConfig{
		aAllowed: []string{"10.0.0.0/24", "fd00::/64"},
		bAllowed: []string{"10.0.0.1/32", "fd00::1/128"},
	})
	tn.establish(t)
	for _, fam := range []struct {
		name    string
		spoofed netip.Prefix
	}{
		{"ipv4", netip.MustParsePrefix("10.0.0.50/24")},
		{"ipv6", netip.MustParsePrefix("fd00::50/64")},
	} {
		t.Run(fam.name, func(t *testing.T) {
			v6 := fam.spoofed.Addr().Is6()
			tn.a.addrAdd(t, tunDev, fam.spoofed)
			dst := netip.AddrPortFrom(tn.b.inner(v6), 7100)
			lis := tn.b.udpSocket(t, netip.AddrPortFrom(tn.b.inner(v6), 7100))
			spoof := tn.a.udpSocket(t, netip.AddrPortFrom(fam.spoofed.Addr(), 0))
			good := tn.a.udpSocket(t, netip.AddrPortFrom(tn.a.inner(v6), 0))

			// A valid datagram first: B's listener works.
			sendExpect(t, good, lis, dst, []byte("from A's own address"), tunWait)

			before := tn.b.stats(t)
			const spoofs = 3
			for i := range spoofs {
				if _, err := spoof.WriteToUDPAddrPort(fmt.Appendf(nil, "spoofed %d", i), dst); err != nil {
					t.Fatalf("A: send from %s: %v", fam.spoofed.Addr(), err)
				}
			}
			// Then a valid one: it is received after the spoofed ones
			// would have been (one peer, one ordered queue).
			marker := []byte("valid, after the spoofed ones")
			if _, err := good.WriteToUDPAddrPort(marker, dst); err != nil {
				t.Fatalf("A: send from %s: %v", tn.a.inner(v6), err)
			}
			got := readDatagrams(t, lis, marker, tunWait)
			for _, d := range got {
				if d.from.Addr().Unmap() == fam.spoofed.Addr() {
					t.Errorf("B delivered %q from %s, an address its peer A is not allowed to use", d.data, d.from)
				}
			}
			if len(got) == 0 || !bytes.Equal(got[len(got)-1].data, marker) {
				t.Fatalf("B did not receive the valid datagram sent after the spoofed ones within %v (got %d others)", tunWait, len(got))
			}
			// Packets sent from different CPUs may overtake each other:
			// give the spoofed ones time to arrive after the marker.
			for _, d := range readDatagrams(t, lis, nil, tunQuiet) {
				if d.from.Addr().Unmap() == fam.spoofed.Addr() {
					t.Errorf("B delivered %q from %s, an address its peer A is not allowed to use", d.data, d.from)
				}
			}
			after := tn.b.stats(t)
			t.Logf("B's %s counters after %d spoofed packets: rx_errors +%d, rx_dropped +%d, rx_frame_errors +%d, rx_packets +%d",
				tunDev, spoofs, after.RxErrors-before.RxErrors, after.RxDropped-before.RxDropped,
				after.RxFrameErrors-before.RxFrameErrors, after.RxPackets-before.RxPackets)
			if after.RxErrors == before.RxErrors && after.RxDropped == before.RxDropped {
				t.Errorf("B dropped %d packets with a source its peer may not use, but neither rx_errors (%d) nor rx_dropped (%d) of %s increased",
					spoofs, after.RxErrors, after.RxDropped, tunDev)
			}
		})
	}
}

// TestTunnelRoaming: when A's outer address changes, B's endpoint for A
// follows A's next packet, and B reaches A there.
func TestTunnelRoaming(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)
	oldEP := netip.AddrPortFrom(tunOuterA4, tunPortA)
	if got := endpointString(tn.b.peer(t).Endpoint); got != oldEP.String() {
		t.Fatalf("before roaming, B's endpoint for A is %q, want %s", got, oldEP)
	}

	// A moves to a new outer address; B is not told.
	newOuter := netip.MustParseAddr("192.168.241.3")
	tn.a.addrDel(t, tunVethA, netip.PrefixFrom(tunOuterA4, 24))
	tn.a.addrAdd(t, tunVethA, netip.PrefixFrom(newOuter, 24))
	newEP := netip.AddrPortFrom(newOuter, tunPortA)

	dst := netip.AddrPortFrom(tunInnerB4, 7200)
	lis := tn.b.udpSocket(t, dst)
	snd := tn.a.udpSocket(t, netip.AddrPortFrom(tunInnerA4, 0))
	sendExpect(t, snd, lis, dst, []byte("from A's new outer address"), tunWait)

	if got := endpointString(tn.b.peer(t).Endpoint); got != newEP.String() {
		t.Fatalf("after A's datagram from its new outer address, B's endpoint for A is %q, want %s", got, newEP)
	}
	if err := tn.b.ping(tunInnerA4); err != nil {
		t.Fatalf("ping from B to A after A moved to %s: %v", newOuter, err)
	}
}

// TestTunnelReplay re-injects a captured data message on the veth: B must
// not deliver it again, count it as received or move its endpoint for it,
// whether its counter is the newest, an older one in the window, or it
// comes from another address.
func TestTunnelReplay(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)

	dst := netip.AddrPortFrom(tunInnerB4, 7300)
	lis := tn.b.udpSocket(t, dst)
	snd := tn.a.udpSocket(t, netip.AddrPortFrom(tunInnerA4, 0))
	capture := tn.b.packetSocket(t, tunVethB)

	// 100 bytes of payload: a 128-byte inner packet, a 160-byte data
	// message (16 header + 128 + 16 tag), identifiable on the veth.
	payload := make([]byte, 100)
	for i := range payload {
		payload[i] = byte(i)
	}
	const wantMsgLen = 16 + 128 + 16
	sendExpect(t, snd, lis, dst, payload, tunWait)
	frame, err := capture.findDataMessage(tunPortA, tunPortB, wantMsgLen, tunWait)
	if err != nil {
		t.Fatalf("B's veth: no data message of %d bytes from port %d to %d: %v", wantMsgLen, tunPortA, tunPortB, err)
	}
	// The UDP checksum may be a partial one (left to veth's offload);
	// injected without offload it must be complete, or B's UDP layer
	// would drop the packet before WireGuard sees it.
	fixed, err := fixUDP4Checksum(frame)
	if err != nil {
		t.Fatalf("captured frame: %v", err)
	}

	// rx counters of B's device and of its peer, and UDP's count of
	// datagrams delivered to sockets (WireGuard's included).
	type counters struct{ packets, peerBytes, udpIn, udpCsumErr int64 }
	readOnce := func(t *testing.T) counters {
		st, udp := tn.b.stats(t), tn.b.snmp(t, "Udp")
		return counters{int64(st.RxPackets), tn.b.peer(t).ReceiveBytes, udp["InDatagrams"], udp["InCsumErrors"]}
	}
	// UDP counts an encapsulated datagram only once encap_rcv has
	// returned, which on a preempted vCPU can be after the inner
	// datagram has been delivered and read: read until two reads
	// tunSettle apart agree.
	read := func(t *testing.T) counters {
		t.Helper()
		c := readOnce(t)
		for deadline := time.Now().Add(tunWait); time.Now().Before(deadline); {
			time.Sleep(tunSettle)
			next := readOnce(t)
			if next == c {
				return c
			}
			c = next
		}
		t.Fatalf("B's rx counters did not settle within %v", tunWait)
		return c
	}
	inject := tn.a.packetSocket(t, tunVethA)
	endpointA := netip.AddrPortFrom(tunOuterA4, tunPortA)
	sent := 0 // fresh datagrams so far

	for _, round := range []struct {
		name, what string
		frame      []byte
	}{
		// The replay carries the newest counter B has seen.
		{"newest", "the replayed message", fixed},
		// Two newer messages have come in since (the previous round's
		// fresh datagrams): the counter is inside the window, its bit
		// set.
		{"older", "the replayed message, 2 behind the newest", fixed},
		// From an address A never used: authenticated but replayed, it
		// must not move B's endpoint for A either.
		{"other_source", "the replayed message from 192.168.241.9:4444", rewriteUDP4Source(fixed, netip.MustParseAddrPort("192.168.241.9:4444"))},
	} {
		ok := t.Run(round.name, func(t *testing.T) {
			statsBefore := tn.b.stats(t)
			c0 := read(t)
			if err := inject.send(round.frame); err != nil {
				t.Fatalf("A: inject %s on %s: %v", round.what, tunVethA, err)
			}
			if err := capture.waitFrame(round.frame, tunWait); err != nil {
				t.Fatalf("B's veth: %s did not arrive: %v", round.what, err)
			}
			// The capture sees the frame before B's stack has
			// processed it, perhaps on another CPU than the one the
			// next datagram arrives on.
			time.Sleep(300 * time.Millisecond)

			// Then fresh datagrams of the same size: once the first
			// is in, the replay has been through B's receive path;
			// the second measures what one genuine datagram adds to
			// the counters.
			fresh := func() {
				t.Helper()
				sent++
				msg := bytes.Clone(payload)
				msg[0] = byte(0x80 + sent)
				if _, err := snd.WriteToUDPAddrPort(msg, dst); err != nil {
					t.Fatalf("A: send: %v", err)
				}
				got := readDatagrams(t, lis, msg, tunWait)
				for _, d := range got {
					if bytes.Equal(d.data, payload) {
						t.Errorf("B delivered the replayed datagram a second time (%s)", round.what)
					}
				}
				if len(got) == 0 || !bytes.Equal(got[len(got)-1].data, msg) {
					t.Fatalf("B did not receive fresh datagram %d after %s within %v: the session broke (got %d others)", sent, round.what, tunWait, len(got))
				}
			}
			fresh()
			c1 := read(t)
			fresh()
			c2 := read(t)
			if late := readDatagrams(t, lis, nil, tunQuiet); len(late) > 0 {
				t.Errorf("B delivered %d more datagrams after the fresh ones (first: %d bytes)", len(late), len(late[0].data))
			}
			statsAfter := tn.b.stats(t)

			replay := counters{
				c1.packets - c0.packets - (c2.packets - c1.packets),
				c1.peerBytes - c0.peerBytes - (c2.peerBytes - c1.peerBytes),
				c1.udpIn - c0.udpIn - (c2.udpIn - c1.udpIn),
				c1.udpCsumErr - c0.udpCsumErr,
			}
			t.Logf("B, what %s added: Udp InDatagrams %+d, InCsumErrors %+d, %s rx_packets %+d, peer rx_bytes %+d; %s rx_errors +%d, rx_dropped +%d in the round",
				round.what, replay.udpIn, replay.udpCsumErr, tunDev, replay.packets, replay.peerBytes,
				tunDev, statsAfter.RxErrors-statsBefore.RxErrors, statsAfter.RxDropped-statsBefore.RxDropped)
			// The replay must have reached WireGuard's socket, or
			// the round proves nothing.
			if replay.udpIn != 1 || replay.udpCsumErr != 0 {
				t.Errorf("%s did not reach WireGuard's socket: it added %d to B's Udp InDatagrams and %d to InCsumErrors, want 1 and 0",
					round.what, replay.udpIn, replay.udpCsumErr)
			}
			if replay.packets != 0 || replay.peerBytes != 0 {
				t.Errorf("%s was counted as received data: it added %d to B's %s rx_packets and %d to its rx_bytes for A, want 0 and 0",
					round.what, replay.packets, tunDev, replay.peerBytes)
			}
			if got := endpointString(tn.b.peer(t).Endpoint); got != endpointA.String() {
				t.Errorf("after %s, B's endpoint for A is %q, want %s (only a new authenticated message may move it)", round.what, got, endpointA)
			}
		})
		if !ok {
			return
		}
	}
}

// ---------------------------------------------------------------------------
// The tunnel

type tunSide struct {
	*testNS
	name                           string
	key                            wgtypes.Key
	port                           int
	veth                           string
	outer4, outer6, inner4, inner6 netip.Addr
}

func (s *tunSide) outer(v6 bool) netip.Addr {
	if v6 {
		return s.outer6
	}
	return s.outer4
}

func (s *tunSide) inner(v6 bool) netip.Addr {
	if v6 {
		return s.inner6
	}
	return s.inner4
}

// endpoint is the side's UDP address in the given outer family.
func (s *tunSide) endpoint(v6 bool) netip.AddrPort {
	return netip.AddrPortFrom(s.outer(v6), uint16(s.port))
}

type tunnel struct{ a, b *tunSide }

func (tn *tunnel) other(s *tunSide) *tunSide {
	if s == tn.a {
		return tn.b
	}
	return tn.a
}

type tunConfig struct {
	outer6 bool // endpoints in IPv6
	// Allowed IPs of A's peer (B) and of B's peer (A); by default the
	// other side's inner /32 and /128.
	aAllowed, bAllowed []string
}

// newTunnel builds the two namespaces, the veth pair and the two configured
// wireguard devices; everything goes when the test ends.
func newTunnel(t *testing.T, cfg tunConfig) *tunnel {
	t.Helper()
	tn := &tunnel{
		a: &tunSide{testNS: newTestNS(t), name: "A", key: newPrivateKey(t), port: tunPortA, veth: tunVethA,
			outer4: tunOuterA4, outer6: tunOuterA6, inner4: tunInnerA4, inner6: tunInnerA6},
		b: &tunSide{testNS: newTestNS(t), name: "B", key: newPrivateKey(t), port: tunPortB, veth: tunVethB,
			outer4: tunOuterB4, outer6: tunOuterB6, inner4: tunInnerB4, inner6: tunInnerB6},
	}
	if cfg.aAllowed == nil {
		cfg.aAllowed = []string{"10.0.0.2/32", "fd00::2/128"}
	}
	if cfg.bAllowed == nil {
		cfg.bAllowed = []string{"10.0.0.1/32", "fd00::1/128"}
	}

	attrs := vnl.NewLinkAttrs()
	attrs.Name = tunVethA
	if err := tn.a.rtnl.LinkAdd(&vnl.Veth{LinkAttrs: attrs, PeerName: tunVethB, PeerNamespace: vnl.NsFd(int(tn.b.ns))}); err != nil {
		t.Fatalf("ip link add %s type veth peer %s netns B: %v", tunVethA, tunVethB, err)
	}
	t.Cleanup(func() {
		if l, err := tn.a.rtnl.LinkByName(tunVethA); err == nil {
			if err := tn.a.rtnl.LinkDel(l); err != nil {
				t.Errorf("cleanup: delete %s: %v", tunVethA, err)
			}
		}
	})

	for _, s := range []*tunSide{tn.a, tn.b} {
		s.up(t, "lo")
		s.addrAdd(t, s.veth, netip.PrefixFrom(s.outer4, 24))
		s.addrAdd(t, s.veth, netip.PrefixFrom(s.outer6, 64))
		s.up(t, s.veth)

		peer, allowed := tn.other(s), cfg.aAllowed
		if s == tn.b {
			allowed = cfg.bAllowed
		}
		s.addWG(t, tunDev)
		s.configure(t, tunDev, wgtypes.Config{
			PrivateKey:   &s.key,
			ListenPort:   ptr(s.port),
			ReplacePeers: true,
			Peers: []wgtypes.PeerConfig{{
				PublicKey:         peer.key.PublicKey(),
				Endpoint:          net.UDPAddrFromAddrPort(peer.endpoint(cfg.outer6)),
				ReplaceAllowedIPs: true,
				AllowedIPs:        prefixes(t, allowed...),
			}},
		})
		s.addrAdd(t, tunDev, netip.PrefixFrom(s.inner4, 24))
		s.addrAdd(t, tunDev, netip.PrefixFrom(s.inner6, 64))
		s.up(t, tunDev)
	}
	t.Cleanup(func() {
		if t.Failed() {
			tn.dumpState(t)
		}
	})
	return tn
}

// peerConfig is how side s knows its peer, the other side: its key, its
// endpoint in the given outer family, and its inner /32 and /128 as the
// only allowed IPs.
func (tn *tunnel) peerConfig(s *tunSide, outer6 bool) wgtypes.PeerConfig {
	o := tn.other(s)
	return wgtypes.PeerConfig{
		PublicKey:         o.key.PublicKey(),
		Endpoint:          net.UDPAddrFromAddrPort(o.endpoint(outer6)),
		ReplaceAllowedIPs: true,
		AllowedIPs:        []net.IPNet{ipNet(netip.PrefixFrom(o.inner4, 32)), ipNet(netip.PrefixFrom(o.inner6, 128))},
	}
}

// establish makes sure that a session is up (A initiates), so that a
// missing handshake fails here, once and clearly.
func (tn *tunnel) establish(t *testing.T) {
	t.Helper()
	if err := tn.a.ping(tn.b.inner4); err != nil {
		t.Fatalf("no session between A and B: ping %s from A: %v", tn.b.inner4, err)
	}
}

// addrAdd adds an address (host part kept) to a link, without DAD.
func (s *tunSide) addrAdd(t *testing.T, link string, p netip.Prefix) {
	t.Helper()
	ipn := ipNet(p)
	if err := s.rtnl.AddrAdd(s.link(t, link), &vnl.Addr{IPNet: &ipn, Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatalf("%s: ip addr add %s dev %s: %v", s.name, p, link, err)
	}
}

func (s *tunSide) addrDel(t *testing.T, link string, p netip.Prefix) {
	t.Helper()
	ipn := ipNet(p)
	if err := s.rtnl.AddrDel(s.link(t, link), &vnl.Addr{IPNet: &ipn}); err != nil {
		t.Fatalf("%s: ip addr del %s dev %s: %v", s.name, p, link, err)
	}
}

// stats reads the wireguard link's counters over rtnetlink.
func (s *tunSide) stats(t *testing.T) vnl.LinkStatistics {
	t.Helper()
	st := s.link(t, tunDev).Attrs().Statistics
	if st == nil {
		t.Fatalf("%s: no statistics for %s", s.name, tunDev)
	}
	return *st
}

// peer returns the wireguard device's only peer.
func (s *tunSide) peer(t *testing.T) wgtypes.Peer {
	t.Helper()
	d := s.device(t, tunDev)
	if len(d.Peers) != 1 {
		t.Fatalf("%s: %s has %d peers, want 1", s.name, tunDev, len(d.Peers))
	}
	return d.Peers[0]
}

// snmp reads one protocol's counters from /proc/net/snmp of the namespace
// ("Ip", "Udp", ...).
func (s *tunSide) snmp(t *testing.T, proto string) map[string]int64 {
	t.Helper()
	var b []byte
	// /proc/self/net is the main thread's namespace; thread-self is ours.
	if err := inNetns(s.ns, func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	}); err != nil {
		t.Fatalf("%s: read snmp counters: %v", s.name, err)
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		p, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || p != proto {
			continue
		}
		fields := strings.Fields(rest)
		if names == nil {
			names = fields
			continue
		}
		m := make(map[string]int64, len(names))
		for i, f := range fields {
			if i < len(names) {
				v, err := strconv.ParseInt(f, 10, 64)
				if err != nil {
					t.Fatalf("%s: snmp %s %s=%q: %v", s.name, proto, names[i], f, err)
				}
				m[names[i]] = v
			}
		}
		return m
	}
	t.Fatalf("%s: no %s counters in snmp", s.name, proto)
	return nil
}

// dumpState logs both sides in the style of `wg show` and `ip -s link`.
func (tn *tunnel) dumpState(t *testing.T) {
	t.Helper()
	var b strings.Builder
	for _, s := range []*tunSide{tn.a, tn.b} {
		fmt.Fprintf(&b, "namespace %s:\n", s.name)
		if d, err := s.wg.Device(tunDev); err != nil {
			fmt.Fprintf(&b, "  %s: wgctrl: %v\n", tunDev, err)
		} else {
			fmt.Fprintf(&b, "  interface %s: public key %s, port %d\n", d.Name, d.PublicKey, d.ListenPort)
			for _, p := range d.Peers {
				fmt.Fprintf(&b, "    peer %s: endpoint %v, allowed ips %s, latest handshake %s, %d B received, %d B sent\n",
					p.PublicKey, p.Endpoint, strings.Join(sortedPrefixes(p.AllowedIPs), ", "),
					wggoHandshakeString(p.LastHandshakeTime), p.ReceiveBytes, p.TransmitBytes)
			}
		}
		for _, name := range []string{tunDev, s.veth} {
			l, err := s.rtnl.LinkByName(name)
			if err != nil {
				fmt.Fprintf(&b, "  link %s: %v\n", name, err)
				continue
			}
			if st := l.Attrs().Statistics; st != nil {
				fmt.Fprintf(&b, "  link %s (%s): rx %d pkts %d B, errors %d, dropped %d; tx %d pkts %d B, errors %d, dropped %d\n",
					name, l.Attrs().OperState, st.RxPackets, st.RxBytes, st.RxErrors, st.RxDropped,
					st.TxPackets, st.TxBytes, st.TxErrors, st.TxDropped)
			}
		}
	}
	t.Log("state at failure:\n" + b.String())
}

// ---------------------------------------------------------------------------
// Traffic

// ping sends ICMP echo requests (see echo) to dst, up to three times, until
// one is answered.
func (s *tunSide) ping(dst netip.Addr) error {
	var err error
	for try := 1; try <= 3; try++ {
		wait := tunWait
		if try == 1 {
			wait = tunFirstWait
		}
		if err = s.echo(dst, 56, wait); !errors.Is(err, errNoReply) {
			return err
		}
	}
	return fmt.Errorf("no echo reply to 3 requests (waited %v, then %v each): %w", tunFirstWait, tunWait, err)
}

// pingUntil is ping for a tunnel whose two sides both have handshakes to
// retry (after churn under traffic in both directions): initiations that
// cross consume each other's handshake state, so that neither response
// is accepted, and only the retransmit timers' jitter (a third of a
// second) draws the two sides apart again; on a loaded guest, where a
// handshake message takes longer than that to be processed, that takes
// rounds of WG_REKEY_TIMEOUT. It sends an echo request each tunWait until
// one is answered or total has passed.
func (s *tunSide) pingUntil(dst netip.Addr, total time.Duration) error {
	deadline := time.Now().Add(total)
	tries := 0
	for {
		tries++
		err := s.echo(dst, 56, tunWait)
		if !errors.Is(err, errNoReply) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no echo reply to %d requests in %v: %w", tries, total, err)
		}
	}
}

// echo sends one ICMP echo request with size bytes of data from the side's
// namespace and waits for its reply. Unlike ping, it never retries, so
// that a test can count the packets it caused.
func (s *tunSide) echo(dst netip.Addr, size int, wait time.Duration) error {
	network, reqType, replyType := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() {
		network, reqType, replyType = "ip6:ipv6-icmp", 128, 129
	}
	var c *net.IPConn
	if err := inNetns(s.ns, func() error {
		var err error
		c, err = net.ListenIP(network, nil)
		return err
	}); err != nil {
		return fmt.Errorf("raw ICMP socket: %w", err)
	}
	defer c.Close()
	id := uint16(rand.Uint32())
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	msg := make([]byte, 8, 8+len(data))
	msg[0] = reqType
	binary.BigEndian.PutUint16(msg[4:6], id)
	binary.BigEndian.PutUint16(msg[6:8], 1)
	msg = append(msg, data...)
	if !dst.Is6() {
		binary.BigEndian.PutUint16(msg[2:4], inetChecksum(msg, 0))
	}
	if _, err := c.WriteToIP(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("send echo request: %w", err)
	}
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	buf := make([]byte, 65536)
	for {
		n, _, err := c.ReadFromIP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w within %v", errNoReply, wait)
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		r := buf[:n]
		if n < 8 || r[0] != replyType || binary.BigEndian.Uint16(r[4:6]) != id {
			continue
		}
		if !bytes.Equal(r[8:], data) {
			return fmt.Errorf("echo reply carries %d bytes of data that differ from the %d sent", n-8, len(data))
		}
		return nil
	}
}

// errNoReply is echo's error when no reply came in time.
var errNoReply = errors.New("no echo reply")

// inetChecksum is the Internet checksum of b, starting from sum.
func inetChecksum(b []byte, sum uint32) uint16 {
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// udpSocket binds a UDP socket in the namespace; port 0 picks one.
func (s *tunSide) udpSocket(t *testing.T, laddr netip.AddrPort) *net.UDPConn {
	t.Helper()
	network := "udp4"
	if laddr.Addr().Is6() {
		network = "udp6"
	}
	var c *net.UDPConn
	if err := inNetns(s.ns, func() error {
		var err error
		c, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(laddr))
		return err
	}); err != nil {
		t.Fatalf("%s: bind udp %s: %v", s.name, laddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type tunDatagram struct {
	from netip.AddrPort
	data []byte
}

// readDatagrams reads datagrams from c until one equal to until arrives
// (it is the last one returned) or wait passes.
func readDatagrams(t *testing.T, c *net.UDPConn, until []byte, wait time.Duration) []tunDatagram {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	var got []tunDatagram
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatalf("read from %v: %v", c.LocalAddr(), err)
		}
		got = append(got, tunDatagram{from, bytes.Clone(buf[:n])})
		if until != nil && bytes.Equal(buf[:n], until) {
			return got
		}
	}
}

// sendExpect sends msg from snd to dst and checks that lis receives it
// intact, and nothing else first.
func sendExpect(t *testing.T, snd, lis *net.UDPConn, dst netip.AddrPort, msg []byte, wait time.Duration) {
	t.Helper()
	if _, err := snd.WriteToUDPAddrPort(msg, dst); err != nil {
		t.Fatalf("send %d bytes from %v to %s: %v", len(msg), snd.LocalAddr(), dst, err)
	}
	got := readDatagrams(t, lis, msg, wait)
	if len(got) == 0 || !bytes.Equal(got[len(got)-1].data, msg) {
		t.Fatalf("%d-byte datagram from %v to %s: not received intact within %v (%d other datagrams)", len(msg), snd.LocalAddr(), dst, wait, len(got))
	}
	if len(got) > 1 {
		t.Errorf("%d unexpected datagrams arrived at %s before the one sent (first: %d bytes from %s)", len(got)-1, dst, len(got[0].data), got[0].from)
	}
}

// checkMTU sends, from A to B, a datagram that fills the inner MTU exactly
// with the DF bit (or IPv6's don't-fragment), one byte more (refused at
// the sender with EMSGSIZE) and, without DF, a datagram of twice the MTU
// (fragmented before the tunnel, reassembled by B).
func (tn *tunnel) checkMTU(t *testing.T, v6 bool) {
	hdr := 20 + 8
	if v6 {
		hdr = 40 + 8
	}
	dst := netip.AddrPortFrom(tn.b.inner(v6), 7400)
	lis := tn.b.udpSocket(t, dst)
	df := tn.a.udpSocket(t, netip.AddrPortFrom(tn.a.inner(v6), 0))
	frag := tn.a.udpSocket(t, netip.AddrPortFrom(tn.a.inner(v6), 0))
	setPMTUD(t, df, v6, true)
	setPMTUD(t, frag, v6, false)

	full := make([]byte, tunMTU-hdr)
	for i := range full {
		full[i] = byte(i * 7)
	}
	sendExpect(t, df, lis, dst, full, tunWait)

	over := append(bytes.Clone(full), 0xff)
	_, err := df.WriteToUDPAddrPort(over, dst)
	if !errors.Is(err, unix.EMSGSIZE) {
		t.Errorf("sending %d bytes (a %d-byte packet, MTU %d) with DF: got error %v, want EMSGSIZE", len(over), len(over)+hdr, tunMTU, err)
	}

	big := make([]byte, 2*tunMTU)
	for i := range big {
		big[i] = byte(i * 13)
	}
	sendExpect(t, frag, lis, dst, big, tunWait)
}

// setPMTUD sets path MTU discovery on a UDP socket: on sets the DF bit
// (IPv4) or forbids fragmentation (IPv6); off lets the stack fragment.
func setPMTUD(t *testing.T, c *net.UDPConn, v6, on bool) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		switch {
		case !v6 && on:
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		case !v6:
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
		case on:
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO),
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1))
		default:
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT),
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 0))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("set path MTU discovery: %v", serr)
	}
}

// udpError sends a datagram to dst from a connected UDP socket with
// IP_RECVERR / IPV6_RECVERR and returns the send call's error and the first
// error queued on the socket, with its offender.
func (s *tunSide) udpError(t *testing.T, dst netip.AddrPort) (sendErr error, ee unix.SockExtendedErr, off netip.Addr, err error) {
	t.Helper()
	domain, level, opt := unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: dst.Addr().As16(), Port: int(dst.Port())}
	if dst.Addr().Is4() {
		domain, level, opt = unix.AF_INET, unix.IPPROTO_IP, unix.IP_RECVERR
		sa = &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())}
	}
	var fd int
	if err := inNetns(s.ns, func() error {
		var err error
		fd, err = unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatalf("%s: udp socket: %v", s.name, err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		t.Fatalf("%s: enable RECVERR: %v", s.name, err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatalf("%s: connect udp %s: %v", s.name, dst, err)
	}
	// The queue holds the details even when the call itself fails.
	sendErr = unix.Send(fd, []byte("to nobody"), 0)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLERR}}
	n, err := unix.Poll(fds, int(tunWait.Milliseconds()))
	if err != nil {
		return sendErr, ee, off, fmt.Errorf("poll: %w", err)
	}
	if n == 0 {
		return sendErr, ee, off, fmt.Errorf("no error reported on the socket within %v", tunWait)
	}
	buf, oob := make([]byte, 1500), make([]byte, 512)
	_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE)
	if err != nil {
		return sendErr, ee, off, fmt.Errorf("recvmsg(MSG_ERRQUEUE): %w", err)
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return sendErr, ee, off, fmt.Errorf("parse control messages: %w", err)
	}
	for _, m := range cmsgs {
		if int(m.Header.Level) != level || int(m.Header.Type) != opt {
			continue
		}
		const eeSize = 16 // struct sock_extended_err
		if len(m.Data) < eeSize {
			return sendErr, ee, off, fmt.Errorf("short extended error (%d bytes)", len(m.Data))
		}
		ee.Errno = binary.NativeEndian.Uint32(m.Data[0:4])
		ee.Origin, ee.Type, ee.Code = m.Data[4], m.Data[5], m.Data[6]
		ee.Info = binary.NativeEndian.Uint32(m.Data[8:12])
		// The offender's sockaddr follows.
		if rest := m.Data[eeSize:]; len(rest) >= 8 && binary.NativeEndian.Uint16(rest[0:2]) == unix.AF_INET {
			off = netip.AddrFrom4([4]byte(rest[4:8]))
		} else if len(rest) >= 24 && binary.NativeEndian.Uint16(rest[0:2]) == unix.AF_INET6 {
			off = netip.AddrFrom16([16]byte(rest[8:24]))
		}
		return sendErr, ee, off, nil
	}
	return sendErr, ee, off, fmt.Errorf("error queue: no RECVERR control message among %d", len(cmsgs))
}

// transferData returns size bytes of the seeded stream, their SHA-256 and a
// buffer of the same size to receive them into.
func transferData(t *testing.T, seed uint64, size int) (data []byte, sum [sha256.Size]byte, recv []byte) {
	t.Helper()
	data = make([]byte, size)
	if _, err := io.ReadFull(wggoStream(seed), data); err != nil {
		t.Fatal(err)
	}
	return data, sha256.Sum256(data), make([]byte, size)
}

// tcpTransfer sends data from A to dst (an address of B) over TCP, checks
// its SHA-256 on arrival and logs the rate.
func (tn *tunnel) tcpTransfer(t *testing.T, name string, dst netip.Addr, data []byte, sum [sha256.Size]byte, recv []byte) {
	t.Helper()
	addr := netip.AddrPortFrom(dst, 7500)
	var ln net.Listener
	if err := inNetns(tn.b.ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatalf("B: listen tcp %s: %v", addr, err)
	}
	defer ln.Close()

	type result struct {
		n    int
		done time.Time
		err  error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: fmt.Errorf("accept: %w", err)}
			return
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(tunTransferWait)); err != nil {
			res <- result{err: err}
			return
		}
		// Read until EOF: more than len(data) is an error too.
		n, err := io.ReadFull(c, recv)
		done := time.Now()
		if err == nil {
			var extra [1]byte
			if m, _ := c.Read(extra[:]); m > 0 {
				err = fmt.Errorf("more than the %d bytes sent", len(data))
			}
		} else if errors.Is(err, io.ErrUnexpectedEOF) {
			err = nil
		}
		res <- result{n, done, err}
	}()

	var c net.Conn
	if err := inNetns(tn.a.ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr.String(), tunFirstWait)
		return err
	}); err != nil {
		t.Fatalf("A: dial tcp %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(tunTransferWait)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Write(data); err != nil {
		t.Errorf("A: write: %v", err)
	} else if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Errorf("A: close write: %v", err)
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("B: after %d bytes: %v", r.n, r.err)
	}
	got := sha256.Sum256(recv[:r.n])
	if r.n != len(data) || got != sum {
		t.Fatalf("A → B over TCP: sent %d bytes (sha256 %x), B received %d bytes (sha256 %x)", len(data), sum, r.n, got)
	}
	elapsed := r.done.Sub(start)
	t.Logf("%s: %d bytes A → B in %v: %.2f MB/s", name, len(data), elapsed.Round(time.Millisecond), float64(len(data))/1e6/elapsed.Seconds())
}

// ---------------------------------------------------------------------------
// Frames on the veth

// tunPacketSocket is an AF_PACKET socket bound to one link.
type tunPacketSocket struct {
	fd      int
	ifindex int
}

func (s *tunSide) packetSocket(t *testing.T, link string) *tunPacketSocket {
	t.Helper()
	ifindex := s.link(t, link).Attrs().Index
	proto := int(htons(unix.ETH_P_ALL))
	var fd int
	if err := inNetns(s.ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		return err
	}); err != nil {
		t.Fatalf("%s: AF_PACKET socket: %v", s.name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		t.Fatalf("%s: bind AF_PACKET socket to %s: %v", s.name, link, err)
	}
	return &tunPacketSocket{fd: fd, ifindex: ifindex}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// next returns the next frame received (not sent) on the link, or an
// error after the deadline.
func (p *tunPacketSocket) next(deadline time.Time) ([]byte, error) {
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("deadline passed")
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, err
		}
		n, from, err := unix.Recvfrom(p.fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return nil, fmt.Errorf("deadline passed")
		}
		if err != nil {
			return nil, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && (ll.Ifindex != p.ifindex || ll.Pkttype == unix.PACKET_OUTGOING) {
			continue
		}
		return bytes.Clone(buf[:n]), nil
	}
}

// findDataMessage waits for an IPv4/UDP frame from port sport to dport
// that carries a WireGuard data message (type 4) of msgLen bytes.
func (p *tunPacketSocket) findDataMessage(sport, dport uint16, msgLen int, wait time.Duration) ([]byte, error) {
	deadline := time.Now().Add(wait)
	seen := 0
	for {
		f, err := p.next(deadline)
		if err != nil {
			return nil, fmt.Errorf("%w (%d other frames)", err, seen)
		}
		seen++
		ip, udp, ok := udp4Of(f)
		if !ok {
			continue
		}
		msg := udp[8:]
		if binary.BigEndian.Uint16(udp[0:2]) == sport && binary.BigEndian.Uint16(udp[2:4]) == dport &&
			len(msg) == msgLen && binary.LittleEndian.Uint32(msg[0:4]) == 4 && ip[9] == unix.IPPROTO_UDP {
			return f, nil
		}
	}
}

// waitFrame waits for a frame equal to want.
func (p *tunPacketSocket) waitFrame(want []byte, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		f, err := p.next(deadline)
		if err != nil {
			return err
		}
		if bytes.Equal(f, want) {
			return nil
		}
	}
}

// send transmits a whole Ethernet frame on the link.
func (p *tunPacketSocket) send(frame []byte) error {
	return unix.Sendto(p.fd, frame, 0, &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_IP),
		Ifindex:  p.ifindex,
		Halen:    6,
		Addr:     [8]byte(append(bytes.Clone(frame[0:6]), 0, 0)),
	})
}

// udp4Of splits an Ethernet frame into its IPv4 header and UDP datagram.
func udp4Of(f []byte) (ip, udp []byte, ok bool) {
	if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_IP {
		return nil, nil, false
	}
	ip = f[14:]
	ihl := int(ip[0]&0xf) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl+8 || ip[9] != unix.IPPROTO_UDP {
		return nil, nil, false
	}
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if total < ihl+8 || total > len(ip) {
		return nil, nil, false
	}
	ip = ip[:total]
	return ip[:ihl], ip[ihl:], true
}

// rewriteUDP4Source returns a copy of an IPv4/UDP frame from another source
// address and port, with both checksums recomputed.
func rewriteUDP4Source(f []byte, src netip.AddrPort) []byte {
	f = bytes.Clone(f)
	ip, udp, ok := udp4Of(f)
	if !ok {
		panic("rewriteUDP4Source: not an IPv4/UDP frame")
	}
	a := src.Addr().As4()
	copy(ip[12:16], a[:])
	binary.BigEndian.PutUint16(udp[0:2], src.Port())
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:12], inetChecksum(ip, 0))
	f, err := fixUDP4Checksum(f)
	if err != nil {
		panic(err)
	}
	return f
}

// fixUDP4Checksum returns a copy of an IPv4/UDP frame with a complete UDP
// checksum.
func fixUDP4Checksum(f []byte) ([]byte, error) {
	f = bytes.Clone(f)
	ip, udp, ok := udp4Of(f)
	if !ok {
		return nil, fmt.Errorf("not an IPv4/UDP frame")
	}
	udp[6], udp[7] = 0, 0
	var sum uint32
	for i := 12; i < 20; i += 2 { // pseudo-header: addresses
		sum += uint32(binary.BigEndian.Uint16(ip[i : i+2]))
	}
	sum += unix.IPPROTO_UDP + uint32(len(udp))
	c := inetChecksum(udp, sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
	return f, nil
}
