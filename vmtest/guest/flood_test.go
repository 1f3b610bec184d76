package guest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// floodInitiations is how many handshake initiations the flood sends:
	// far more than a device can process under TCG emulation, so that it
	// is under load for the whole flood.
	floodInitiations = 30000
	// floodDistinct is how many different ones: each costs the device the
	// same work whether or not it has seen it before.
	floodDistinct = 256
)

// mac1 computes the mac1 a handshake message to the holder of pub needs:
// BLAKE2s-128 keyed with BLAKE2s-256("mac1----" || pub), over the message
// before the MACs.
func mac1(t *testing.T, pub [32]byte, msg []byte) []byte {
	t.Helper()
	key := blake2s.Sum256(append([]byte("mac1----"), pub[:]...))
	h, err := blake2s.New128(key[:])
	if err != nil {
		t.Fatal(err)
	}
	h.Write(msg)
	return h.Sum(nil)
}

// floodConn opens the flooder's UDP socket in the device's namespace, and
// returns it with the device's address.
func (p *wggoPair) floodConn(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	var c *net.UDPConn
	if err := inNetns(p.n.ns, func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		return err
	}); err != nil {
		t.Fatalf("flood socket: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), wggoKernelPort)
}

// awaitLegitHandshake has wireguard-go, the legitimate peer, keep sending
// (as an application would) until its handshake with the device completes.
// wireguard-go retries its initiation every 5 s; after a cookie reply its
// retry carries mac2 and gets through. 60 s allows for several retries.
func (p *wggoPair) awaitLegitHandshake(t *testing.T, during string) {
	t.Helper()
	c, err := p.tnet.DialUDPAddrPort(netip.AddrPort{}, netip.AddrPortFrom(wggoKernelAddr4, 9))
	if err != nil {
		t.Fatalf("netstack DialUDP: %v", err)
	}
	defer c.Close()
	deadline := time.Now().Add(60 * time.Second)
	for p.goPeer(t).handshake.IsZero() {
		if time.Now().After(deadline) {
			p.dumpState(t)
			t.Fatalf("wireguard-go did not complete a handshake during %s", during)
		}
		_, _ = c.Write([]byte("during " + during))
		time.Sleep(200 * time.Millisecond)
	}
}

// TestHandshakeFlood sends a flood of handshake initiations with a valid
// mac1 (whose static key and timestamp are garbage, so each costs the
// device Curve25519 work before it is refused) from one UDP socket, and
// checks that the device, under load, answers with cookie replies instead
// of doing that work, and that a legitimate peer (wireguard-go, which
// handles cookie replies) still completes a handshake meanwhile.
func TestHandshakeFlood(t *testing.T) {
	p := newWggoPair(t)
	flood, target := p.floodConn(t)

	var cookies, others atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := flood.ReadFrom(buf)
			if err != nil {
				return
			}
			if n == 64 && binary.LittleEndian.Uint32(buf) == 3 {
				cookies.Add(1)
			} else {
				others.Add(1)
			}
		}
	}()

	// The messages are made before the flood, so that sending them costs
	// the flooder only a system call each: the device must fall behind
	// even where its own work is cheap relative to the guest's (a debug
	// kernel instruments the network stack, not the Curve25519 code).
	msgs := make([][]byte, floodDistinct)
	for i := range msgs {
		msg := make([]byte, 148)
		binary.LittleEndian.PutUint32(msg, 1)
		if _, err := rand.Read(msg[4:116]); err != nil {
			t.Fatal(err)
		}
		copy(msg[116:132], mac1(t, p.kernelPub, msg[:116]))
		msgs[i] = msg
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; i < floodInitiations; i++ {
			if _, err := flood.WriteToUDPAddrPort(msgs[i%len(msgs)], target); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	// Meanwhile the legitimate peer initiates.
	p.awaitLegitHandshake(t, "the flood")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("flood: %v", err)
		}
		t.Logf("the legitimate handshake completed after the flood ended")
	default:
		t.Logf("the legitimate handshake completed while the flood was running")
		if err := <-done; err != nil {
			t.Fatalf("flood: %v", err)
		}
	}
	// Replies to the last initiations may still be on their way.
	time.Sleep(time.Second)
	t.Logf("flood of %d initiations: %d cookie replies, %d other replies to the flooder", floodInitiations, cookies.Load(), others.Load())
	if cookies.Load() == 0 {
		t.Errorf("the device answered a flood of %d initiations with no cookie reply", floodInitiations)
	}
	if others.Load() != 0 {
		t.Errorf("the flooder got %d replies that are not cookie replies; its initiations are garbage", others.Load())
	}
}

// TestHandshakeFloodMAC2 checks what the flood test above takes on trust,
// from the flooder's side: under load, an initiation without mac2 gets a
// cookie reply; the test opens that reply as a peer would (XChaCha20-
// Poly1305 under BLAKE2s-256("cookie--" || the device's public key), the
// answered message's mac1 as associated data) and from then on also sends
// initiations whose mac2 is keyed with the cookie. Those get no cookie
// reply: the device does the handshake work on them (their static key is
// garbage, so it refuses them after it), and beyond the ratelimiter's rate
// from this one source it drops them and counts rx_ratelimited.
func TestHandshakeFloodMAC2(t *testing.T) {
	p := newWggoPair(t)
	flood, target := p.floodConn(t)
	before := ethtoolStats(t, p.n, wggoLink)

	// Initiations without mac2; the sender index (bytes 4-8) says which
	// one a cookie reply answers.
	mac1s := map[uint32][]byte{}
	plain := make([][]byte, floodDistinct)
	for i := range plain {
		msg := make([]byte, 148)
		binary.LittleEndian.PutUint32(msg, 1)
		if _, err := rand.Read(msg[8:116]); err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(msg[4:8], uint32(i))
		copy(msg[116:132], mac1(t, p.kernelPub, msg[:116]))
		mac1s[uint32(i)] = msg[116:132]
		plain[i] = msg
	}
	// Sender indices of the initiations with mac2 have the top bit set.
	const withMAC2 = 1 << 31
	cookieKey := blake2s.Sum256(append([]byte("cookie--"), p.kernelPub[:]...))
	aead, err := chacha20poly1305.NewX(cookieKey[:])
	if err != nil {
		t.Fatal(err)
	}

	var cookie atomic.Pointer[[16]byte]
	var plainReplies, mac2Replies, badReplies atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := flood.Read(buf)
			if err != nil {
				return
			}
			if n != 64 || binary.LittleEndian.Uint32(buf) != 3 {
				badReplies.Add(1)
				continue
			}
			idx := binary.LittleEndian.Uint32(buf[4:8])
			if idx&withMAC2 != 0 {
				mac2Replies.Add(1)
				continue
			}
			plainReplies.Add(1)
			if cookie.Load() != nil {
				continue
			}
			opened, err := aead.Open(nil, buf[8:32], buf[32:64], mac1s[idx])
			if err != nil || len(opened) != 16 {
				badReplies.Add(1)
				continue
			}
			cookie.Store((*[16]byte)(opened))
		}
	}()

	sentMAC2 := 0
	for i := 0; i < floodInitiations; i++ {
		msg := plain[i%len(plain)]
		if c := cookie.Load(); c != nil && i%4 == 0 {
			msg = bytes.Clone(msg)
			binary.LittleEndian.PutUint32(msg[4:8], withMAC2|uint32(i))
			copy(msg[116:132], mac1(t, p.kernelPub, msg[:116]))
			h, err := blake2s.New128(c[:])
			if err != nil {
				t.Fatal(err)
			}
			h.Write(msg[:132])
			copy(msg[132:148], h.Sum(nil))
			sentMAC2++
		}
		if _, err := flood.WriteToUDPAddrPort(msg, target); err != nil {
			t.Fatalf("flood: %v", err)
		}
	}
	time.Sleep(2 * time.Second)
	t.Logf("%d initiations, %d with mac2: %d cookie replies to those without, %d to those with",
		floodInitiations, sentMAC2, plainReplies.Load(), mac2Replies.Load())
	if cookie.Load() == nil {
		t.Fatalf("no cookie reply that opens with the device's cookie key (%d cookie replies, %d malformed)", plainReplies.Load(), badReplies.Load())
	}
	if sentMAC2 == 0 {
		t.Fatalf("the cookie came only after the flood: nothing with mac2 was sent")
	}
	if n := mac2Replies.Load(); n != 0 {
		t.Errorf("%d of %d initiations with a valid mac2 got a cookie reply: mac2 must let them through", n, sentMAC2)
	}
	if n := badReplies.Load(); n != 0 {
		t.Errorf("%d replies were neither cookie replies nor opened with the cookie key", n)
	}
	after := ethtoolStats(t, p.n, wggoLink)
	if len(after) == 0 {
		requireUpstream(t, "no ethtool -S counters")
		t.Logf("the upstream module has no counters: rx_ratelimited and rx_handshake_refused not checked")
		return
	}
	ratelimited := after["rx_ratelimited"] - before["rx_ratelimited"]
	refused := after["rx_handshake_refused"] - before["rx_handshake_refused"]
	t.Logf("rx_ratelimited +%d, rx_handshake_refused +%d", ratelimited, refused)
	if ratelimited == 0 {
		t.Errorf("rx_ratelimited did not move after %d initiations with mac2 from one source at full speed", sentMAC2)
	}
	if refused == 0 {
		t.Errorf("rx_handshake_refused did not move: no initiation with mac2 was processed")
	}
}

// TestHandshakeJunkFlood floods the port with initiation-sized junk (a
// wrong mac1), which costs nothing to make: every message is counted as
// rx_bad_mac1, none takes a place in the handshake queue (no
// rx_handshake_queue_full), and a legitimate peer completes its handshake
// meanwhile.
func TestHandshakeJunkFlood(t *testing.T) {
	p := newWggoPair(t)
	flood, target := p.floodConn(t)
	before := ethtoolStats(t, p.n, wggoLink)

	junk := make([][]byte, floodDistinct)
	for i := range junk {
		junk[i] = make([]byte, 148)
		if _, err := rand.Read(junk[i]); err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(junk[i], 1)
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; i < floodInitiations; i++ {
			if _, err := flood.WriteToUDPAddrPort(junk[i%len(junk)], target); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	p.awaitLegitHandshake(t, "a junk flood")
	if err := <-done; err != nil {
		t.Fatalf("flood: %v", err)
	}
	time.Sleep(time.Second)
	after := ethtoolStats(t, p.n, wggoLink)
	if len(after) == 0 {
		requireUpstream(t, "no ethtool -S counters")
		t.Logf("the upstream module has no counters: nothing more to check")
		return
	}
	bad := after["rx_bad_mac1"] - before["rx_bad_mac1"]
	full := after["rx_handshake_queue_full"] - before["rx_handshake_queue_full"]
	t.Logf("%d junk initiations: rx_bad_mac1 +%d, rx_handshake_queue_full +%d", floodInitiations, bad, full)
	if full != 0 {
		t.Errorf("junk took %d places in the handshake queue away from legitimate handshakes (rx_handshake_queue_full +%d): mac1 must be checked before queueing", full, full)
	}
	// The UDP layer may drop some when its socket buffer is full; what
	// reached the device was all counted.
	if bad == 0 {
		t.Errorf("rx_bad_mac1 did not move after %d junk initiations", floodInitiations)
	}
}
