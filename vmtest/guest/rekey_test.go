package guest

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

// The rekey tests' stream: across REKEY_AFTER_TIME (120 s) and the new
// session, at most a handful of datagrams may be lost.
const (
	rekeyRate     = 20 // datagrams a second
	rekeyDuration = 150 * time.Second
	rekeyMaxLost  = 5
)

// requireLong skips a long test unless the host asked for them (wgbuild
// vmtest --long sets WGVM_LONG=1).
func requireLong(t *testing.T, takes string) {
	t.Helper()
	if os.Getenv(manifest.LongEnv) != "1" {
		t.Skipf("long test (%s): run it with make vmtest-long", takes)
	}
}

// TestLongRekey sends a steady stream of datagrams from the kernel to
// wireguard-go for longer than REKEY_AFTER_TIME (120 s): the kernel, as
// initiator, must start a new session by itself, and the stream must go on
// across the key rotation with no more than a handful of datagrams lost.
// It takes two and a half minutes, so it runs only with `make vmtest-long`
// (WGVM_LONG=1 in the guest).
func TestLongRekey(t *testing.T) {
	requireLong(t, "150 s")
	const rate, duration, maxLost = rekeyRate, rekeyDuration, rekeyMaxLost
	p := newWggoPair(t)
	srv, err := p.tnet.ListenUDPAddrPort(netip.AddrPortFrom(wggoGoAddr4, 7))
	if err != nil {
		t.Fatalf("netstack listen: %v", err)
	}
	defer srv.Close()
	seen := make(chan uint64, 4*rate*int(duration/time.Second))
	go func() {
		buf := make([]byte, 64)
		for {
			n, _, err := srv.ReadFrom(buf)
			if err != nil {
				close(seen)
				return
			}
			if n >= 8 {
				seen <- binary.BigEndian.Uint64(buf)
			}
		}
	}()

	c := p.kernelDialUDP(t, netip.AddrPortFrom(wggoGoAddr4, 7))
	first := p.waitKernelHandshakeAfter(t, c, time.Time{})
	t.Logf("first handshake at %v", first.Format(time.TimeOnly))

	sent := sendSequence(c, rate, duration)
	time.Sleep(2 * time.Second) // the last ones in flight
	srv.Close()
	got, lost := countSequence(seen, sent)
	last := p.kernelPeer(t).LastHandshakeTime
	t.Logf("sent %d datagrams over %v, received %d, lost %d; last handshake at %v", sent, duration, got, lost, last.Format(time.TimeOnly))
	if !last.After(first.Add(100 * time.Second)) {
		p.dumpState(t)
		t.Errorf("no new session after %v of traffic: last handshake %v, first %v (REKEY_AFTER_TIME is 120 s)", duration, last, first)
	}
	if lost > maxLost {
		t.Errorf("%d of %d datagrams lost across the rekey, want at most %d", lost, sent, maxLost)
	}
}

// sendSequence writes numbered datagrams (a big-endian counter) to c at
// rate a second for duration, and returns how many went out.
func sendSequence(c interface{ Write([]byte) (int, error) }, rate int, duration time.Duration) uint64 {
	var sent uint64
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	msg := make([]byte, 8)
	for time.Since(start) < duration {
		<-tick.C
		binary.BigEndian.PutUint64(msg, sent)
		if _, err := c.Write(msg); err == nil {
			sent++
		}
	}
	return sent
}

// countSequence drains seen (until it is closed) and counts the distinct
// numbers below sent that arrived, and those that did not.
func countSequence(seen <-chan uint64, sent uint64) (got, lost int) {
	arrived := map[uint64]bool{}
	for n := range seen {
		if n < sent { // not one of the datagrams that started the session
			arrived[n] = true
		}
	}
	return len(arrived), int(sent) - len(arrived)
}

// waitKernelHandshakeAfter sends datagrams on c until the kernel's peer
// reports a handshake later than after.
func (p *wggoPair) waitKernelHandshakeAfter(t *testing.T, c interface{ Write([]byte) (int, error) }, after time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(wggoHandshakeWait)
	for {
		if hs := p.kernelPeer(t).LastHandshakeTime; hs.After(after) && !hs.IsZero() {
			return hs
		}
		if time.Now().After(deadline) {
			p.dumpState(t)
			t.Fatalf("the kernel did not complete a handshake with wireguard-go")
		}
		_, _ = c.Write([]byte("handshake"))
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLongHandshakeGiveUp points A at a port where no wireguard listens and
// sends one datagram: A sends an initiation, retries every REKEY_TIMEOUT
// (5 s) plus up to a third of a second of jitter, gives up after
// REKEY_ATTEMPT_TIME (90 s), as upstream does, 20 initiations in all, and
// drops the datagram that waited (tx_dropped). New traffic afterwards
// starts a new handshake at once. About two minutes: make vmtest-long.
func TestLongHandshakeGiveUp(t *testing.T) {
	requireLong(t, "120 s")
	const (
		silentPort  = 52999
		initiations = 20 // the first, then one a REKEY_TIMEOUT until 90 s have passed, and one more
		minGap      = 5*time.Second - 100*time.Millisecond
		maxGap      = 5*time.Second + time.Second/3 + time.Second // and TCG's scheduling
		quiet       = 15 * time.Second                            // no retry for this long: given up
		wait        = 150 * time.Second
		initLen     = 148 // a handshake initiation
	)
	tn := newTunnel(t, tunConfig{})
	sink := tn.b.udpSocket(t, netip.AddrPortFrom(tn.b.outer4, silentPort))
	tn.a.configure(t, tunDev, wgtypes.Config{Peers: []wgtypes.PeerConfig{{
		PublicKey: tn.b.key.PublicKey(),
		Endpoint:  net.UDPAddrFromAddrPort(netip.AddrPortFrom(tn.b.outer4, silentPort)),
	}}})
	droppedBefore := tn.a.stats(t).TxDropped
	c := tn.a.udpSocket(t, netip.AddrPortFrom(tn.a.inner4, 0))
	dst := netip.AddrPortFrom(tn.b.inner4, 9)
	if _, err := c.WriteToUDPAddrPort([]byte("waits for a session"), dst); err != nil {
		t.Fatalf("A: send to %v: %v", dst, err)
	}

	// next returns when the next initiation arrives, or false after
	// `within` without one.
	buf := make([]byte, 512)
	next := func(within time.Duration) (time.Time, bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			if err := sink.SetReadDeadline(deadline); err != nil {
				t.Fatal(err)
			}
			n, err := sink.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return time.Time{}, false
			}
			if err != nil {
				t.Fatalf("B: read the port A sends to: %v", err)
			}
			if n == initLen && buf[0] == 1 {
				return time.Now(), true
			}
			t.Logf("B: a %d-byte message of type %d, not an initiation", n, buf[0])
		}
	}
	start := time.Now()
	var times []time.Time
	within := tunFirstWait
	for time.Since(start) < wait {
		at, ok := next(within)
		if !ok {
			break
		}
		times = append(times, at)
		within = quiet
	}
	var gaps []string
	for i := 1; i < len(times); i++ {
		g := times[i].Sub(times[i-1])
		gaps = append(gaps, g.Round(10*time.Millisecond).String())
		if g < minGap || g > maxGap {
			t.Errorf("retry %d came %v after the one before, want %v to %v (REKEY_TIMEOUT and its jitter)", i, g.Round(time.Millisecond), minGap, maxGap)
		}
	}
	t.Logf("%d initiations; gaps %s", len(times), strings.Join(gaps, " "))
	if len(times) != initiations {
		t.Fatalf("A sent %d initiations before it went quiet for %v, want %d (REKEY_ATTEMPT_TIME / REKEY_TIMEOUT retries, and one more)", len(times), quiet, initiations)
	}
	if d := tn.a.stats(t).TxDropped - droppedBefore; d != 1 {
		t.Errorf("A's tx_dropped grew by %d when it gave up, want 1 (the datagram that waited for the session)", d)
	}
	if hs := tn.a.peer(t).LastHandshakeTime; !hs.IsZero() {
		t.Errorf("A reports a handshake at %v with a peer that never answered", hs)
	}
	// Giving up is not for ever: new traffic, a new initiation.
	if _, err := c.WriteToUDPAddrPort([]byte("new traffic"), dst); err != nil {
		t.Fatalf("A: send to %v: %v", dst, err)
	}
	if _, ok := next(tunWait); !ok {
		t.Errorf("no initiation within %v of new traffic after giving up", tunWait)
	}
}

// TestLongRekeyWireguardGoInitiates is TestLongRekey the other way round:
// wireguard-go starts the session and sends a steady stream that the
// kernel echoes back, for longer than REKEY_AFTER_TIME (120 s). The
// initiator rekeys, so wireguard-go must start a second session; the
// kernel, responder of both, must not initiate at all (it only sends
// replies, and a responder does not rekey on time), must move its replies
// to the new session, and the echoes must go on across the rotation with
// no more than a handful lost. Initiations are counted on the loopback
// link that both ends' UDP sockets share, by source port.
func TestLongRekeyWireguardGoInitiates(t *testing.T) {
	requireLong(t, "150 s")
	const rate, duration, maxLost, initLen = rekeyRate, rekeyDuration, rekeyMaxLost, 148
	p := newWggoPair(t)
	lo := (&tunSide{testNS: p.n, name: "kernel"}).packetSocket(t, "lo")
	var mu sync.Mutex
	inits := map[uint16][]time.Time{} // by source port
	stopCapture := make(chan struct{})
	captured := make(chan struct{})
	go func() {
		defer close(captured)
		for {
			select {
			case <-stopCapture:
				return
			default:
			}
			f, err := lo.next(time.Now().Add(500 * time.Millisecond))
			if err != nil {
				continue
			}
			if _, udp, ok := udp4Of(f); ok && len(udp) == 8+initLen && udp[8] == 1 {
				mu.Lock()
				sport := binary.BigEndian.Uint16(udp[0:2])
				inits[sport] = append(inits[sport], time.Now())
				mu.Unlock()
			}
		}
	}()

	pc, err := p.n.listenUDP("udp4", 7)
	if err != nil {
		t.Fatalf("kernel: listen udp :7: %v", err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	c, err := p.tnet.DialUDPAddrPort(netip.AddrPort{}, netip.AddrPortFrom(wggoKernelAddr4, 7))
	if err != nil {
		t.Fatalf("netstack dial udp %v:7: %v", wggoKernelAddr4, err)
	}
	defer c.Close()
	echoed := make(chan uint64, 4*rate*int(duration/time.Second))
	go func() {
		defer close(echoed)
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if n >= 8 {
				echoed <- binary.BigEndian.Uint64(buf)
			}
		}
	}()

	start := time.Now()
	sent := sendSequence(c, rate, duration)
	time.Sleep(2 * time.Second) // the last ones in flight
	c.Close()
	close(stopCapture)
	<-captured
	got, lost := countSequence(echoed, sent)
	mu.Lock()
	goInits, kernelInits := inits[wggoGoPort], inits[wggoKernelPort]
	mu.Unlock()
	var at []string
	for _, x := range goInits {
		at = append(at, x.Sub(start).Round(time.Second).String())
	}
	t.Logf("sent %d datagrams over %v, %d echoed back, %d lost; wireguard-go initiated at %s; the kernel initiated %d times",
		sent, duration, got, lost, strings.Join(at, " "), len(kernelInits))
	if len(goInits) < 2 || !goInits[len(goInits)-1].After(start.Add(100*time.Second)) {
		p.dumpState(t)
		t.Errorf("wireguard-go initiated at %v; want a first handshake and a rekey after REKEY_AFTER_TIME (120 s)", at)
	}
	if len(kernelInits) != 0 {
		t.Errorf("the kernel, responder of every session, sent %d initiations: a responder must not rekey on time", len(kernelInits))
	}
	if lost > maxLost {
		t.Errorf("%d of %d echoes lost across the rekey, want at most %d", lost, sent, maxLost)
	}
}
