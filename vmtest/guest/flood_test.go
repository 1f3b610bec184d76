package guest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/net/ipv4"
)

const (
	// floodInitiations is how many handshake initiations a flood sends:
	// far more than a device can process under TCG emulation, so that it
	// is under load for the whole flood.
	floodInitiations = 30000
	// floodDistinct is how many different ones: each costs the device the
	// same work whether or not it has seen it before.
	floodDistinct = 256
	// floodBatch is how many messages one sendmmsg carries.
	floodBatch = 64
)

// mac1 computes the mac1 a handshake message to the holder of pub needs:
// BLAKE2s-128 keyed with BLAKE2s-256("mac1----" || pub), over the message
// before the MACs.
func mac1(pub [32]byte, msg []byte) []byte {
	key := blake2s.Sum256(append([]byte("mac1----"), pub[:]...))
	return blake2sMAC(key[:], msg)
}

// blake2sMAC is keyed BLAKE2s-128, the MAC of handshake messages.
func blake2sMAC(key, msg []byte) []byte {
	h, err := blake2s.New128(key)
	if err != nil {
		panic(err) // keys here are 16 or 32 bytes, always valid
	}
	h.Write(msg)
	return h.Sum(nil)
}

// flooder sends handshake messages to the device from one UDP socket per
// CPU of the guest, all on 127.0.0.1, in batches of one sendmmsg each: the
// device's handshake work runs on one CPU at a time, and its mac1 check
// runs in the sending CPU's softirq, so one sender per CPU keeps its queue
// growing even on a debug kernel, where the instrumented network stack is
// slow and the Curve25519 of the handshake work is not.
type flooder struct {
	conns  []*net.UDPConn
	target netip.AddrPort
}

// newFlooder opens the flooder's sockets in the device's namespace; the
// device listens on 127.0.0.1:wggoKernelPort.
func (p *wggoPair) newFlooder(t *testing.T) *flooder {
	t.Helper()
	f := &flooder{target: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), wggoKernelPort)}
	for range max(runtime.NumCPU(), 2) {
		var c *net.UDPConn
		if err := inNetns(p.n.ns, func() error {
			var err error
			c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
			return err
		}); err != nil {
			t.Fatalf("flood socket: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		f.conns = append(f.conns, c)
	}
	return f
}

// replies reads what comes back to every socket of the flooder and hands
// each datagram, with the number of the socket it came to, to handle, from
// one goroutine per socket, until the test ends.
func (f *flooder) replies(handle func(k int, b []byte)) {
	for k, c := range f.conns {
		go func() {
			buf := make([]byte, 2048)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				handle(k, buf[:n])
			}
		}()
	}
}

// send sends n messages, message i being msg(i) and sent from socket
// f.socketOf(i), from all sockets at once; it returns when all are sent.
// msg is called from several goroutines.
func (f *flooder) send(n int, msg func(i int) []byte) error {
	errs := make(chan error, len(f.conns))
	dst := net.UDPAddrFromAddrPort(f.target)
	for k, c := range f.conns {
		go func() {
			pc := ipv4.NewPacketConn(c)
			batch := make([]ipv4.Message, 0, floodBatch)
			flush := func() error {
				for len(batch) > 0 {
					sent, err := pc.WriteBatch(batch, 0)
					if err != nil {
						return fmt.Errorf("sendmmsg: %w", err)
					}
					batch = batch[sent:]
				}
				batch = batch[:0]
				return nil
			}
			for i := k; i < n; i += len(f.conns) {
				batch = append(batch, ipv4.Message{Buffers: [][]byte{msg(i)}, Addr: dst})
				if len(batch) == cap(batch) {
					if err := flush(); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- flush()
		}()
	}
	var first error
	for range f.conns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// socketOf is the number of the socket that sends message i.
func (f *flooder) socketOf(i int) int { return i % len(f.conns) }

// floodInitiationsWithMAC1 makes floodDistinct initiations to the holder of
// pub with a valid mac1, no mac2 and garbage elsewhere; the sender index
// (bytes 4-8) is the message's number.
func floodInitiationsWithMAC1(t *testing.T, pub [32]byte) [][]byte {
	t.Helper()
	msgs := make([][]byte, floodDistinct)
	for i := range msgs {
		msg := make([]byte, 148)
		binary.LittleEndian.PutUint32(msg, 1)
		if _, err := rand.Read(msg[8:116]); err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(msg[4:8], uint32(i))
		copy(msg[116:132], mac1(pub, msg[:116]))
		msgs[i] = msg
	}
	return msgs
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
// device Curve25519 work before it is refused), and checks that the
// device, under load, answers with cookie replies instead of doing that
// work, and that a legitimate peer (wireguard-go, which handles cookie
// replies) still completes a handshake meanwhile.
func TestHandshakeFlood(t *testing.T) {
	loadTest(t)
	p := newWggoPair(t)
	f := p.newFlooder(t)
	before := ethtoolStats(t, p.n, wggoLink)

	var cookies, others atomic.Int64
	f.replies(func(_ int, b []byte) {
		if len(b) == 64 && binary.LittleEndian.Uint32(b) == 3 {
			cookies.Add(1)
		} else {
			others.Add(1)
		}
	})
	// The messages are made before the flood, so that sending them costs
	// the flooder only its share of a system call each.
	msgs := floodInitiationsWithMAC1(t, p.kernelPub)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		done <- f.send(floodInitiations, func(i int) []byte { return msgs[i%len(msgs)] })
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
	elapsed := time.Since(start)
	// Replies to the last initiations may still be on their way.
	time.Sleep(time.Second)
	t.Logf("flood of %d initiations from %d sockets in %v: %d cookie replies, %d other replies to the flooder",
		floodInitiations, len(f.conns), elapsed.Round(time.Millisecond), cookies.Load(), others.Load())
	if after := ethtoolStats(t, p.n, wggoLink); len(after) > 0 {
		t.Logf("device: rx_handshake_refused +%d, rx_cookie_reply_sent +%d, rx_handshake_queue_full +%d",
			after["rx_handshake_refused"]-before["rx_handshake_refused"],
			after["rx_cookie_reply_sent"]-before["rx_cookie_reply_sent"],
			after["rx_handshake_queue_full"]-before["rx_handshake_queue_full"])
	}
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
	loadTest(t)
	p := newWggoPair(t)
	f := p.newFlooder(t)
	before := ethtoolStats(t, p.n, wggoLink)

	// Initiations without mac2; the sender index says which one a cookie
	// reply answers. Sender indices of those with mac2 have the top bit
	// set.
	plain := floodInitiationsWithMAC1(t, p.kernelPub)
	const withMAC2 = 1 << 31
	cookieKey := blake2s.Sum256(append([]byte("cookie--"), p.kernelPub[:]...))
	aead, err := chacha20poly1305.NewX(cookieKey[:])
	if err != nil {
		t.Fatal(err)
	}

	// A cookie is the device's MAC of the source address and port: each
	// socket has its own. The device's cookie secret changes every two
	// minutes, and a flood on the debug kernel lasts longer: a cookie reply
	// to an initiation with mac2 is right when it carries a new cookie
	// (the test then uses that), wrong when it carries the cookie the mac2
	// was made with.
	type mac2Sent struct{ mac1, cookie [16]byte }
	var sent sync.Map // sender index → mac2Sent
	cookies := make([]atomic.Pointer[[16]byte], len(f.conns))
	var plainReplies, mac2Replies, rotations, badReplies, sentMAC2 atomic.Int64
	var distinct sync.Map // [16]byte → true: every cookie any socket got
	open := func(b, ad []byte) *[16]byte {
		opened, err := aead.Open(nil, b[8:32], b[32:64], ad)
		if err != nil || len(opened) != 16 {
			badReplies.Add(1)
			return nil
		}
		distinct.Store([16]byte(opened), true)
		return (*[16]byte)(opened)
	}
	f.replies(func(k int, b []byte) {
		if len(b) != 64 || binary.LittleEndian.Uint32(b) != 3 {
			badReplies.Add(1)
			return
		}
		idx := binary.LittleEndian.Uint32(b[4:8])
		if idx&withMAC2 != 0 {
			v, ok := sent.Load(idx)
			if !ok {
				badReplies.Add(1)
				return
			}
			m := v.(mac2Sent)
			c := open(b, m.mac1[:])
			switch {
			case c == nil:
			case *c == m.cookie:
				mac2Replies.Add(1)
			default:
				rotations.Add(1)
				cookies[k].Store(c)
			}
			return
		}
		plainReplies.Add(1)
		if int(idx) >= len(plain) {
			badReplies.Add(1)
			return
		}
		if c := open(b, plain[idx][116:132]); c != nil {
			cookies[k].Store(c)
		}
	})

	start := time.Now()
	err = f.send(floodInitiations, func(i int) []byte {
		msg := plain[i%len(plain)]
		c := cookies[f.socketOf(i)].Load()
		if c == nil || i%3 != 0 {
			return msg
		}
		msg = bytes.Clone(msg)
		idx := withMAC2 | uint32(i)
		binary.LittleEndian.PutUint32(msg[4:8], idx)
		copy(msg[116:132], mac1(p.kernelPub, msg[:116]))
		copy(msg[132:148], blake2sMAC(c[:], msg[:132]))
		sent.Store(idx, mac2Sent{mac1: [16]byte(msg[116:132]), cookie: *c})
		sentMAC2.Add(1)
		return msg
	})
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	time.Sleep(2 * time.Second)
	elapsed := time.Since(start)
	nDistinct := 0
	distinct.Range(func(any, any) bool { nDistinct++; return true })
	t.Logf("%d initiations in %v, %d with mac2: %d cookie replies to those without; to those with, %d with a new cookie (the secret changed), %d with the same",
		floodInitiations, elapsed.Round(time.Millisecond), sentMAC2.Load(), plainReplies.Load(), rotations.Load(), mac2Replies.Load())
	// One cookie per socket per secret; a secret lasts two minutes.
	if most := len(f.conns) * (2 + int(elapsed/(2*time.Minute))); nDistinct > most {
		t.Errorf("%d different cookies in %v to %d sockets: a cookie must last as long as the device's secret (two minutes), at most %d", nDistinct, elapsed.Round(time.Second), len(f.conns), most)
	}
	if plainReplies.Load() == 0 || badReplies.Load() == plainReplies.Load() {
		t.Fatalf("no cookie reply that opens with the device's cookie key (%d cookie replies, %d malformed)", plainReplies.Load(), badReplies.Load())
	}
	if sentMAC2.Load() == 0 {
		t.Fatalf("the cookie came only after the flood: nothing with mac2 was sent")
	}
	if n := mac2Replies.Load(); n != 0 {
		t.Errorf("%d of %d initiations with a valid mac2 got a cookie reply: mac2 must let them through", n, sentMAC2.Load())
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
		t.Errorf("rx_ratelimited did not move after %d initiations with mac2 from one source at full speed", sentMAC2.Load())
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
	loadTest(t)
	p := newWggoPair(t)
	f := p.newFlooder(t)
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
		done <- f.send(floodInitiations, func(i int) []byte { return junk[i%len(junk)] })
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
