package guest

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

// Two VMs, one per wireguard implementation (only one wireguard module can
// be loaded in a kernel), joined by a QEMU dgram netdev: `wgbuild interop`
// boots them and sets these variables in each one's test environment (the
// names are the contract of initramfs/manifest).
//
//	VM "ours"                                  VM "upstream"
//	wg0 10.77.0.1/24, UDP 51820               wg0 10.77.0.2/24, UDP 51820
//	NIC 192.168.77.1/24  ── QEMU dgram ──     NIC 192.168.77.2/24
const (
	twoVMRoleEnv     = manifest.RoleEnv          // ours | upstream
	twoVMMACEnv      = manifest.MACEnv           // this VM's NIC
	twoVMOuterEnv    = manifest.OuterEnv         // this VM's NIC address, a prefix
	twoVMInnerEnv    = manifest.InnerEnv         // this VM's wg0 address, a prefix
	twoVMPortEnv     = manifest.WGPortEnv        // both devices' listen port
	twoVMKeyEnv      = manifest.PrivateKeyEnv    // this VM's private key, base64
	twoVMPeerKeyEnv  = manifest.PeerPublicKeyEnv // the other VM's public key
	twoVMPeerOutEnv  = manifest.PeerOuterEnv     // the other VM's NIC address
	twoVMPeerInEnv   = manifest.PeerInnerEnv     // the other VM's wg0 address
	twoVMBytesEnv    = manifest.TransferBytesEnv // bytes sent each way
	twoVMOuter6Env   = manifest.Outer6Env        // this VM's NIC IPv6 address, a prefix
	twoVMInner6Env   = manifest.Inner6Env        // this VM's wg0 IPv6 address, a prefix
	twoVMPeerOut6Env = manifest.PeerOuter6Env    // the other VM's NIC IPv6 address
	twoVMPeerIn6Env  = manifest.PeerInner6Env    // the other VM's wg0 IPv6 address
	twoVMPSKEnv      = manifest.PresharedKeyEnv  // both devices' preshared key (second round)
	twoVMRoleOurs    = manifest.RoleOurs         // initiates the handshake
	twoVMRoleUpstrm  = manifest.RoleUpstream     // the reference module
	twoVMStatePort   = 7700                      // each VM serves its state here (outer link)
	twoVMPortToOurs  = 7601                      // upstream → ours transfer
	twoVMPortToUpstr = 7602                      // ours → upstream transfer
	twoVMPeerWait    = 90 * time.Second          // the other VM boots and sets up
	twoVMXferWait    = 2 * time.Minute           // one transfer
	twoVMDefaultSize = 10 << 20                  // 10 MiB, more than 10 MB
	twoVMSeedToOurs  = 11                        // data upstream → ours
	twoVMSeedToUpstr = 12                        // data ours → upstream
	twoVMDev         = tunDev                    // the wireguard link
	twoVMStateDial   = 3 * time.Second           // fetching the other side's state
	twoVMHashReply   = 30 * time.Second          // the receiver's SHA-256 reply
	twoVMRetryPeriod = 500 * time.Millisecond    // between connection attempts
	twoVMHandshake   = 60 * time.Second          // until the session is up
	twoVMReadyPort   = 7701                      // ours accepts here once ready for round two
	twoVMPortToOurs6 = 7603                      // round two, upstream → ours
	twoVMPortToUpst6 = 7604                      // round two, ours → upstream
	twoVMSize6       = 1 << 20                   // round two, bytes each way
)

// twoVMOuterPing bounds one s.ping call.
var twoVMOuterPing = tunFirstWait + 2*tunWait

type twoVMConfig struct {
	role                 string
	mac                  net.HardwareAddr
	outer, inner         netip.Prefix
	peerOuter, peerInner netip.Addr
	port                 int
	key, peerKey         wgtypes.Key
	size                 int
	// Round two: IPv6 outside and inside, a preshared key.
	outer6, inner6         netip.Prefix
	peerOuter6, peerInner6 netip.Addr
	psk                    wgtypes.Key
}

// twoVMConfigFromEnv reads the two-VM setup; nil without WGVM_ROLE.
func twoVMConfigFromEnv() (*twoVMConfig, error) {
	role := os.Getenv(twoVMRoleEnv)
	if role == "" {
		return nil, nil
	}
	c := &twoVMConfig{role: role, size: twoVMDefaultSize}
	if role != twoVMRoleOurs && role != twoVMRoleUpstrm {
		return nil, fmt.Errorf("%s=%q: want %s or %s", twoVMRoleEnv, role, twoVMRoleOurs, twoVMRoleUpstrm)
	}
	var errs []error
	get := func(name string, parse func(string) error) {
		v := os.Getenv(name)
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
			return
		}
		if err := parse(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	}
	var err error
	get(twoVMMACEnv, func(v string) error { c.mac, err = net.ParseMAC(v); return err })
	get(twoVMOuterEnv, func(v string) error { c.outer, err = netip.ParsePrefix(v); return err })
	get(twoVMInnerEnv, func(v string) error { c.inner, err = netip.ParsePrefix(v); return err })
	get(twoVMPeerOutEnv, func(v string) error { c.peerOuter, err = netip.ParseAddr(v); return err })
	get(twoVMPeerInEnv, func(v string) error { c.peerInner, err = netip.ParseAddr(v); return err })
	get(twoVMPortEnv, func(v string) error { c.port, err = strconv.Atoi(v); return err })
	get(twoVMKeyEnv, func(v string) error { c.key, err = wgtypes.ParseKey(v); return err })
	get(twoVMPeerKeyEnv, func(v string) error { c.peerKey, err = wgtypes.ParseKey(v); return err })
	get(twoVMOuter6Env, func(v string) error { c.outer6, err = netip.ParsePrefix(v); return err })
	get(twoVMInner6Env, func(v string) error { c.inner6, err = netip.ParsePrefix(v); return err })
	get(twoVMPeerOut6Env, func(v string) error { c.peerOuter6, err = netip.ParseAddr(v); return err })
	get(twoVMPeerIn6Env, func(v string) error { c.peerInner6, err = netip.ParseAddr(v); return err })
	get(twoVMPSKEnv, func(v string) error { c.psk, err = wgtypes.ParseKey(v); return err })
	if v := os.Getenv(twoVMBytesEnv); v != "" {
		get(twoVMBytesEnv, func(v string) error { c.size, err = strconv.Atoi(v); return err })
	}
	return c, errors.Join(errs...)
}

func (c *twoVMConfig) peerRole() string {
	if c.role == twoVMRoleOurs {
		return twoVMRoleUpstrm
	}
	return twoVMRoleOurs
}

// TestTwoVMInterop: our module in one VM and the distribution kernel's own
// wireguard.ko in another, over a virtual Ethernet link between the two
// QEMUs. Ours initiates the handshake; then tunnel TCP transfers of
// WGVM_TRANSFER_BYTES each way, upstream → ours first, each checked by
// SHA-256 on both ends (the receiver sends back the hash of what it got).
// Both VMs run this test, each its own half.
func TestTwoVMInterop(t *testing.T) {
	cfg, err := twoVMConfigFromEnv()
	if err != nil {
		t.Fatalf("two-VM setup: %v", err)
	}
	if cfg == nil {
		t.Skip("needs a second VM: runs only under `wgbuild interop` (make interop), which sets " + twoVMRoleEnv)
	}
	s, nic := twoVMSetup(t, cfg)
	t.Logf("%s: %s %s, %s %s, peer %s at %s:%d", cfg.role, nic, cfg.outer, twoVMDev, cfg.inner, cfg.peerKey, cfg.peerOuter, cfg.port)

	// The other side's state is served on the outer link, for a failure
	// on either side to show both.
	t.Cleanup(serveState(t, s, cfg, nic))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("state of %s (this VM) at failure:\n%s", cfg.role, twoVMState(s, nic))
			t.Logf("state of %s (the other VM) at failure:\n%s", cfg.peerRole(), fetchPeerState(cfg))
		}
	})

	// Listen before anything else, so the other side's dial only waits
	// for the tunnel.
	recvPort, sendPort := twoVMPortToOurs, twoVMPortToUpstr
	recvSeed, sendSeed := uint64(twoVMSeedToOurs), uint64(twoVMSeedToUpstr)
	if cfg.role == twoVMRoleUpstrm {
		recvPort, sendPort = sendPort, recvPort
		recvSeed, sendSeed = sendSeed, recvSeed
	}
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(cfg.inner.Addr(), uint16(recvPort))))
	if err != nil {
		t.Fatalf("listen on %s:%d: %v", cfg.inner.Addr(), recvPort, err)
	}
	defer ln.Close()

	if !t.Run("outer_link", func(t *testing.T) {
		start := time.Now()
		deadline := start.Add(twoVMPeerWait)
		for {
			err := s.ping(cfg.peerOuter)
			if err == nil {
				t.Logf("%s answers on the outer link after %v", cfg.peerOuter, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Now().Add(twoVMOuterPing).After(deadline) {
				t.Fatalf("the other VM (%s) did not answer pings on the outer link within %v: %v", cfg.peerOuter, twoVMPeerWait, err)
			}
		}
	}) {
		return
	}

	if !t.Run("handshake", func(t *testing.T) {
		start := time.Now()
		deadline := start.Add(twoVMHandshake)
		if cfg.role == twoVMRoleOurs {
			for {
				err := s.ping(cfg.peerInner)
				if err == nil {
					break
				}
				if time.Now().Add(twoVMOuterPing).After(deadline) {
					t.Fatalf("no session: ping %s through %s: %v", cfg.peerInner, twoVMDev, err)
				}
			}
		}
		// The responder sees the handshake complete with the first data
		// packet of the new session.
		for {
			p := s.peer(t)
			if !p.LastHandshakeTime.IsZero() {
				t.Logf("session up after %v: latest handshake %s, endpoint %v", time.Since(start).Round(time.Millisecond),
					wggoHandshakeString(p.LastHandshakeTime), p.Endpoint)
				if want := netip.AddrPortFrom(cfg.peerOuter, uint16(cfg.port)).String(); endpointString(p.Endpoint) != want {
					t.Errorf("endpoint of the peer is %v, want %s", p.Endpoint, want)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no handshake with the other VM within %v", twoVMHandshake)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}) {
		return
	}

	recv := func(t *testing.T) {
		twoVMReceive(t, ln, cfg.peerRole()+" → "+cfg.role, cfg.size, recvSeed)
	}
	send := func(t *testing.T) {
		twoVMSend(t, netip.AddrPortFrom(cfg.peerInner, uint16(sendPort)), cfg.role+" → "+cfg.peerRole(), cfg.size, sendSeed)
	}
	first, second := send, recv
	if cfg.role == twoVMRoleOurs {
		first, second = recv, send
	}
	if !t.Run("upstream_to_ours", first) {
		return
	}
	if !t.Run("ours_to_upstream", second) {
		return
	}
	t.Run("upstream_initiates_ipv6_psk", func(t *testing.T) { twoVMRoundTwo(t, cfg, s, nic) })
}

// twoVMRoundTwo: both VMs recreate their devices with a preshared key and
// IPv6 addresses, ours without an endpoint for its peer, so that only
// upstream can initiate: it does, over IPv6; ours learns upstream's
// endpoint from the handshake; then twoVMSize6 bytes go each way over
// inner IPv6, upstream → ours first.
func twoVMRoundTwo(t *testing.T, cfg *twoVMConfig, s *tunSide, nic string) {
	s.outer6, s.inner6 = cfg.outer6.Addr(), cfg.inner6.Addr()
	s.addrAdd(t, nic, cfg.outer6)
	if cfg.role == twoVMRoleUpstrm {
		// Round one's last bytes may still be in flight to ours: wait
		// until ours has them all and is ready, then recreate.
		twoVMAwaitReady(t, cfg)
	}
	if err := s.rtnl.LinkDel(s.link(t, twoVMDev)); err != nil {
		t.Fatalf("ip link del %s: %v", twoVMDev, err)
	}
	s.addWG(t, twoVMDev)
	peer := wgtypes.PeerConfig{
		PublicKey:         cfg.peerKey,
		PresharedKey:      &cfg.psk,
		ReplaceAllowedIPs: true,
		AllowedIPs:        prefixes(t, netip.PrefixFrom(cfg.peerInner, 32).String(), netip.PrefixFrom(cfg.peerInner6, 128).String()),
	}
	if cfg.role == twoVMRoleUpstrm {
		peer.Endpoint = net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.peerOuter6, uint16(cfg.port)))
	}
	s.configure(t, twoVMDev, wgtypes.Config{PrivateKey: &cfg.key, ListenPort: ptr(cfg.port), ReplacePeers: true, Peers: []wgtypes.PeerConfig{peer}})
	s.addrAdd(t, twoVMDev, cfg.inner)
	s.addrAdd(t, twoVMDev, cfg.inner6)
	s.up(t, twoVMDev)

	recvPort, sendPort := twoVMPortToOurs6, twoVMPortToUpst6
	recvSeed, sendSeed := uint64(twoVMSeedToOurs+2), uint64(twoVMSeedToUpstr+2)
	if cfg.role == twoVMRoleUpstrm {
		recvPort, sendPort = sendPort, recvPort
		recvSeed, sendSeed = sendSeed, recvSeed
	}
	ln, err := net.ListenTCP("tcp6", net.TCPAddrFromAddrPort(netip.AddrPortFrom(cfg.inner6.Addr(), uint16(recvPort))))
	if err != nil {
		t.Fatalf("listen on [%s]:%d: %v", cfg.inner6.Addr(), recvPort, err)
	}
	defer ln.Close()

	start := time.Now()
	deadline := start.Add(twoVMHandshake)
	if cfg.role == twoVMRoleOurs {
		twoVMSignalReady(t, cfg)
		for {
			p := s.peer(t)
			if !p.LastHandshakeTime.IsZero() {
				t.Logf("upstream's handshake after %v, from %v", time.Since(start).Round(time.Millisecond), p.Endpoint)
				want := netip.AddrPortFrom(cfg.peerOuter6, uint16(cfg.port))
				if endpointOf(p) != want {
					t.Errorf("ours learnt the endpoint %v from upstream's handshake, want %v", p.Endpoint, want)
				}
				if p.PresharedKey != cfg.psk {
					t.Errorf("ours reports the preshared key %v, want the one set", p.PresharedKey)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no handshake from upstream within %v (ours has no endpoint: upstream must initiate)", twoVMHandshake)
			}
			time.Sleep(200 * time.Millisecond)
		}
	} else {
		for {
			err := s.ping(cfg.peerInner6)
			if err == nil {
				t.Logf("upstream reached ours over inner IPv6 after %v", time.Since(start).Round(time.Millisecond))
				break
			}
			if time.Now().Add(twoVMOuterPing).After(deadline) {
				t.Fatalf("no session: ping %s through %s: %v", cfg.peerInner6, twoVMDev, err)
			}
		}
	}

	recv := func(t *testing.T) {
		twoVMReceive(t, ln, cfg.peerRole()+" → "+cfg.role+" (IPv6, preshared key)", twoVMSize6, recvSeed)
	}
	send := func(t *testing.T) {
		twoVMSend(t, netip.AddrPortFrom(cfg.peerInner6, uint16(sendPort)), cfg.role+" → "+cfg.peerRole()+" (IPv6, preshared key)", twoVMSize6, sendSeed)
	}
	first, second := send, recv
	if cfg.role == twoVMRoleOurs {
		first, second = recv, send
	}
	if !t.Run("upstream_to_ours", first) {
		return
	}
	t.Run("ours_to_upstream", second)
}

// twoVMSignalReady (ours) accepts connections on its outer address's
// twoVMReadyPort until the test ends: upstream's twoVMAwaitReady.
func twoVMSignalReady(t *testing.T, cfg *twoVMConfig) {
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(cfg.outer.Addr(), twoVMReadyPort)))
	if err != nil {
		t.Fatalf("listen on %s:%d to tell upstream that ours is ready: %v", cfg.outer.Addr(), twoVMReadyPort, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// twoVMAwaitReady (upstream) waits until ours accepts a connection on
// twoVMReadyPort.
func twoVMAwaitReady(t *testing.T, cfg *twoVMConfig) {
	addr := netip.AddrPortFrom(cfg.peerOuter, twoVMReadyPort).String()
	deadline := time.Now().Add(twoVMPeerWait)
	for {
		c, err := net.DialTimeout("tcp4", addr, twoVMStateDial)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ours did not get ready for round two within %v: %v", twoVMPeerWait, err)
		}
		time.Sleep(twoVMRetryPeriod)
	}
}

// twoVMSetup brings up the NIC and wg0 in the initial namespace; wg0 goes
// when the test ends.
func twoVMSetup(t *testing.T, cfg *twoVMConfig) (*tunSide, string) {
	t.Helper()
	ns, err := netns.Get()
	if err != nil {
		t.Fatalf("get network namespace: %v", err)
	}
	n := &testNS{ns: ns}
	t.Cleanup(n.close)
	if n.rtnl, err = vnl.NewHandleAt(ns, unix.NETLINK_ROUTE); err != nil {
		t.Fatalf("rtnetlink: %v", err)
	}
	if n.wg, err = wgctrl.New(); err != nil {
		t.Fatalf("wgctrl: %v", err)
	}
	nic := findNIC(t, n, cfg.mac)
	s := &tunSide{testNS: n, name: cfg.role, key: cfg.key, port: cfg.port, veth: nic,
		outer4: cfg.outer.Addr(), inner4: cfg.inner.Addr()}
	s.up(t, "lo")
	s.addrAdd(t, nic, cfg.outer)
	s.up(t, nic)
	s.addWG(t, twoVMDev)
	s.configure(t, twoVMDev, wgtypes.Config{
		PrivateKey:   &cfg.key,
		ListenPort:   ptr(cfg.port),
		ReplacePeers: true,
		Peers: []wgtypes.PeerConfig{{
			PublicKey:         cfg.peerKey,
			Endpoint:          net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.peerOuter, uint16(cfg.port))),
			ReplaceAllowedIPs: true,
			AllowedIPs:        prefixes(t, netip.PrefixFrom(cfg.peerInner, 32).String()),
		}},
	})
	s.addrAdd(t, twoVMDev, cfg.inner)
	s.up(t, twoVMDev)
	return s, nic
}

// findNIC finds the Ethernet device with the given MAC address (its name
// depends on the driver and on udev, which the guest does not run).
func findNIC(t *testing.T, n *testNS, mac net.HardwareAddr) string {
	t.Helper()
	links, err := dumpRetry(n.rtnl.LinkList)
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	var seen []string
	for _, l := range links {
		a := l.Attrs()
		seen = append(seen, fmt.Sprintf("%s (%s, %s, %v)", a.Name, l.Type(), a.EncapType, a.HardwareAddr))
		if l.Type() == "device" && a.EncapType == "ether" && a.HardwareAddr.String() == mac.String() {
			return a.Name
		}
	}
	t.Fatalf("no Ethernet device with MAC %s (is the virtio_net module loaded?); links: %s", mac, strings.Join(seen, "; "))
	return ""
}

// twoVMReceive accepts one connection, reads until EOF, checks the SHA-256
// and sends it back to the sender.
func twoVMReceive(t *testing.T, ln *net.TCPListener, what string, size int, seed uint64) {
	want := twoVMSum(t, size, seed)
	if err := ln.SetDeadline(time.Now().Add(twoVMXferWait)); err != nil {
		t.Fatal(err)
	}
	c, err := ln.AcceptTCP()
	if err != nil {
		t.Fatalf("%s: no connection within %v: %v", what, twoVMXferWait, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(twoVMXferWait)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(c, 1<<16))
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("%s: after %d bytes from %v: %v", what, n, c.RemoteAddr(), err)
	}
	var got [sha256.Size]byte
	h.Sum(got[:0])
	if _, err := c.Write(got[:]); err != nil {
		t.Errorf("%s: send the SHA-256 back: %v", what, err)
	}
	if n != int64(size) || got != want {
		t.Fatalf("%s over TCP: received %d bytes (sha256 %x), want %d (sha256 %x)", what, n, got, size, want)
	}
	t.Logf("%s: received %d bytes in %v: %.2f MB/s, sha256 %x ok", what, n, elapsed.Round(time.Millisecond), float64(n)/1e6/elapsed.Seconds(), got[:8])
}

// twoVMSend connects (retrying until the other side listens), sends size
// bytes and checks the SHA-256 that the receiver sends back.
func twoVMSend(t *testing.T, dst netip.AddrPort, what string, size int, seed uint64) {
	data := make([]byte, size)
	if _, err := io.ReadFull(wggoStream(seed), data); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	deadline := time.Now().Add(twoVMXferWait)
	var c net.Conn
	for {
		var err error
		c, err = net.DialTimeout("tcp", dst.String(), 5*time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: connect to %s: %v (retried for %v)", what, dst, err, twoVMXferWait)
		}
		time.Sleep(twoVMRetryPeriod)
	}
	defer c.Close()
	if err := c.SetDeadline(deadline.Add(twoVMHashReply)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Write(data); err != nil {
		t.Fatalf("%s: write: %v", what, err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatalf("%s: close write: %v", what, err)
	}
	var got [sha256.Size]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		t.Fatalf("%s: no SHA-256 back from the receiver: %v", what, err)
	}
	elapsed := time.Since(start)
	if got != want {
		t.Fatalf("%s over TCP: sent %d bytes (sha256 %x), the receiver got sha256 %x", what, size, want, got)
	}
	t.Logf("%s: sent %d bytes in %v: %.2f MB/s, the receiver's sha256 matches", what, size, elapsed.Round(time.Millisecond), float64(size)/1e6/elapsed.Seconds())
}

func twoVMSum(t *testing.T, size int, seed uint64) [sha256.Size]byte {
	h := sha256.New()
	if _, err := io.CopyN(h, wggoStream(seed), int64(size)); err != nil {
		t.Fatal(err)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// twoVMState is this VM's wireguard device and links, as text.
func twoVMState(s *tunSide, nic string) string {
	var b strings.Builder
	if d, err := s.wg.Device(twoVMDev); err != nil {
		fmt.Fprintf(&b, "  %s: wgctrl: %v\n", twoVMDev, err)
	} else {
		fmt.Fprintf(&b, "  interface %s: public key %s, port %d\n", d.Name, d.PublicKey, d.ListenPort)
		for _, p := range d.Peers {
			fmt.Fprintf(&b, "    peer %s: endpoint %v, allowed ips %s, latest handshake %s, %d B received, %d B sent\n",
				p.PublicKey, p.Endpoint, strings.Join(sortedPrefixes(p.AllowedIPs), ", "),
				wggoHandshakeString(p.LastHandshakeTime), p.ReceiveBytes, p.TransmitBytes)
		}
	}
	for _, name := range []string{twoVMDev, nic} {
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
	return b.String()
}

// serveState answers every connection to the outer address's
// twoVMStatePort with twoVMState.
func serveState(t *testing.T, s *tunSide, cfg *twoVMConfig, nic string) (stop func()) {
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(cfg.outer.Addr(), twoVMStatePort)))
	if err != nil {
		t.Logf("warning: cannot serve this VM's state to the other: %v", err)
		return func() {}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(twoVMStateDial))
			io.WriteString(c, twoVMState(s, nic))
			c.Close()
		}
	}()
	return func() { ln.Close() }
}

// fetchPeerState asks the other VM for its state over the outer link.
func fetchPeerState(cfg *twoVMConfig) string {
	addr := netip.AddrPortFrom(cfg.peerOuter, twoVMStatePort).String()
	c, err := net.DialTimeout("tcp4", addr, twoVMStateDial)
	if err != nil {
		return fmt.Sprintf("  (unavailable: %v; see its own report)", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(twoVMStateDial))
	b, err := io.ReadAll(c)
	if err != nil {
		return fmt.Sprintf("%s  (cut short: %v)", b, err)
	}
	return string(b)
}
