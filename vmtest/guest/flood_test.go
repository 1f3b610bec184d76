package guest

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/blake2s"
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

// TestHandshakeFlood sends a flood of handshake initiations with a valid
// mac1 (whose static key and timestamp are garbage, so each costs the
// device Curve25519 work before it is refused) from one UDP socket, and
// checks that the device, under load, answers with cookie replies instead
// of doing that work, and that a legitimate peer (wireguard-go, which
// handles cookie replies) still completes a handshake meanwhile.
func TestHandshakeFlood(t *testing.T) {
	p := newWggoPair(t)

	var flood net.PacketConn
	err := inNetns(p.n.ns, func() error {
		var err error
		flood, err = net.ListenPacket("udp4", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatalf("flood socket: %v", err)
	}
	defer flood.Close()
	target := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), wggoKernelPort))

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
			if _, err := flood.WriteTo(msgs[i%len(msgs)], target); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	// Meanwhile the legitimate peer initiates.
	c, err := p.tnet.DialUDPAddrPort(netip.AddrPort{}, netip.AddrPortFrom(wggoKernelAddr4, 9))
	if err != nil {
		t.Fatalf("netstack DialUDP: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("during the flood")); err != nil {
		t.Fatalf("netstack write: %v", err)
	}
	// wireguard-go retries its initiation every 5 s; with a cookie reply
	// its retry carries mac2 and gets through. Allow for several retries.
	deadline := time.Now().Add(60 * time.Second)
	for p.goPeer(t).handshake.IsZero() {
		if time.Now().After(deadline) {
			p.dumpState(t)
			t.Fatalf("wireguard-go did not complete a handshake during the flood (cookie replies seen by the flooder: %d)", cookies.Load())
		}
		// Keep asking, as an application would.
		_, _ = c.Write([]byte("during the flood"))
		time.Sleep(200 * time.Millisecond)
	}
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
