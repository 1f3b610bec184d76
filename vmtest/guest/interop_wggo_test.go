package guest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Interoperability with wireguard-go, an independent implementation of the
// protocol: the kernel device under test talks, over 127.0.0.1 inside a
// fresh namespace, to a wireguard-go device that runs in this process on a
// gVisor netstack (no TUN device needed).
//
//	kernel: wgk 10.99.0.1/24 fd99::1/64, UDP port wggoKernelPort
//	wireguard-go: netstack 10.99.0.2 fd99::2, UDP port wggoGoPort

const (
	wggoLink       = "wgk"
	wggoKernelPort = 51820
	wggoGoPort     = 51821
	wggoMTU        = 1420

	// wggoHandshakeWait bounds a handshake, including the time to process
	// both messages under TCG emulation.
	wggoHandshakeWait = 10 * time.Second
	// wggoConnectWait bounds a TCP connect over an established session.
	wggoConnectWait = 20 * time.Second
	// wggoTransferWait bounds one bulk TCP transfer (about 4 s under TCG
	// with the upstream module).
	wggoTransferWait = time.Minute
)

var (
	wggoKernelAddr4 = netip.MustParseAddr("10.99.0.1")
	wggoKernelAddr6 = netip.MustParseAddr("fd99::1")
	wggoGoAddr4     = netip.MustParseAddr("10.99.0.2")
	wggoGoAddr6     = netip.MustParseAddr("fd99::2")
)

func TestInteropWireguardGo(t *testing.T) {
	isolated(t)
	t.Run("go_initiates", func(t *testing.T) {
		p := newWggoPair(t)
		start := time.Now()

		// A datagram from the netstack side makes wireguard-go initiate;
		// it stays staged until the handshake completes, then goes out as
		// the first data packet.
		c, err := p.tnet.DialUDPAddrPort(netip.AddrPort{}, netip.AddrPortFrom(wggoKernelAddr4, 9))
		if err != nil {
			t.Fatalf("netstack DialUDP 10.99.0.1:9: %v", err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("wireguard-go initiates")); err != nil {
			t.Fatalf("netstack write to 10.99.0.1:9: %v", err)
		}

		gohs := p.waitGoHandshake(t, "wireguard-go (initiator) did not complete a handshake with the kernel")
		wggoCheckHandshakeTime(t, "wireguard-go", gohs, start)

		// The kernel as responder records the handshake only when the
		// first data packet under the new session arrives (upstream
		// does so for the staged datagram sent right after the
		// response is consumed).
		khs := p.waitKernelHandshake(t, "kernel (responder) did not record the handshake after wireguard-go's first data packet")
		wggoCheckHandshakeTime(t, "kernel", khs, start)
	})

	t.Run("kernel_initiates", func(t *testing.T) {
		p := newWggoPair(t)
		start := time.Now()

		if gohs := p.goPeer(t).handshake; !gohs.IsZero() {
			t.Fatalf("wireguard-go reports a handshake at %v before any traffic", gohs)
		}
		c := p.kernelDialUDP(t, netip.AddrPortFrom(wggoGoAddr4, 9))
		if _, err := c.Write([]byte("kernel initiates")); err != nil {
			t.Fatalf("kernel socket write to 10.99.0.2:9: %v", err)
		}

		khs := p.waitKernelHandshake(t, "kernel (initiator) did not complete a handshake with wireguard-go")
		wggoCheckHandshakeTime(t, "kernel", khs, start)
		gohs := p.waitGoHandshake(t, "wireguard-go (responder) did not record the handshake after the kernel's first data packet")
		wggoCheckHandshakeTime(t, "wireguard-go", gohs, start)
	})

	t.Run("persistent_keepalive", func(t *testing.T) {
		p := newWggoPair(t)
		// No traffic at all: a persistent keepalive of one second on the
		// kernel side must start a handshake by itself and then keep
		// empty data messages (32 bytes each) flowing.
		interval := time.Second
		p.n.configure(t, wggoLink, wgtypes.Config{Peers: []wgtypes.PeerConfig{{
			PublicKey:                   p.goPub,
			UpdateOnly:                  true,
			PersistentKeepaliveInterval: &interval,
		}}})
		p.waitGoHandshake(t, "persistent keepalive did not start a handshake with wireguard-go")
		before := p.goPeer(t).rx
		time.Sleep(4 * time.Second)
		after := p.goPeer(t).rx
		if got := after - before; got < 2*32 {
			p.dumpState(t)
			t.Fatalf("wireguard-go received %d bytes from the kernel in 4 s with a 1 s persistent keepalive, want at least two 32-byte keepalives", got)
		}
	})

	t.Run("data_both_ways", func(t *testing.T) {
		p := newWggoPair(t)
		// Establish the session first, so that a missing handshake fails
		// here once and fast rather than as timeouts of every transfer.
		c := p.kernelDialUDP(t, netip.AddrPortFrom(wggoGoAddr4, 9))
		if _, err := c.Write([]byte("kernel initiates")); err != nil {
			t.Fatalf("kernel socket write to 10.99.0.2:9: %v", err)
		}
		p.waitKernelHandshake(t, "no session for the data tests: the kernel did not complete a handshake")
		p.waitGoHandshake(t, "no session for the data tests: wireguard-go did not record the handshake")
		for _, fam := range []struct {
			name string
			addr netip.Addr
		}{
			{"ipv4", wggoGoAddr4},
			{"ipv6", wggoGoAddr6},
		} {
			t.Run("udp_echo_"+fam.name, func(t *testing.T) {
				p.udpEcho(t, netip.AddrPortFrom(fam.addr, 7))
			})
			t.Run("tcp_"+fam.name, func(t *testing.T) {
				p.tcpBothWays(t, netip.AddrPortFrom(fam.addr, 8080), 2<<20)
			})
		}
	})

}

// ---------------------------------------------------------------------------
// The pair

// wggoPair is a kernel device and a wireguard-go device configured as each
// other's only peer, in a namespace of their own.
type wggoPair struct {
	n                *testNS
	kernelKey, goKey wgtypes.Key // private keys
	dev              *device.Device
	tnet             *netstack.Net
	log              *wggoLog
	kernelPub, goPub wgtypes.Key
}

// newWggoPair sets up both sides and tears them down at the end of the
// test; on failure it logs the state of both sides and wireguard-go's log.
func newWggoPair(t *testing.T) *wggoPair {
	t.Helper()
	p := &wggoPair{
		n:         newTestNS(t),
		kernelKey: newPrivateKey(t),
		goKey:     newPrivateKey(t),
		log:       &wggoLog{},
	}
	p.kernelPub, p.goPub = p.kernelKey.PublicKey(), p.goKey.PublicKey()
	n := p.n

	lo := n.link(t, "lo")
	if err := n.rtnl.LinkSetUp(lo); err != nil {
		t.Fatalf("ip link set lo up: %v", err)
	}

	// Kernel side.
	l := n.addWG(t, wggoLink)
	n.configure(t, wggoLink, wgtypes.Config{
		PrivateKey: &p.kernelKey,
		ListenPort: ptr(wggoKernelPort),
		Peers: []wgtypes.PeerConfig{{
			PublicKey:         p.goPub,
			Endpoint:          udpAddr(t, fmt.Sprintf("127.0.0.1:%d", wggoGoPort)),
			ReplaceAllowedIPs: true,
			AllowedIPs:        prefixes(t, "10.99.0.2/32", "fd99::2/128"),
		}},
	})
	for _, a := range []netip.Prefix{netip.PrefixFrom(wggoKernelAddr4, 24), netip.PrefixFrom(wggoKernelAddr6, 64)} {
		ipn := ipNet(a) // keeps the host part
		if err := n.rtnl.AddrAdd(l, &vnl.Addr{IPNet: &ipn, Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatalf("ip addr add %s dev %s: %v", a, wggoLink, err)
		}
	}
	n.up(t, wggoLink)

	// wireguard-go side. Its UDP sockets are opened by whichever goroutine
	// brings the device up or changes its port, in the namespace of that
	// goroutine's thread: do both here, on a thread inside the namespace.
	// (NewDevice's own TUN event reader may bring it up first, elsewhere;
	// setting listen_port afterwards rebinds here.)
	tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{wggoGoAddr4, wggoGoAddr6}, nil, wggoMTU)
	if err != nil {
		t.Fatalf("netstack.CreateNetTUN: %v", err)
	}
	p.tnet = tnet
	logger := &device.Logger{Verbosef: p.log.add, Errorf: p.log.addError}
	uapi := strings.Join([]string{
		"private_key=" + hex.EncodeToString(p.goKey[:]),
		fmt.Sprintf("listen_port=%d", wggoGoPort),
		"replace_peers=true",
		"public_key=" + hex.EncodeToString(p.kernelPub[:]),
		fmt.Sprintf("endpoint=127.0.0.1:%d", wggoKernelPort),
		"replace_allowed_ips=true",
		"allowed_ip=10.99.0.1/32",
		"allowed_ip=fd99::1/128",
	}, "\n") + "\n"
	err = inNetns(n.ns, func() error {
		p.dev = device.NewDevice(tdev, conn.NewDefaultBind(), logger)
		if err := p.dev.Up(); err != nil {
			return fmt.Errorf("up: %w", err)
		}
		if err := p.dev.IpcSet(uapi); err != nil {
			return fmt.Errorf("IpcSet: %w", err)
		}
		return nil
	})
	if p.dev != nil {
		// Runs before the link is deleted. Down first: Close closes the
		// netstack TUN before it stops the peers, and a peer's receiver
		// still handing a packet to the netstack (whose answer, an ICMP
		// error say, goes out through the TUN) then sends on the TUN's
		// closed channel and panics the whole test binary (seen in CI).
		// Down stops the peers and waits for their receivers.
		t.Cleanup(func() {
			_ = p.dev.Down()
			p.dev.Close()
		})
	} else {
		tdev.Close()
	}
	if err != nil {
		t.Fatalf("wireguard-go device: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			p.dumpState(t)
		}
	})

	if !n.portBusy(t, wggoGoPort) {
		t.Fatalf("wireguard-go's UDP port %d is not bound in the test namespace", wggoGoPort)
	}
	if gp := p.goPeer(t); gp.pub != p.kernelPub {
		t.Fatalf("wireguard-go peer: want the kernel's public key %s, got %s", p.kernelPub, gp.pub)
	}
	return p
}

// kernelDialUDP returns a connected UDP socket created in the namespace.
func (p *wggoPair) kernelDialUDP(t *testing.T, to netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := inNetns(p.n.ns, func() error {
		var err error
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
		return err
	}); err != nil {
		t.Fatalf("kernel socket: dial udp %s: %v", to, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ---------------------------------------------------------------------------
// State of both sides

// wggoPeerState is wireguard-go's view of its (only) peer, from IpcGet.
type wggoPeerState struct {
	pub       wgtypes.Key
	endpoint  string
	handshake time.Time // zero if none
	rx, tx    uint64
}

// goPeer reads wireguard-go's only peer.
func (p *wggoPair) goPeer(t *testing.T) wggoPeerState {
	t.Helper()
	s, err := p.dev.IpcGet()
	if err != nil {
		t.Fatalf("wireguard-go IpcGet: %v", err)
	}
	peers, err := parseWggoPeers(s)
	if err != nil {
		t.Fatalf("wireguard-go IpcGet: %v\n%s", err, s)
	}
	if len(peers) != 1 {
		t.Fatalf("wireguard-go IpcGet: want 1 peer, got %d\n%s", len(peers), s)
	}
	return peers[0]
}

func parseWggoPeers(s string) ([]wggoPeerState, error) {
	var peers []wggoPeerState
	var sec, nsec int64
	flush := func() {
		if len(peers) > 0 && (sec != 0 || nsec != 0) {
			peers[len(peers)-1].handshake = time.Unix(sec, nsec)
		}
		sec, nsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		if k == "public_key" {
			flush()
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != len(wgtypes.Key{}) {
				return nil, fmt.Errorf("bad public_key %q", v)
			}
			peers = append(peers, wggoPeerState{pub: wgtypes.Key(b)})
			continue
		}
		if len(peers) == 0 {
			continue
		}
		cur := &peers[len(peers)-1]
		var err error
		switch k {
		case "endpoint":
			cur.endpoint = v
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			cur.rx, err = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			cur.tx, err = strconv.ParseUint(v, 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("bad %s=%q: %w", k, v, err)
		}
	}
	flush()
	return peers, sc.Err()
}

// kernelPeer reads the kernel device's view of the wireguard-go peer.
func (p *wggoPair) kernelPeer(t *testing.T) wgtypes.Peer {
	t.Helper()
	d := p.n.device(t, wggoLink)
	for _, pe := range d.Peers {
		if pe.PublicKey == p.goPub {
			return pe
		}
	}
	t.Fatalf("kernel device %s has no peer %s (%d peers)", wggoLink, p.goPub, len(d.Peers))
	return wgtypes.Peer{}
}

// waitKernelHandshake polls until the kernel's peer reports a handshake.
func (p *wggoPair) waitKernelHandshake(t *testing.T, failure string) time.Time {
	t.Helper()
	var hs time.Time
	wggoPoll(t, wggoHandshakeWait, failure, func() bool {
		hs = p.kernelPeer(t).LastHandshakeTime
		return !hs.IsZero()
	})
	return hs
}

// waitGoHandshake polls until wireguard-go's peer reports a handshake.
func (p *wggoPair) waitGoHandshake(t *testing.T, failure string) time.Time {
	t.Helper()
	var hs time.Time
	wggoPoll(t, wggoHandshakeWait, failure, func() bool {
		hs = p.goPeer(t).handshake
		return !hs.IsZero()
	})
	return hs
}

// wggoPoll calls cond every 50 ms until it holds; after d the test fails.
func wggoPoll(t *testing.T, d time.Duration, failure string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s within %v", failure, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wggoCheckHandshakeTime checks that a reported handshake time is a wall
// clock time during the test (both sides use the guest's real-time clock).
func wggoCheckHandshakeTime(t *testing.T, side string, hs, start time.Time) {
	t.Helper()
	const slack = 2 * time.Second
	if now := time.Now(); hs.Before(start.Add(-slack)) || hs.After(now.Add(slack)) {
		t.Errorf("%s: last handshake time %v is outside the test's run [%v, %v]", side, hs, start, now)
	}
}

// dumpState logs both sides in the style of `wg show`.
func (p *wggoPair) dumpState(t *testing.T) {
	t.Helper()
	var b strings.Builder
	if d, err := p.n.wg.Device(wggoLink); err != nil {
		fmt.Fprintf(&b, "kernel %s: wgctrl: %v\n", wggoLink, err)
	} else {
		fmt.Fprintf(&b, "kernel interface: %s\n  public key: %s\n  listening port: %d\n", d.Name, d.PublicKey, d.ListenPort)
		for _, pe := range d.Peers {
			fmt.Fprintf(&b, "  peer: %s\n    endpoint: %v\n    allowed ips: %s\n    latest handshake: %s\n    transfer: %d B received, %d B sent\n",
				pe.PublicKey, pe.Endpoint, strings.Join(sortedPrefixes(pe.AllowedIPs), ", "),
				wggoHandshakeString(pe.LastHandshakeTime), pe.ReceiveBytes, pe.TransmitBytes)
		}
	}
	if s, err := p.dev.IpcGet(); err != nil {
		fmt.Fprintf(&b, "wireguard-go: IpcGet: %v\n", err)
	} else if peers, err := parseWggoPeers(s); err != nil {
		fmt.Fprintf(&b, "wireguard-go: IpcGet: %v\n%s", err, s)
	} else {
		fmt.Fprintf(&b, "wireguard-go:\n  public key: %s\n  listening port: %d\n", p.goPub, wggoGoPort)
		for _, pe := range peers {
			fmt.Fprintf(&b, "  peer: %s\n    endpoint: %s\n    latest handshake: %s\n    transfer: %d B received, %d B sent\n",
				pe.pub, pe.endpoint, wggoHandshakeString(pe.handshake), pe.rx, pe.tx)
		}
	}
	fmt.Fprintf(&b, "wireguard-go log (last %d lines):\n%s", wggoLogLines, p.log.String())
	t.Log("state at failure:\n" + b.String())
}

func wggoHandshakeString(hs time.Time) string {
	if hs.IsZero() {
		return "(none)"
	}
	return fmt.Sprintf("%s (%v ago)", hs.Format(time.RFC3339Nano), time.Since(hs).Round(time.Millisecond))
}

// wggoLog keeps the last lines of wireguard-go's log; its goroutines may
// log after the test has ended, so it cannot go to t.Log directly.
type wggoLog struct {
	mu    sync.Mutex
	lines []string
}

const wggoLogLines = 60

func (l *wggoLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := time.Now().Format("15:04:05.000 ") + fmt.Sprintf(format, args...)
	if len(l.lines) == wggoLogLines {
		l.lines = l.lines[1:]
	}
	l.lines = append(l.lines, line)
}

func (l *wggoLog) addError(format string, args ...any) { l.add("ERROR: "+format, args...) }

func (l *wggoLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return "  " + strings.Join(l.lines, "\n  ") + "\n"
}

// ---------------------------------------------------------------------------
// Data

// udpEcho runs a UDP echo server on the netstack at addr and sends it 100
// datagrams of 1 to 1300 bytes from a kernel socket, one at a time, each of
// which must come back intact.
func (p *wggoPair) udpEcho(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	srv, err := p.tnet.ListenUDPAddrPort(addr)
	if err != nil {
		t.Fatalf("netstack listen udp %s: %v", addr, err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { srv.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := srv.WriteTo(buf[:n], from); err != nil {
				return
			}
		}
	}()

	c := p.kernelDialUDP(t, addr)
	const count, maxSize = 100, 1300
	rng := rand.New(rand.NewPCG(1, uint64(addr.Addr().BitLen())))
	got := make([]byte, 65536)
	retries := 0
	for i := range count {
		size := 1 + i*(maxSize-1)/(count-1)
		msg := make([]byte, size)
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		// The first datagram waits for the handshake. Each is sent up to
		// three times: a loss on loopback would be unusual, a corruption
		// is a failure at once.
		wait := 3 * time.Second
		if i == 0 {
			wait = wggoHandshakeWait
		}
		ok := false
		for try := 0; try < 3 && !ok; try++ {
			if try > 0 {
				retries++
			}
			if _, err := c.Write(msg); err != nil {
				t.Fatalf("datagram %d (%d bytes): kernel socket write: %v", i, size, err)
			}
			if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
				t.Fatal(err)
			}
			for {
				n, err := c.Read(got)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if err != nil {
					t.Fatalf("datagram %d (%d bytes): kernel socket read: %v", i, size, err)
				}
				if bytes.Equal(got[:n], msg) {
					ok = true
					break
				}
				if retries == 0 {
					t.Fatalf("datagram %d: sent %d bytes, echo of %d bytes differs", i, size, n)
				}
				// After a retransmission a late echo of an earlier
				// datagram may still arrive: read on.
			}
		}
		if !ok {
			t.Fatalf("datagram %d (%d bytes) to %s: no echo after 3 tries", i, size, addr)
		}
	}
	if retries > 0 {
		t.Logf("%d datagrams were retransmitted after a timeout", retries)
	}
}

// tcpBothWays listens on the netstack at addr, dials it from the kernel
// side, and sends size bytes each way at the same time; each side compares
// the SHA-256 of what it received with what the other side sent.
func (p *wggoPair) tcpBothWays(t *testing.T, addr netip.AddrPort, size int) {
	t.Helper()
	ln, err := p.tnet.ListenTCPAddrPort(addr)
	if err != nil {
		t.Fatalf("netstack listen tcp %s: %v", addr, err)
	}
	defer ln.Close()

	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		acc <- accepted{c, err}
	}()

	var kc net.Conn
	if err := inNetns(p.n.ns, func() error {
		var err error
		kc, err = net.DialTimeout("tcp", addr.String(), wggoConnectWait)
		return err
	}); err != nil {
		t.Fatalf("kernel side: dial tcp %s: %v", addr, err)
	}
	defer kc.Close()
	var gc net.Conn
	select {
	case a := <-acc:
		if a.err != nil {
			t.Fatalf("netstack accept on %s: %v", addr, a.err)
		}
		gc = a.c
	case <-time.After(wggoConnectWait):
		t.Fatalf("netstack accept on %s: nothing within %v although the kernel side connected", addr, wggoConnectWait)
	}
	defer gc.Close()
	deadline := time.Now().Add(wggoTransferWait)
	for _, c := range []net.Conn{kc, gc} {
		if err := c.SetDeadline(deadline); err != nil {
			t.Fatal(err)
		}
	}

	type result struct {
		sent, received [sha256.Size]byte
		n              int64
		err            error
	}
	// run writes size pseudo-random bytes (from seed) and then closes its
	// writing half, while reading until EOF.
	run := func(c net.Conn, seed uint64) <-chan result {
		out := make(chan result, 1)
		go func() {
			var r result
			werr := make(chan error, 1)
			go func() {
				h := sha256.New()
				src := io.LimitReader(wggoStream(seed), int64(size))
				_, err := io.Copy(io.MultiWriter(c, h), src)
				h.Sum(r.sent[:0])
				if err == nil {
					err = c.(interface{ CloseWrite() error }).CloseWrite()
				}
				werr <- err
			}()
			h := sha256.New()
			n, err := io.Copy(h, c)
			h.Sum(r.received[:0])
			r.n = n
			if err != nil {
				err = fmt.Errorf("read after %d bytes: %w", n, err)
			}
			if e := <-werr; e != nil {
				err = errors.Join(err, fmt.Errorf("write: %w", e))
			}
			r.err = err
			out <- r
		}()
		return out
	}
	start := time.Now()
	kch, gch := run(kc, 1), run(gc, 2)
	kr, gr := <-kch, <-gch
	elapsed := time.Since(start)
	if kr.err != nil {
		t.Errorf("kernel side: %v", kr.err)
	}
	if gr.err != nil {
		t.Errorf("wireguard-go side: %v", gr.err)
	}
	if kr.n != int64(size) || kr.received != gr.sent {
		t.Errorf("wireguard-go → kernel: sent %d bytes (sha256 %x), the kernel side received %d bytes (sha256 %x)", size, gr.sent, kr.n, kr.received)
	}
	if gr.n != int64(size) || gr.received != kr.sent {
		t.Errorf("kernel → wireguard-go: sent %d bytes (sha256 %x), wireguard-go received %d bytes (sha256 %x)", size, kr.sent, gr.n, gr.received)
	}
	t.Logf("%d bytes each way in %v", size, elapsed.Round(time.Millisecond))
}

// wggoStream is an endless deterministic byte stream.
func wggoStream(seed uint64) io.Reader {
	var key [32]byte
	key[0] = byte(seed)
	return rand.NewChaCha8(key)
}
