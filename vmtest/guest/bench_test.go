package guest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vnl "github.com/vishvananda/netlink"
	"github.com/wgkit/wgkit/initramfs/manifest"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestBench is wgbuild bench's guest side. The host puts the wireguard
// modules to compare into the image unloaded (manifest.BenchModulesEnv);
// each round runs the same workloads over every variant in turn, in an
// order that rotates from round to round:
//
//   - veth: the two namespaces' veth pair with no tunnel, the ceiling;
//   - upstream, ours: the kernel modules, loaded for the variant and
//     unloaded after it;
//   - upstream-aa: upstream again, the A/A control that says how far two
//     runs of the same code differ;
//   - wireguard-go: the userspace implementation on a TUN device.
//
// Each measurement is printed as a manifest.BenchMarker line. The test
// asserts that every workload moved data and that every module loaded and
// unloaded; it asserts nothing about speed.
func TestBench(t *testing.T) {
	mods := benchModules(t)
	if mods == nil {
		t.Skipf("only wgbuild bench runs it (%s unset)", manifest.BenchModulesEnv)
	}
	cfg := benchConfig{
		rounds:  benchInt(t, manifest.BenchRoundsEnv, 3),
		seconds: time.Duration(benchInt(t, manifest.BenchSecondsEnv, 3)) * time.Second,
		peers:   benchInt(t, manifest.BenchPeersEnv, 1000),
	}
	variants := []string{benchVeth}
	for _, v := range []string{benchUpstream, benchOurs} {
		if mods[v] != "" {
			variants = append(variants, v)
		}
	}
	if mods[benchUpstream] != "" {
		variants = append(variants, benchUpstreamAA)
	}
	variants = append(variants, benchWGGo)
	t.Logf("bench: %d rounds of %v, %v per throughput workload, %d peers for the configuration plane", cfg.rounds, variants, cfg.seconds, cfg.peers)
	for round := 1; round <= cfg.rounds; round++ {
		// Rotate, so that no variant always runs first or after the
		// same other one.
		order := append(slices.Clone(variants[round%len(variants):]), variants[:round%len(variants)]...)
		for _, v := range order {
			ok := t.Run(fmt.Sprintf("round%d/%s", round, v), func(t *testing.T) {
				b := &bench{t: t, cfg: cfg, variant: v, round: round}
				module := mods[v]
				if v == benchUpstreamAA {
					module = mods[benchUpstream]
				}
				if module != "" {
					loadWireguard(t, module)
					defer unloadWireguard(t)
				}
				b.run()
			})
			if !ok {
				return
			}
		}
	}
}

// The variants.
const (
	benchVeth       = "veth"
	benchUpstream   = "upstream"
	benchUpstreamAA = "upstream-aa"
	benchOurs       = "ours"
	benchWGGo       = "wireguard-go"
)

type benchConfig struct {
	rounds  int
	seconds time.Duration
	peers   int
}

// benchModules parses manifest.BenchModulesEnv: variant -> guest path.
func benchModules(t *testing.T) map[string]string {
	s := os.Getenv(manifest.BenchModulesEnv)
	if s == "" {
		return nil
	}
	mods := map[string]string{}
	for _, f := range strings.Fields(s) {
		v, p, ok := strings.Cut(f, "=")
		if !ok || (v != benchOurs && v != benchUpstream) {
			t.Fatalf("%s: %q is not ours=PATH or upstream=PATH", manifest.BenchModulesEnv, f)
		}
		mods[v] = p
	}
	return mods
}

func benchInt(t *testing.T, env string, def int) int {
	s := os.Getenv(env)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", env, s)
	}
	return n
}

// loadWireguard loads a wireguard module file.
func loadWireguard(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
}

// unloadWireguard removes the wireguard module once the namespaces of the
// variant (and the devices in them) are gone: their cleanup runs in the
// background, so a busy module is tried again for a while.
func unloadWireguard(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(scaled(30 * time.Second))
	for {
		err := unix.DeleteModule("wireguard", unix.O_NONBLOCK)
		if err == nil {
			return
		}
		if !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
			t.Fatalf("rmmod wireguard: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bench runs the workloads of one variant in one round.
type bench struct {
	t       *testing.T
	cfg     benchConfig
	variant string
	round   int
}

// benchPath is where traffic goes: A sends from its namespace to B's
// addresses (the tunnel's inner ones, or the veth's for the ceiling).
type benchPath struct {
	a, b       *testNS
	dst4, dst6 netip.Addr
	// devA and devB carry the traffic: the tunnel devices, or the veths.
	devA, devB string
	// mtu sets the MTU of the path's links: the veth's, and the
	// tunnel's 80 bytes less.
	setMTU func(mtu int)
}

const (
	benchTCPPort  = 5201
	benchUDPPort  = 5202
	benchEchoPort = 5203
	// benchDatagram is the UDP payload of the throughput workload: a
	// full packet at the tunnel's 1420-byte MTU over IPv4.
	benchDatagram = 1420 - 28
	benchJumbo    = 9000
)

func (b *bench) report(metric string, value float64, unit string, higher bool) {
	fmt.Println(manifest.BenchSample{Variant: b.variant, Round: b.round, Metric: metric, Value: value, Unit: unit, Higher: higher}.Line())
}

func (b *bench) run() {
	t := b.t
	var p *benchPath
	switch b.variant {
	case benchVeth:
		p = benchVethPath(t)
	case benchWGGo:
		p = benchGoTunnel(t)
	default:
		p = benchKernelTunnel(t)
	}
	d := b.cfg.seconds
	cpu := newCPUMeter(t)
	bytes := b.tcp(p, p.dst4, 1, d)
	b.report("tcp1", mbit(bytes, d), "Mbit/s", true)
	if busy := cpu.busy(); bytes > 0 {
		b.report("cpu-per-gib", busy.Seconds()/(float64(bytes)/(1<<30)), "CPU s/GiB", false)
	}
	b.report("tcp4", mbit(b.tcp(p, p.dst4, 4, d), d), "Mbit/s", true)
	b.report("tcp1-v6", mbit(b.tcp(p, p.dst6, 1, d), d), "Mbit/s", true)
	b.udp(p, d)
	b.latency(p, "idle")
	b.latency(p, "load")
	p.setMTU(benchJumbo)
	b.report("tcp1-jumbo", mbit(b.tcp(p, p.dst4, 1, d), d), "Mbit/s", true)
	if b.variant != benchVeth && b.variant != benchWGGo {
		b.configPlane()
		b.handshakes()
	}
}

// benchHandshakePeers is how many handshakes the handshake workload
// starts at once.
const benchHandshakePeers = 64

// handshakes measures handshakes completed per second when many start at
// once: A's device gets benchHandshakePeers more peers, each a device of
// its own in B's namespace (its own key and port, an inner address of its
// own on A's side); one datagram to each address starts every handshake,
// and the rate is their number over the time until the last completed.
func (b *bench) handshakes() {
	t := b.t
	const n = benchHandshakePeers
	tn := newTunnel(t, tunConfig{})
	aPub := tn.a.key.PublicKey()
	var peers []wgtypes.PeerConfig
	for i := range n {
		name := fmt.Sprintf("wgh%d", i)
		key := peerKey(t.Name(), i)
		port := 52000 + i
		tn.b.addWG(t, name)
		tn.b.configure(t, name, wgtypes.Config{PrivateKey: &key, ListenPort: &port,
			Peers: []wgtypes.PeerConfig{{PublicKey: aPub}}})
		if err := tn.b.rtnl.LinkSetUp(tn.b.link(t, name)); err != nil {
			t.Fatalf("B: ip link set %s up: %v", name, err)
		}
		peers = append(peers, wgtypes.PeerConfig{
			PublicKey:  key.PublicKey(),
			Endpoint:   net.UDPAddrFromAddrPort(netip.AddrPortFrom(tunOuterB4, uint16(port))),
			AllowedIPs: []net.IPNet{ipNet(netip.PrefixFrom(benchHandshakeAddr(i), 32))},
		})
	}
	tn.a.configure(t, tunDev, wgtypes.Config{Peers: peers})
	all := ipNet(netip.MustParsePrefix("10.201.0.0/16"))
	if err := tn.a.rtnl.RouteAdd(&vnl.Route{LinkIndex: tn.a.link(t, tunDev).Attrs().Index, Dst: &all}); err != nil {
		t.Fatalf("A: ip route add %s dev %s: %v", all.String(), tunDev, err)
	}
	c := tn.a.udpSocket(t, netip.AddrPortFrom(tunInnerA4, 0))
	start := time.Now()
	for i := range n {
		if _, err := c.WriteToUDPAddrPort([]byte("hello"), netip.AddrPortFrom(benchHandshakeAddr(i), 9)); err != nil {
			t.Fatalf("A: datagram to handshake peer %d: %v", i, err)
		}
	}
	deadline := start.Add(scaled(time.Minute))
	for {
		done := 0
		for _, p := range tn.a.device(t, tunDev).Peers {
			if !p.LastHandshakeTime.IsZero() && p.PublicKey != tn.b.key.PublicKey() {
				done++
			}
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handshakes: %d of %d completed within %v", done, n, scaled(time.Minute))
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.report("handshakes", n/time.Since(start).Seconds(), "handshakes/s", true)
}

// benchHandshakeAddr is the inner address of A's i-th handshake peer.
func benchHandshakeAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 201, byte(i >> 8), byte(i)})
}

func mbit(bytes int64, d time.Duration) float64 {
	return float64(bytes) * 8 / d.Seconds() / 1e6
}

// benchVethPath is two namespaces joined by a veth pair, no tunnel.
func benchVethPath(t *testing.T) *benchPath {
	a, b := newTestNS(t), newTestNS(t)
	benchVeths(t, a, b)
	return &benchPath{a: a, b: b, dst4: tunOuterB4, dst6: tunOuterB6, devA: tunVethA, devB: tunVethB, setMTU: func(mtu int) { benchSetMTU(t, mtu, a, b, tunVethA, tunVethB) }}
}

// benchVeths joins a and b by tunnel_test.go's veth pair and addresses.
func benchVeths(t *testing.T, a, b *testNS) {
	t.Helper()
	attrs := vnl.NewLinkAttrs()
	attrs.Name = tunVethA
	if err := a.rtnl.LinkAdd(&vnl.Veth{LinkAttrs: attrs, PeerName: tunVethB, PeerNamespace: vnl.NsFd(int(b.ns))}); err != nil {
		t.Fatalf("ip link add %s type veth peer %s: %v", tunVethA, tunVethB, err)
	}
	sides := []*tunSide{
		{testNS: a, name: "A", veth: tunVethA, outer4: tunOuterA4, outer6: tunOuterA6},
		{testNS: b, name: "B", veth: tunVethB, outer4: tunOuterB4, outer6: tunOuterB6},
	}
	for _, s := range sides {
		s.up(t, "lo")
		s.addrAdd(t, s.veth, netip.PrefixFrom(s.outer4, 24))
		s.addrAdd(t, s.veth, netip.PrefixFrom(s.outer6, 64))
		s.up(t, s.veth)
	}
}

// benchSetMTU sets the veths' MTU to mtu and, if tunnel is set, the
// tunnel devices' to 80 bytes less (the IPv6 outer header's overhead).
func benchSetMTU(t *testing.T, mtu int, a, b *testNS, vethA, vethB string, tunnel ...string) {
	t.Helper()
	for i, n := range []*testNS{a, b} {
		veth := []string{vethA, vethB}[i]
		if err := n.rtnl.LinkSetMTU(n.link(t, veth), mtu); err != nil {
			t.Fatalf("ip link set %s mtu %d: %v", veth, mtu, err)
		}
		for _, dev := range tunnel {
			if err := n.rtnl.LinkSetMTU(n.link(t, dev), mtu-80); err != nil {
				t.Fatalf("ip link set %s mtu %d: %v", dev, mtu-80, err)
			}
		}
	}
}

// benchKernelTunnel is tunnel_test.go's tunnel on the loaded module, with
// the session up.
func benchKernelTunnel(t *testing.T) *benchPath {
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)
	return &benchPath{a: tn.a.testNS, b: tn.b.testNS, dst4: tunInnerB4, dst6: tunInnerB6, devA: tunDev, devB: tunDev,
		setMTU: func(mtu int) { benchSetMTU(t, mtu, tn.a.testNS, tn.b.testNS, tunVethA, tunVethB, tunDev) }}
}

// benchGoTunnel is the same tunnel with wireguard-go on a TUN device in
// each namespace, each in a process of its own (this binary as
// helperWGGo) started inside its namespace: wireguard-go opens sockets
// and reads its device's MTU from whatever thread it is on, so all of its
// threads must be in the namespace, as they are for wireguard-go run as
// a daemon.
func benchGoTunnel(t *testing.T) *benchPath {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		_ = os.MkdirAll("/dev/net", 0o755)
		if err := unix.Mknod("/dev/net/tun", unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err != nil {
			t.Fatalf("mknod /dev/net/tun: %v", err)
		}
	}
	a, b := newTestNS(t), newTestNS(t)
	benchVeths(t, a, b)
	keyA, keyB := newPrivateKey(t), newPrivateKey(t)
	sides := []struct {
		n              *testNS
		key, peer      wgtypes.Key
		port, peerPort int
		peerOuter      netip.Addr
		inner4, inner6 netip.Addr
		peer4, peer6   netip.Addr
	}{
		{a, keyA, keyB.PublicKey(), tunPortA, tunPortB, tunOuterB4, tunInnerA4, tunInnerA6, tunInnerB4, tunInnerB6},
		{b, keyB, keyA.PublicKey(), tunPortB, tunPortA, tunOuterA4, tunInnerB4, tunInnerB6, tunInnerA4, tunInnerA6},
	}
	for _, s := range sides {
		uapi := fmt.Sprintf("private_key=%s\nlisten_port=%d\nreplace_peers=true\npublic_key=%s\nendpoint=%s\nreplace_allowed_ips=true\nallowed_ip=%s/32\nallowed_ip=%s/128\n",
			hex.EncodeToString(s.key[:]), s.port, hex.EncodeToString(s.peer[:]),
			netip.AddrPortFrom(s.peerOuter, uint16(s.peerPort)), s.peer4, s.peer6)
		startWGGo(t, s.n, uapi)
		ts := &tunSide{testNS: s.n, name: "wg-go"}
		ts.addrAdd(t, tunDev, netip.PrefixFrom(s.inner4, 24))
		ts.addrAdd(t, tunDev, netip.PrefixFrom(s.inner6, 64))
		ts.up(t, tunDev)
	}
	sa := &tunSide{testNS: a, name: "A"}
	if err := sa.ping(tunInnerB4); err != nil {
		t.Fatalf("no session between the wireguard-go devices: %v", err)
	}
	return &benchPath{a: a, b: b, dst4: tunInnerB4, dst6: tunInnerB6, devA: tunDev, devB: tunDev,
		setMTU: func(mtu int) { benchSetMTU(t, mtu, a, b, tunVethA, tunVethB, tunDev) }}
}

const (
	// helperWGGo runs a wireguard-go device (wggoHelper).
	helperWGGo = "wggo"
	// wggoUAPIEnv is its configuration, in wireguard-go's UAPI format.
	wggoUAPIEnv = "WGVM_WGGO_UAPI"
)

// startWGGo starts a wireguard-go device named tunDev in n, configured
// with uapi, and waits until it is up; the test's end stops it.
func startWGGo(t *testing.T, n *testNS, uapi string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+helperWGGo, wggoUAPIEnv+"="+uapi)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := inNetns(n.ns, cmd.Start); err != nil {
		t.Fatalf("start wireguard-go: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("wireguard-go exited: %v (stderr: %q)", err, stderr.String())
			}
		case <-time.After(scaled(10 * time.Second)):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("wireguard-go did not stop within %v of its stdin closing", scaled(10*time.Second))
		}
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		if line != "up" {
			t.Fatalf("wireguard-go did not come up: %q (stderr: %q)", line, stderr.String())
		}
	case <-time.After(scaled(10 * time.Second)):
		t.Fatalf("wireguard-go did not come up within %v (stderr: %q)", scaled(10*time.Second), stderr.String())
	}
}

// wggoHelper is the wireguard-go process: a TUN device named tunDev, the
// configuration of wggoUAPIEnv, "up" on out once it runs; it stops when
// in ends.
func wggoHelper(in io.Reader, out io.Writer) int {
	dev, err := tun.CreateTUN(tunDev, 1420)
	if err != nil {
		fmt.Fprintf(os.Stderr, "create TUN %s: %v\n", tunDev, err)
		return 1
	}
	d := device.NewDevice(dev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, "wireguard-go: "))
	defer d.Close()
	if err := d.IpcSet(os.Getenv(wggoUAPIEnv)); err != nil {
		fmt.Fprintf(os.Stderr, "configure: %v\n", err)
		return 1
	}
	if err := d.Up(); err != nil {
		fmt.Fprintf(os.Stderr, "up: %v\n", err)
		return 1
	}
	fmt.Fprintln(out, "up")
	_, _ = io.Copy(io.Discard, in)
	return 0
}

// tcp sends from A to B over n connections for d and returns the bytes B
// received. The interval starts once every connection is established: a
// SYN lost in queues that an earlier workload filled costs a 1 s
// retransmission, which would otherwise eat a short interval whole.
func (b *bench) tcp(p *benchPath, dst netip.Addr, n int, d time.Duration) int64 {
	t := b.t
	t.Helper()
	ln, err := inNetnsGet(p.b.ns, func() (net.Listener, error) { return net.Listen("tcp", netip.AddrPortFrom(dst, benchTCPPort).String()) })
	if err != nil {
		t.Fatalf("B: listen: %v", err)
	}
	defer ln.Close()
	var got atomic.Int64
	var wg sync.WaitGroup
	// started is closed once end is set; the readers wait for it.
	started := make(chan struct{})
	var end time.Time
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				<-started
				buf := make([]byte, 256<<10)
				for {
					_ = c.SetReadDeadline(end.Add(scaled(5 * time.Second)))
					k, err := c.Read(buf)
					got.Add(int64(k))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := inNetnsGet(p.a.ns, func() (net.Conn, error) {
			return net.DialTimeout("tcp", netip.AddrPortFrom(dst, benchTCPPort).String(), scaled(5*time.Second))
		})
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			close(started)
			t.Fatalf("A: connect to %s: %v", dst, err)
		}
		conns = append(conns, c)
	}
	end = time.Now().Add(d)
	close(started)
	errs := make(chan error, n)
	for _, c := range conns {
		go func() {
			defer c.Close()
			buf := make([]byte, 128<<10)
			_ = c.SetWriteDeadline(end)
			for time.Now().Before(end) {
				if _, err := c.Write(buf); err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						break
					}
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	// Count what arrived by the end of the interval: the bytes still in
	// flight after it are not the interval's.
	time.Sleep(time.Until(end))
	received := got.Load()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("A: send to %s: %v", dst, err)
		}
	}
	ln.Close()
	wg.Wait()
	if received == 0 {
		t.Errorf("%d TCP stream(s) to %s moved no data in %v", n, dst, d)
	}
	return received
}

// udp sends full-size datagrams from A to B as fast as A can for d and
// reports what B received, the fraction lost, and where it was lost: the
// datagrams A's device dropped on transmit, and those B's device dropped
// or B's socket had no room for.
func (b *bench) udp(p *benchPath, d time.Duration) {
	t := b.t
	sb := &tunSide{testNS: p.b, name: "B"}
	txDrop0, rxDrop0, rcvbuf0 := linkStats(t, p.a, p.devA).TxDropped, linkStats(t, p.b, p.devB).RxDropped, sb.snmp(t, "Udp")["RcvbufErrors"]
	recv, loss := b.udpFlood(p, d)
	b.report("udp", mbit(recv, d), "Mbit/s", true)
	b.report("udp-loss", loss*100, "%", false)
	b.report("udp-drop-tx", float64(linkStats(t, p.a, p.devA).TxDropped-txDrop0), "packets", false)
	b.report("udp-drop-rx", float64(linkStats(t, p.b, p.devB).RxDropped-rxDrop0), "packets", false)
	b.report("udp-drop-socket", float64(sb.snmp(t, "Udp")["RcvbufErrors"]-rcvbuf0), "packets", false)
}

// linkStats reads a link's counters.
func linkStats(t *testing.T, n *testNS, dev string) *vnl.LinkStatistics {
	t.Helper()
	l := n.link(t, dev)
	if l.Attrs().Statistics == nil {
		t.Fatalf("%s has no statistics", dev)
	}
	return l.Attrs().Statistics
}

// udpFlood sends full-size datagrams from A to B as fast as A can for d
// and returns the bytes B received and the fraction lost.
func (b *bench) udpFlood(p *benchPath, d time.Duration) (int64, float64) {
	t := b.t
	dst := netip.AddrPortFrom(p.dst4, benchUDPPort)
	rc, err := inNetnsGet(p.b.ns, func() (*net.UDPConn, error) { return net.ListenUDP("udp", net.UDPAddrFromAddrPort(dst)) })
	if err != nil {
		t.Fatalf("B: listen: %v", err)
	}
	defer rc.Close()
	_ = rc.SetReadBuffer(4 << 20)
	sc, err := inNetnsGet(p.a.ns, func() (*net.UDPConn, error) { return net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst)) })
	if err != nil {
		t.Fatalf("A: dial: %v", err)
	}
	defer sc.Close()
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			k, err := rc.Read(buf)
			if err != nil {
				return
			}
			got.Add(int64(k))
		}
	}()
	msg := make([]byte, benchDatagram)
	var sent int64
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if _, err := sc.Write(msg); err != nil {
			// A full queue (ENOBUFS) is loss on the sender's side.
			sent += int64(len(msg))
			continue
		}
		sent += int64(len(msg))
	}
	// Stragglers still in the tunnel's queues.
	time.Sleep(scaled(300 * time.Millisecond))
	received := got.Load()
	rc.Close()
	<-done
	if received == 0 {
		t.Errorf("UDP to %s: none of %d bytes arrived in %v", dst, sent, d)
		return 0, 1
	}
	return received, 1 - float64(received)/float64(sent)
}

// latency measures round trips from A to B, one 64-byte UDP datagram at a
// time echoed back by B, idle or while a TCP stream fills the path, and
// reports p50 and p99.
func (b *bench) latency(p *benchPath, load string) {
	t := b.t
	const n = 500
	addr := netip.AddrPortFrom(p.dst4, benchEchoPort)
	srv, err := inNetnsGet(p.b.ns, func() (*net.UDPConn, error) { return net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr)) })
	if err != nil {
		t.Fatalf("B: listen: %v", err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			k, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteToUDPAddrPort(buf[:k], from)
		}
	}()
	cli, err := inNetnsGet(p.a.ns, func() (*net.UDPConn, error) { return net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr)) })
	if err != nil {
		t.Fatalf("A: dial: %v", err)
	}
	defer cli.Close()
	stop := make(chan struct{})
	loaded := make(chan struct{})
	if load == "load" {
		go func() {
			defer close(loaded)
			b.tcpUntil(p, stop)
		}()
		time.Sleep(200 * time.Millisecond)
	} else {
		close(loaded)
	}
	var rtts []time.Duration
	lost := 0
	msg, buf := make([]byte, 64), make([]byte, 2048)
	// Under load a round trip can take a good part of a second (the
	// queues fill): the samples stop at n or after twice a throughput
	// interval (at least 3 s), whichever comes first.
	end := time.Now().Add(max(2*b.cfg.seconds, 3*time.Second))
	for i := 0; i < n && time.Now().Before(end); i++ {
		binary.BigEndian.PutUint32(msg, uint32(i))
		start := time.Now()
		if _, err := cli.Write(msg); err != nil {
			lost++
			continue
		}
		_ = cli.SetReadDeadline(time.Now().Add(scaled(time.Second)))
		for {
			k, err := cli.Read(buf)
			if err != nil {
				lost++
				break
			}
			if k == len(msg) && binary.BigEndian.Uint32(buf) == uint32(i) {
				rtts = append(rtts, time.Since(start))
				break
			}
		}
	}
	close(stop)
	<-loaded
	if len(rtts) < 5 || lost > len(rtts) {
		t.Errorf("round trips to %s (%s): %d answered, %d unanswered", addr, load, len(rtts), lost)
		return
	}
	slices.Sort(rtts)
	q := func(f float64) float64 { return float64(rtts[int(f*float64(len(rtts)-1))].Microseconds()) }
	b.report("rtt-p50-"+load, q(0.50), "µs", false)
	b.report("rtt-p99-"+load, q(0.99), "µs", false)
}

// tcpUntil keeps one TCP stream from A to B busy until stop closes.
func (b *bench) tcpUntil(p *benchPath, stop chan struct{}) {
	addr := netip.AddrPortFrom(p.dst4, benchTCPPort+1).String()
	ln, err := inNetnsGet(p.b.ns, func() (net.Listener, error) { return net.Listen("tcp", addr) })
	if err != nil {
		b.t.Errorf("B: listen for the load: %v", err)
		return
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := inNetnsGet(p.a.ns, func() (net.Conn, error) { return net.Dial("tcp", addr) })
	if err != nil {
		b.t.Errorf("A: connect for the load: %v", err)
		return
	}
	defer c.Close()
	go func() {
		<-stop
		c.Close()
	}()
	buf := make([]byte, 128<<10)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// configPlane times the configuration plane on a device of its own: set
// cfg.peers peers with 10 allowed IPs each in one call, dump them,
// replace them all with as many others, remove them all; and the slab
// memory the peers take.
func (b *bench) configPlane() {
	t := b.t
	n := newTestNS(t)
	n.addWG(t, "wgc")
	set, _ := bigConfig("bench-a", b.cfg.peers, 10)
	other, _ := bigConfig("bench-b", b.cfg.peers, 10)
	timed := func(metric string, fn func() error) {
		start := time.Now()
		if err := fn(); err != nil {
			t.Fatalf("configuration plane, %s: %v", metric, err)
		}
		b.report(metric, float64(time.Since(start).Microseconds())/1000, "ms", false)
	}
	slab0 := slabBytes(t)
	timed("config-set", func() error {
		return n.wg.ConfigureDevice("wgc", wgtypes.Config{ReplacePeers: true, Peers: set})
	})
	slab1 := slabBytes(t)
	b.report("memory-per-peer", float64(slab1-slab0)/float64(b.cfg.peers), "bytes", false)
	timed("config-dump", func() error {
		d, err := n.wg.Device("wgc")
		if err == nil && len(d.Peers) != b.cfg.peers {
			err = fmt.Errorf("dumped %d peers, set %d", len(d.Peers), b.cfg.peers)
		}
		return err
	})
	timed("config-replace", func() error {
		return n.wg.ConfigureDevice("wgc", wgtypes.Config{ReplacePeers: true, Peers: other})
	})
	remove := make([]wgtypes.PeerConfig, len(other))
	for i, p := range other {
		remove[i] = wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true}
	}
	timed("config-remove", func() error {
		if err := n.wg.ConfigureDevice("wgc", wgtypes.Config{Peers: remove}); err != nil {
			return err
		}
		d, err := n.wg.Device("wgc")
		if err == nil && len(d.Peers) != 0 {
			err = fmt.Errorf("%d peers left after removing all", len(d.Peers))
		}
		return err
	})
}

// slabBytes is the kernel's slab memory (/proc/meminfo Slab).
func slabBytes(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatalf("read /proc/meminfo: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Slab:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("/proc/meminfo: %q: %v", sc.Text(), err)
			}
			return kb << 10
		}
	}
	t.Fatalf("/proc/meminfo has no Slab line")
	return 0
}

// cpuMeter measures the guest's busy CPU time (all CPUs, /proc/stat).
type cpuMeter struct {
	t     *testing.T
	start time.Duration
}

func newCPUMeter(t *testing.T) *cpuMeter {
	return &cpuMeter{t: t, start: cpuBusy(t)}
}

func (c *cpuMeter) busy() time.Duration { return cpuBusy(c.t) - c.start }

// cpuBusy is the time all CPUs spent other than idle or waiting for I/O.
func cpuBusy(t *testing.T) time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatalf("read /proc/stat: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		t.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("/proc/stat: %q: %v", line, err)
		}
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest time is in user
			busy += v
		}
	}
	// USER_HZ is 100 on every architecture Linux runs this on.
	return time.Duration(busy) * 10 * time.Millisecond
}
