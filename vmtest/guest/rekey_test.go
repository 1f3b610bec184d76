package guest

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
	"time"
)

// TestLongRekey sends a steady stream of datagrams from the kernel to
// wireguard-go for longer than REKEY_AFTER_TIME (120 s): the kernel, as
// initiator, must start a new session by itself, and the stream must go on
// across the key rotation with no more than a handful of datagrams lost.
// It takes two and a half minutes, so it runs only with `make vmtest-long`
// (WGVM_LONG=1 in the guest).
func TestLongRekey(t *testing.T) {
	if os.Getenv("WGVM_LONG") != "1" {
		t.Skip("long test (150 s): run it with make vmtest-long")
	}
	const (
		rate     = 20 // datagrams a second
		duration = 150 * time.Second
		maxLost  = 5
	)
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

	var sent uint64
	start := time.Now()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	msg := make([]byte, 8)
	for time.Since(start) < duration {
		<-tick.C
		binary.BigEndian.PutUint64(msg, sent)
		if _, err := c.Write(msg); err == nil {
			sent++
		}
	}
	time.Sleep(2 * time.Second) // the last ones in flight
	srv.Close()

	got := map[uint64]bool{}
	for n := range seen {
		if n < sent { // not one of the datagrams that started the session
			got[n] = true
		}
	}
	lost := int(sent) - len(got)
	last := p.kernelPeer(t).LastHandshakeTime
	t.Logf("sent %d datagrams over %v, received %d, lost %d; last handshake at %v", sent, duration, len(got), lost, last.Format(time.TimeOnly))
	if !last.After(first.Add(100 * time.Second)) {
		p.dumpState(t)
		t.Errorf("no new session after %v of traffic: last handshake %v, first %v (REKEY_AFTER_TIME is 120 s)", duration, last, first)
	}
	if lost > maxLost {
		t.Errorf("%d of %d datagrams lost across the rekey, want at most %d", lost, sent, maxLost)
	}
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
