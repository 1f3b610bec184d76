package guest

// Behaviour that upstream WireGuard defines and the kernel's own selftest
// (tools/testing/selftests/wireguard/netns.sh) checks: byte counters,
// padding to the route's MTU, private key changes, replies from the address
// the peer used, the dump's shape. Each test here failed on our driver
// before it matched upstream.

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	vnl "github.com/vishvananda/netlink"
	"github.com/wgkit/wgkit/initramfs/manifest"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Sizes of WireGuard messages, and of a data message carrying an inner
// packet of n bytes: a 16-byte header, the packet padded to 16, a 16-byte
// tag.
const (
	msgInitiationLen = 148
	msgResponseLen   = 92
	msgKeepaliveLen  = 32
)

func msgDataLen(n int) int { return 16 + (n+15)/16*16 + 16 }

// TestTunnelByteCounters: upstream counts WireGuard message bytes
// (handshake and data messages, without the outer IP and UDP headers), for
// the device (ip -s link) and for the peer (wg show transfer), rx and tx.
// After ten IPv4 echoes from a fresh pair the pinging side has received a
// response and ten replies, and sent an initiation and ten requests (and
// perhaps a keepalive): netns.sh's first check, 1372 and 1428 (or 1460).
func TestTunnelByteCounters(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	const echoes, payload = 10, 56 // ping's default: 84-byte packets
	for i := 0; i < echoes; i++ {
		wait := tunWait
		if i == 0 {
			wait = tunFirstWait
		}
		if err := tn.a.echo(tn.b.inner4, payload, wait); err != nil {
			t.Fatalf("echo %d from A to B: %v", i+1, err)
		}
	}
	data := echoes * msgDataLen(20+8+payload)
	sent := []int64{int64(msgInitiationLen + data), int64(msgInitiationLen + data + msgKeepaliveLen)}
	received := int64(msgResponseLen + data)
	for _, c := range []struct {
		side   *tunSide
		rx, tx []int64
	}{
		{tn.a, []int64{received}, sent},
		{tn.b, sent, []int64{received}},
	} {
		st := c.side.stats(t)
		p := c.side.peer(t)
		for _, v := range []struct {
			what string
			got  int64
			want []int64
		}{
			{"device rx_bytes", int64(st.RxBytes), c.rx},
			{"device tx_bytes", int64(st.TxBytes), c.tx},
			{"peer rx bytes", p.ReceiveBytes, c.rx},
			{"peer tx bytes", p.TransmitBytes, c.tx},
		} {
			if !slices.Contains(v.want, v.got) {
				t.Errorf("%s: %s = %d, want one of %v (WireGuard message bytes, as upstream counts)", c.side.name, v.what, v.got, v.want)
			}
		}
	}
}

// TestTunnelRouteMTUPadding: padding fills a packet up to the MTU of its
// route, which may be less than the device's: with the device at 1300 and
// a route of MTU 1299, a 1297-byte packet is padded to 1299, not 1300
// (netns.sh drops outer packets one byte too large to see it).
func TestTunnelRouteMTUPadding(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	if err := tn.a.rtnl.LinkSetMTU(tn.a.link(t, tunDev), 1300); err != nil {
		t.Fatalf("A: ip link set %s mtu 1300: %v", tunDev, err)
	}
	dst := ipNet(netip.PrefixFrom(tn.b.inner4, 32))
	if err := tn.a.rtnl.RouteAdd(&vnl.Route{LinkIndex: tn.a.link(t, tunDev).Attrs().Index, Dst: &dst, MTU: 1299}); err != nil {
		t.Fatalf("A: ip route add %s dev %s mtu 1299: %v", dst.String(), tunDev, err)
	}
	tn.establish(t)
	capture := tn.b.packetSocket(t, tunVethB)
	const packet = 1297
	if err := tn.a.echo(tn.b.inner4, packet-28, tunWait); err != nil {
		t.Fatalf("echo of %d bytes from A to B: %v", packet, err)
	}
	want := 16 + 1299 + 16
	if _, err := capture.findDataMessage(tunPortA, tunPortB, want, tunQuiet); err != nil {
		t.Errorf("B's veth: no data message of %d bytes (a %d-byte packet padded to the route's MTU 1299): %v", want, packet, err)
	}
}

// TestTunnelPrivateKeyChange: a new private key ends the sessions made
// with the old one and lets a handshake start at once, without waiting for
// the usual 5 s between initiations; the same key set again (wg syncconf,
// or setconf of an unchanged file) leaves the sessions alone.
func TestTunnelPrivateKeyChange(t *testing.T) {
	isolated(t)
	t.Run("same_key", func(t *testing.T) {
		tn := newTunnel(t, tunConfig{})
		tn.establish(t)
		before := tn.a.peer(t).LastHandshakeTime
		tn.a.configure(t, tunDev, wgtypes.Config{PrivateKey: &tn.a.key})
		if err := tn.a.echo(tn.b.inner4, 56, tunWait); err != nil {
			t.Fatalf("echo from A to B after setting the same key: %v", err)
		}
		if after := tn.a.peer(t).LastHandshakeTime; !after.Equal(before) {
			t.Errorf("setting the same private key again started a new handshake (last handshake %v, then %v): the session should have stayed", before, after)
		}
	})
	t.Run("new_key", func(t *testing.T) {
		tn := newTunnel(t, tunConfig{})
		tn.establish(t)
		oldPub := tn.a.key.PublicKey()
		tn.a.key = newPrivateKey(t)
		tn.a.configure(t, tunDev, wgtypes.Config{PrivateKey: &tn.a.key})
		tn.b.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{
			{PublicKey: oldPub, Remove: true},
			{PublicKey: tn.a.key.PublicKey(), AllowedIPs: prefixes(t, "10.0.0.1/32", "fd00::1/128")},
		}})
		// Well inside the 5 s that separate initiations otherwise.
		if err := tn.a.echo(tn.b.inner4, 56, 4*time.Second); err != nil {
			t.Fatalf("first echo from A to B under A's new key: %v (the handshake must start at once)", err)
		}
	})
}

// TestTunnelStickySource: replies leave from the local address the peer's
// messages arrived at, so that a multihomed peer keeps the endpoint it
// configured; and when that address goes away, from another one. B has a
// second address in another subnet on its veth; A sends to it.
func TestTunnelStickySource(t *testing.T) {
	isolated(t)
	for _, fam := range tunFamilies {
		t.Run(fam.name, func(t *testing.T) {
			tn := newTunnel(t, tunConfig{outer6: fam.v6})
			extra := netip.MustParsePrefix("192.168.242.3/24")
			if fam.v6 {
				extra = netip.MustParsePrefix("fd00:ab::3/64")
			}
			tn.b.addrAdd(t, tunVethB, extra)
			onLink := ipNet(extra.Masked())
			if err := tn.a.rtnl.RouteAdd(&vnl.Route{LinkIndex: tn.a.link(t, tunVethA).Attrs().Index, Dst: &onLink}); err != nil {
				t.Fatalf("A: ip route add %s dev %s: %v", onLink.String(), tunVethA, err)
			}
			if fam.v6 {
				waitNoTentative(t, tn.b, tunVethB)
			}
			ep := netip.AddrPortFrom(extra.Addr(), tunPortB)
			tn.a.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{
				{PublicKey: tn.b.key.PublicKey(), UpdateOnly: true, Endpoint: net.UDPAddrFromAddrPort(ep)},
			}})
			if err := tn.a.echo(tn.b.inner(fam.v6), 56, tunFirstWait); err != nil {
				t.Fatalf("echo from A to B at %v: %v", ep, err)
			}
			if got := endpointOf(tn.a.peer(t)); got != ep {
				t.Errorf("A's endpoint for B is %v after B's reply, want %v: B must reply from the address A sent to", got, ep)
			}

			// Not too sticky: without that address, B sends from the
			// one it has, and A roams to it.
			tn.b.addrDel(t, tunVethB, extra)
			if err := tn.b.echo(tn.a.inner(fam.v6), 56, tunFirstWait); err != nil {
				t.Fatalf("echo from B to A after B lost %v: %v", extra.Addr(), err)
			}
			if got, want := endpointOf(tn.a.peer(t)), tn.b.endpoint(fam.v6); got != want {
				t.Errorf("A's endpoint for B is %v, want %v once B sends from its remaining address", got, want)
			}
		})
	}
}

// TestTunnelFwmarkRoute: the device's fwmark selects the route its
// messages take (policy routing), from the next message on: a route to the
// peer that was looked up (and cached) before the mark changed is not used
// after it. In A's table 100, which a rule gives marked packets, B's outer
// address is unreachable.
func TestTunnelFwmarkRoute(t *testing.T) {
	isolated(t)
	const mark, table = 0x42, 100
	for _, fam := range tunFamilies {
		t.Run(fam.name, func(t *testing.T) {
			tn := newTunnel(t, tunConfig{outer6: fam.v6})
			family, bits := vnl.FAMILY_V4, 32
			if fam.v6 {
				family, bits = vnl.FAMILY_V6, 128
			}
			rule := vnl.NewRule()
			rule.Family, rule.Mark, rule.Table = family, mark, table
			if err := tn.a.rtnl.RuleAdd(rule); err != nil {
				t.Fatalf("A: ip rule add fwmark %#x table %d: %v", mark, table, err)
			}
			dst := ipNet(netip.PrefixFrom(tn.b.outer(fam.v6), bits))
			if err := tn.a.rtnl.RouteAdd(&vnl.Route{Dst: &dst, Table: table, Type: unix.RTN_UNREACHABLE}); err != nil {
				t.Fatalf("A: ip route add unreachable %s table %d: %v", dst.String(), table, err)
			}
			tn.establish(t)
			// Routes are cached per CPU: messages from every CPU.
			const echoes = 8
			for i := range echoes {
				if err := tn.a.echo(tn.b.inner4, 56, tunWait); err != nil {
					t.Fatalf("A's echo %d to B before the mark: %v", i+1, err)
				}
			}

			setMark := func(m int) {
				t.Helper()
				tn.a.configure(t, tunDev, wgtypes.Config{FirewallMark: &m})
			}
			setMark(mark)
			for i := range echoes {
				if err := tn.a.echo(tn.b.inner4, 56, tunRefusedWait/echoes); err == nil {
					t.Fatalf("A's echo %d reached B after fwmark %#x, whose table has no route to %v: a route from before the mark was used", i+1, mark, tn.b.outer(fam.v6))
				}
			}
			setMark(0)
			if err := tn.a.echo(tn.b.inner4, 56, tunWait); err != nil {
				t.Errorf("A's echo to B with fwmark 0 again: %v", err)
			}
		})
	}
}

// TestDumpNoAllowedIPsNest: a peer without allowed IPs is dumped without
// a WGPEER_A_ALLOWEDIPS attribute, as upstream does; an empty nest makes
// clients that compare configurations see an empty list instead of none.
func TestDumpNoAllowedIPsNest(t *testing.T) {
	isolated(t)
	n := newTestNS(t)
	const name = "wg0"
	n.addWG(t, name)
	bare, with := peerKey(t.Name(), 1), peerKey(t.Name(), 2)
	n.configure(t, name, wgtypes.Config{Peers: []wgtypes.PeerConfig{
		{PublicKey: bare},
		{PublicKey: with, AllowedIPs: prefixes(t, "10.9.0.0/16")},
	}})
	g := n.genl(t)
	r := n.rawGenlSocket(t, 1<<16)
	if err := r.sendDump(g.fam.ID, name); err != nil {
		t.Fatalf("send dump request: %v", err)
	}
	dr := newDumpReader()
	if err := dr.readAll(r, time.Now().Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if dr.err != nil {
		t.Fatalf("dump ended with error %v", dr.err)
	}
	seen := 0
	for _, nest := range dr.nests {
		has := slices.Contains(nest.attrs, peerAAllowedIPs)
		switch nest.key {
		case bare:
			seen++
			if has {
				t.Errorf("the peer without allowed IPs was dumped with a WGPEER_A_ALLOWEDIPS nest (attributes %v)", nest.attrs)
			}
		case with:
			seen++
			if !has {
				t.Errorf("the peer with an allowed IP was dumped without WGPEER_A_ALLOWEDIPS (attributes %v)", nest.attrs)
			}
		}
	}
	if seen != 2 {
		t.Fatalf("dump had %d nests of the two peers, want 2", seen)
	}
	d := n.device(t, name)
	for _, p := range d.Peers {
		if p.PublicKey == bare && p.AllowedIPs != nil {
			t.Errorf("wgctrl reads the bare peer's allowed IPs as %#v, want nil", p.AllowedIPs)
		}
	}
}

func endpointOf(p wgtypes.Peer) netip.AddrPort {
	if p.Endpoint == nil {
		return netip.AddrPort{}
	}
	ap := p.Endpoint.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// waitNoTentative waits for a link's IPv6 addresses to leave DAD.
func waitNoTentative(t *testing.T, s *tunSide, link string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		addrs, err := dumpRetry(func() ([]vnl.Addr, error) { return s.rtnl.AddrList(s.link(t, link), vnl.FAMILY_V6) })
		if err != nil {
			t.Fatalf("%s: ip -6 addr show %s: %v", s.name, link, err)
		}
		tentative := false
		for _, a := range addrs {
			tentative = tentative || a.Flags&unix.IFA_F_TENTATIVE != 0
		}
		if !tentative {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s still has tentative IPv6 addresses after 10 s", s.name, link)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTunnelECN: the outer header carries the inner packet's ECN bits, and
// nothing else of its DS field; a congestion mark (CE) met on the outside
// is copied into the inner packet on receive (RFC 6040's normal mode).
//
// To mark a real message on its way, A sends to an address on B's link
// that nobody has (a static neighbour entry); B's packet socket sees the
// frame, which the test sends on to B's own address with CE set.
func TestTunnelECN(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)
	const (
		innerTOS = 0xb8 | 0x02 // DSCP EF, ECN ECT(0)
		port     = 7000
	)
	fake := netip.MustParseAddr("192.168.241.9")
	fakeMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x09}
	if err := tn.a.rtnl.NeighAdd(&vnl.Neigh{LinkIndex: tn.a.link(t, tunVethA).Attrs().Index, Family: unix.AF_INET,
		State: vnl.NUD_PERMANENT, IP: fake.AsSlice(), HardwareAddr: fakeMAC}); err != nil {
		t.Fatalf("A: ip neigh add %v lladdr %v: %v", fake, fakeMAC, err)
	}
	tn.a.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: tn.b.key.PublicKey(), UpdateOnly: true,
		Endpoint: net.UDPAddrFromAddrPort(netip.AddrPortFrom(fake, tunPortB))}}})

	recv := tn.b.udpSocket(t, netip.AddrPortFrom(tn.b.inner4, port))
	if err := setsockoptInt(recv, unix.IPPROTO_IP, unix.IP_RECVTOS, 1); err != nil {
		t.Fatalf("B: IP_RECVTOS: %v", err)
	}
	send := tn.a.udpSocket(t, netip.AddrPortFrom(tn.a.inner4, 0))
	if err := setsockoptInt(send, unix.IPPROTO_IP, unix.IP_TOS, innerTOS); err != nil {
		t.Fatalf("A: IP_TOS: %v", err)
	}
	capture := tn.b.packetSocket(t, tunVethB)
	payload := []byte("congestion experienced on the way")
	if _, err := send.WriteToUDPAddrPort(payload, netip.AddrPortFrom(tn.b.inner4, port)); err != nil {
		t.Fatalf("A: send: %v", err)
	}
	frame, err := capture.findDataMessage(tunPortA, tunPortB, msgDataLen(20+8+len(payload)), tunWait)
	if err != nil {
		t.Fatalf("B's veth: the data message A sent towards %v: %v", fake, err)
	}
	ip, _, _ := udp4Of(frame)
	if got := ip[1]; got != innerTOS&0x03 {
		t.Errorf("outer TOS 0x%02x for an inner TOS of 0x%02x: want 0x%02x, the ECN bits alone", got, innerTOS, innerTOS&0x03)
	}

	// On to B, marked CE.
	copy(frame[0:6], tn.b.link(t, tunVethB).Attrs().HardwareAddr)
	ip, _, _ = udp4Of(frame)
	ip[1] |= 0x03
	copy(ip[16:20], tunOuterB4.AsSlice())
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:12], inetChecksum(ip[:int(ip[0]&0xf)*4], 0))
	if frame, err = fixUDP4Checksum(frame); err != nil {
		t.Fatal(err)
	}
	if err := tn.a.packetSocket(t, tunVethA).send(frame); err != nil {
		t.Fatalf("A's veth: sending the marked frame: %v", err)
	}
	if err := recv.SetReadDeadline(time.Now().Add(tunWait)); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 1500), make([]byte, 128)
	n, oobn, _, _, err := recv.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		t.Fatalf("B: the marked datagram did not arrive: %v", err)
	}
	if !bytes.Equal(buf[:n], payload) {
		t.Fatalf("B received %q, want %q", buf[:n], payload)
	}
	tos, ok := tosOf(oob[:oobn])
	if !ok {
		t.Fatalf("B: no IP_TOS control message")
	}
	if tos&0x03 != 0x03 {
		t.Errorf("inner TOS 0x%02x on B after an outer CE mark: want ECN CE (0x03) copied in", tos)
	}
}

func setsockoptInt(c *net.UDPConn, level, opt, v int) error {
	return control(c, func(fd int) error { return unix.SetsockoptInt(fd, level, opt, v) })
}

// control runs fn on a socket's descriptor and returns fn's error.
func control(c *net.UDPConn, fn func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// tosOf finds the IP_TOS control message.
func tosOf(oob []byte) (byte, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TOS && len(m.Data) > 0 {
			return m.Data[0], true
		}
	}
	return 0, false
}

// TestTunnelPresharedKey: with the same preshared key on both ends the
// handshake completes and data flows; with different ones it never does
// (the key is mixed into the handshake, so the responder cannot open the
// initiation's last field, nor the initiator the response's).
func TestTunnelPresharedKey(t *testing.T) {
	isolated(t)
	for _, c := range []struct {
		name  string
		match bool
	}{{"same", true}, {"mismatched", false}} {
		t.Run(c.name, func(t *testing.T) {
			tn := newTunnel(t, tunConfig{})
			pskA, pskB := newPrivateKey(t), newPrivateKey(t)
			if c.match {
				pskB = pskA
			}
			tn.a.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: tn.b.key.PublicKey(), UpdateOnly: true, PresharedKey: &pskA}}})
			tn.b.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: tn.a.key.PublicKey(), UpdateOnly: true, PresharedKey: &pskB}}})
			wait := tunFirstWait
			if !c.match {
				// A matching pair answers within a second.
				wait = tunRefusedWait
			}
			err := tn.a.echo(tn.b.inner4, 56, wait)
			switch {
			case c.match && err != nil:
				t.Fatalf("echo over a tunnel with the same preshared key on both ends: %v", err)
			case !c.match && err == nil:
				t.Fatalf("an echo got through although the preshared keys differ")
			}
			if hs := tn.b.peer(t).LastHandshakeTime; !c.match && !hs.IsZero() {
				t.Errorf("B completed a handshake (at %v) with a mismatched preshared key", hs)
			}
		})
	}
}

// TestTunnelLinkDownUp: taking a device down ends its sessions and closes
// its socket; up again, it handshakes afresh and carries data, and its
// listen port is the same.
func TestTunnelLinkDownUp(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)
	first := tn.a.peer(t).LastHandshakeTime
	link := tn.a.link(t, tunDev)
	if err := tn.a.rtnl.LinkSetDown(link); err != nil {
		t.Fatalf("A: ip link set %s down: %v", tunDev, err)
	}
	if tn.a.portBusy(t, tunPortA) {
		t.Errorf("A's port %d is still bound while the device is down", tunPortA)
	}
	// A second apart, so that a new handshake has a later time.
	time.Sleep(time.Second)
	if err := tn.a.rtnl.LinkSetUp(link); err != nil {
		t.Fatalf("A: ip link set %s up: %v", tunDev, err)
	}
	if err := tn.a.echo(tn.b.inner4, 56, tunFirstWait); err != nil {
		t.Fatalf("echo from A to B after down and up: %v", err)
	}
	if again := tn.a.peer(t).LastHandshakeTime; !again.After(first) {
		t.Errorf("A's last handshake is %v, not after the first one (%v): a device taken down must forget its sessions", again, first)
	}
	if got := tn.a.device(t, tunDev).ListenPort; got != tunPortA {
		t.Errorf("A's listen port is %d after down and up, want %d", got, tunPortA)
	}
}

// TestTunnelRoutingLoop: when the route to a peer's endpoint leads back
// into the device itself and cryptokey routing gives it to the same peer,
// each sealed message would come back to be sealed again, growing, without
// end (netns.sh's cross-namespace loop; on a debug kernel it was a soft
// lockup). The device drops such a message and counts it, and the tunnel
// works again once the endpoint is sane.
func TestTunnelRoutingLoop(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)
	// B's inner address is routed into A's wg0, and B owns it there.
	looped := netip.AddrPortFrom(tn.b.inner4, tunPortB)
	setEndpoint := func(ep netip.AddrPort) {
		tn.a.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{
			{PublicKey: tn.b.key.PublicKey(), UpdateOnly: true, Endpoint: net.UDPAddrFromAddrPort(ep)}}})
	}
	setEndpoint(looped)
	before := tn.a.peer(t).TransmitBytes
	send := tn.a.udpSocket(t, netip.AddrPortFrom(tn.a.inner4, 0))
	const datagrams, size = 20, 1000
	for i := 0; i < datagrams; i++ {
		if _, err := send.WriteToUDPAddrPort(make([]byte, size), netip.AddrPortFrom(tn.b.inner4, 9)); err != nil {
			t.Fatalf("A: send datagram %d: %v", i, err)
		}
	}
	time.Sleep(time.Second)
	if sent := tn.a.peer(t).TransmitBytes - before; sent > int64(datagrams*msgDataLen(size+28)) {
		t.Errorf("A's peer sent %d bytes for %d datagrams of %d bytes into a routing loop: messages went round the loop", sent, datagrams, size)
	}
	// Upstream drops it too, without a counter to show.
	if os.Getenv(manifest.ModuleEnv) == manifest.ModuleUpstream {
		t.Logf("the upstream module has no ethtool counters: tx_routing_loop not checked")
	} else if n := ethtoolStats(t, tn.a.testNS, tunDev)["tx_routing_loop"]; n == 0 {
		t.Errorf("ethtool -S %s: tx_routing_loop is 0 after sending into a routing loop", tunDev)
	}
	setEndpoint(tn.b.endpoint(false))
	if err := tn.a.ping(tn.b.inner4); err != nil {
		t.Fatalf("ping from A to B after the loop: %v", err)
	}
}

// TestTunnelRoutingLoopTwoDevices: the loop of netns.sh's cross-namespace
// section, which the 5.10 script asserts (fewer than 70000 bytes for 10
// pings) and later scripts only warn about. A's wg1 is a tunnel inside
// A's wg0 (a peer of B's wg1, reached at B's wg0 address): that nesting is
// fine. Then A's wg0 gets as endpoint B's wg1 address, which A routes into
// wg1: wg1 seals a packet for B, whose route enters wg0, whose message's
// route enters wg1, which seals it for B again... Neither device's route
// leads back into itself; only the nesting shows the loop. Ours drops a
// packet nested in more than WG_MAX_NESTING (4) messages (7,680 bytes sent
// here); upstream 6.1 goes round until the packet outgrows the MTU (57,600
// bytes); our driver before the limit fragmented and went on (1.1 MB).
func TestTunnelRoutingLoopTwoDevices(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)
	const wg1, portA1, portB1 = "wg1", 51830, 51831
	inner1A, inner1B := netip.MustParseAddr("10.61.0.1"), netip.MustParseAddr("10.61.0.2")
	keyA1, keyB1 := newPrivateKey(t), newPrivateKey(t)
	for _, s := range []struct {
		side           *tunSide
		key, peer      wgtypes.Key
		port           int
		addr, peerAddr netip.Addr
		endpoint       netip.AddrPort
	}{
		{tn.a, keyA1, keyB1.PublicKey(), portA1, inner1A, inner1B, netip.AddrPortFrom(tn.b.inner4, portB1)},
		{tn.b, keyB1, keyA1.PublicKey(), portB1, inner1B, inner1A, netip.AddrPortFrom(tn.a.inner4, portA1)},
	} {
		s.side.addWG(t, wg1)
		s.side.configure(t, wg1, wgtypes.Config{
			PrivateKey: &s.key,
			ListenPort: ptr(s.port),
			Peers: []wgtypes.PeerConfig{{
				PublicKey:  s.peer,
				Endpoint:   net.UDPAddrFromAddrPort(s.endpoint),
				AllowedIPs: prefixes(t, netip.PrefixFrom(s.peerAddr, 32).String()),
			}},
		})
		s.side.addrAdd(t, wg1, netip.PrefixFrom(s.addr, 24))
		s.side.up(t, wg1)
	}
	a1 := &tunSide{testNS: tn.a.testNS, name: "A/wg1", inner4: inner1A}
	if err := a1.ping(inner1B); err != nil {
		t.Fatalf("ping from A to B through wg1 inside wg0: %v", err)
	}
	wg1Sent := func() int64 {
		d, err := tn.a.wg.Device(wg1)
		if err != nil || len(d.Peers) != 1 {
			t.Fatalf("A: wg show %s: %v", wg1, err)
		}
		return d.Peers[0].TransmitBytes
	}
	tn.a.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: tn.b.key.PublicKey(), UpdateOnly: true,
		Endpoint: net.UDPAddrFromAddrPort(netip.AddrPortFrom(inner1B, tunPortB))}}})
	before := wg1Sent()
	send := a1.udpSocket(t, netip.AddrPortFrom(inner1A, 0))
	const datagrams = 10
	for i := 0; i < datagrams; i++ {
		if _, err := send.WriteToUDPAddrPort(make([]byte, 56), netip.AddrPortFrom(inner1B, 9)); err != nil {
			t.Fatalf("A: send datagram %d into %s: %v", i, wg1, err)
		}
	}
	time.Sleep(time.Second)
	sent := wg1Sent() - before
	t.Logf("A's wg1 sent %d bytes for %d datagrams of 56 bytes", sent, datagrams)
	if sent >= 70000 {
		t.Errorf("A's wg1 sent %d bytes for %d datagrams into a loop through two devices (netns.sh 5.10 allows under 70000): messages went round the loop", sent, datagrams)
	}
	if os.Getenv(manifest.ModuleEnv) != manifest.ModuleUpstream {
		if n := ethtoolStats(t, tn.a.testNS, wg1)["tx_routing_loop"] + ethtoolStats(t, tn.a.testNS, tunDev)["tx_routing_loop"]; n == 0 {
			t.Errorf("ethtool -S: tx_routing_loop is 0 on both devices after a loop through them")
		}
	}
	tn.a.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: tn.b.key.PublicKey(), UpdateOnly: true,
		Endpoint: net.UDPAddrFromAddrPort(tn.b.endpoint(false))}}})
	if err := a1.ping(inner1B); err != nil {
		t.Fatalf("ping through wg1 inside wg0 once the endpoint is sane again: %v", err)
	}
}

// TestTunnelOnionSameDevice: a peer whose endpoint is reached through the
// same device, via another peer, is onion routing, not a loop (netns.sh,
// "onion routing works, even when it loops"). C is a second device in B's
// namespace, a peer of A's wg0 at B's inner address.
func TestTunnelOnionSameDevice(t *testing.T) {
	isolated(t)
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)
	const portC = 51830
	keyC := newPrivateKey(t)
	tn.b.addWG(t, "wg1")
	tn.b.configure(t, "wg1", wgtypes.Config{
		PrivateKey: &keyC,
		ListenPort: ptr(portC),
		Peers: []wgtypes.PeerConfig{{
			PublicKey:  tn.a.key.PublicKey(),
			AllowedIPs: prefixes(t, "10.9.0.1/32"),
		}},
	})
	tn.b.addrAdd(t, "wg1", netip.MustParsePrefix("10.9.0.2/24"))
	tn.b.up(t, "wg1")
	tn.a.addrAdd(t, tunDev, netip.MustParsePrefix("10.9.0.1/24"))
	tn.a.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{
		PublicKey:  keyC.PublicKey(),
		Endpoint:   net.UDPAddrFromAddrPort(netip.AddrPortFrom(tn.b.inner4, portC)),
		AllowedIPs: prefixes(t, "10.9.0.2/32"),
	}}})
	if err := tn.a.ping(netip.MustParseAddr("10.9.0.2")); err != nil {
		t.Fatalf("ping from A to C through B, both peers of A's one device: %v", err)
	}
	if n := ethtoolStats(t, tn.a.testNS, tunDev)["tx_routing_loop"]; n != 0 && os.Getenv(manifest.ModuleEnv) != manifest.ModuleUpstream {
		t.Errorf("tx_routing_loop = %d: onion routing through the same device was taken for a loop", n)
	}
}
