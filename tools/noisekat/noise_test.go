package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// The vectors the KUnit suites compile in are the ones computed here.
func TestKATHeaderUpToDate(t *testing.T) {
	v, err := Compute()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../kernel/tests/kat.h")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != v.File() {
		t.Fatal("kernel/tests/kat.h is not what tools/noisekat computes: run go run ./tools/noisekat > kernel/tests/kat.h")
	}
}

// peerNet is a wireguard-go device on a channel TUN and a channel bind;
// the test talks to it through the other end of the bind.
type peerNet struct {
	dev  *device.Device
	tun  *tuntest.ChannelTUN
	bind conn.Bind
	rx   chan []byte
}

const peerInner = "10.9.0.1" // the test's address inside the tunnel

func newPeerNet(t *testing.T, priv, peerPub, psk [32]byte, endpoint string) *peerNet {
	t.Helper()
	binds := bindtest.NewChannelBinds()
	p := &peerNet{tun: tuntest.NewChannelTUN(), bind: binds[1], rx: make(chan []byte, 16)}
	p.dev = device.NewDevice(p.tun.TUN(), binds[0], device.NewLogger(device.LogLevelError, "wireguard-go: "))
	cfg := fmt.Sprintf("private_key=%s\npublic_key=%s\npreshared_key=%s\nallowed_ip=%s/32\n",
		hex.EncodeToString(priv[:]), hex.EncodeToString(peerPub[:]), hex.EncodeToString(psk[:]), peerInner)
	if endpoint != "" {
		cfg += "endpoint=" + endpoint + "\n"
	}
	if err := p.dev.IpcSet(cfg); err != nil {
		t.Fatalf("configuring wireguard-go: %v", err)
	}
	if err := p.dev.Up(); err != nil {
		t.Fatalf("wireguard-go up: %v", err)
	}
	fns, _, err := p.bind.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range fns {
		go func() {
			bufs, sizes, eps := [][]byte{make([]byte, 2048)}, []int{0}, []conn.Endpoint{nil}
			for {
				if _, err := fn(bufs, sizes, eps); err != nil {
					return
				}
				p.rx <- append([]byte{}, bufs[0][:sizes[0]]...)
			}
		}()
	}
	t.Cleanup(func() { p.bind.Close(); p.dev.Close() })
	return p
}

// send gives the device a datagram from the test's end.
func (p *peerNet) send(t *testing.T, msg []byte) {
	t.Helper()
	ep, _ := p.bind.ParseEndpoint("127.0.0.1:2")
	if err := p.bind.Send([][]byte{msg}, ep); err != nil {
		t.Fatal(err)
	}
}

func (p *peerNet) recv(t *testing.T, what string) []byte {
	t.Helper()
	select {
	case b := <-p.rx:
		return b
	case <-time.After(10 * time.Second):
		t.Fatalf("wireguard-go sent no %s in 10 s", what)
		return nil
	}
}

func (p *peerNet) fromTUN(t *testing.T) []byte {
	t.Helper()
	select {
	case b := <-p.tun.Inbound:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("wireguard-go delivered nothing to its TUN in 10 s")
		return nil
	}
}

// openData opens a data message with key; it returns the padded packet.
func openData(t *testing.T, key [32]byte, msg []byte) []byte {
	t.Helper()
	if len(msg) < 32 || msg[0] != 4 {
		t.Fatalf("not a data message: % x", msg)
	}
	a, _ := chacha20poly1305.New(key[:])
	plain, err := a.Open(nil, nonce(binary.LittleEndian.Uint64(msg[8:])), msg[16:], nil)
	if err != nil {
		t.Fatalf("the data message does not open with the derived key: %v", err)
	}
	return plain
}

// checkMAC1 recomputes a received message's mac1 for the holder of pub.
func checkMAC1(t *testing.T, msg []byte, pub [32]byte) {
	t.Helper()
	c := append([]byte{}, msg...)
	AddMACs(c, pub, nil)
	if !bytes.Equal(c[len(c)-32:len(c)-16], msg[len(msg)-32:len(msg)-16]) {
		t.Fatal("wireguard-go's mac1 differs from ours")
	}
}

// The known-answer initiation itself is accepted by wireguard-go, which
// answers it; the keys derived from its answer carry data both ways.
func TestWireguardGoAnswersTheKATInitiation(t *testing.T) {
	v, err := Compute()
	if err != nil {
		t.Fatal(err)
	}
	p := newPeerNet(t, v.ResponderPriv, publicOf(v.InitiatorPriv), v.PSK, "")
	p.send(t, v.Initiation)
	resp := p.recv(t, "handshake response")
	if len(resp) != responseLen || resp[0] != 2 || binary.LittleEndian.Uint32(resp[8:]) != v.InitiatorIndex {
		t.Fatalf("wireguard-go answered the initiation with % x, want a response to index %#x", resp, v.InitiatorIndex)
	}
	checkMAC1(t, resp, publicOf(v.InitiatorPriv))

	ini := &Handshake{StaticPriv: v.InitiatorPriv, EphemeralPriv: v.InitiatorEphPriv,
		RemoteStatic: publicOf(v.ResponderPriv), PSK: v.PSK}
	ini.CreateInitiation(v.InitiatorIndex, v.Timestamp)
	if err := ini.ConsumeResponse(resp); err != nil {
		t.Fatalf("wireguard-go's response: %v", err)
	}
	send, recv := ini.TransportKeys()
	theirs := binary.LittleEndian.Uint32(resp[4:])
	ping := tuntest.Ping(netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr(peerInner))
	p.send(t, DataMessage(send, theirs, 0, ping))
	if got := p.fromTUN(t); !bytes.Equal(got, ping) {
		t.Fatalf("wireguard-go delivered % x, want % x", got, ping)
	}
	back := tuntest.Ping(netip.MustParseAddr(peerInner), netip.MustParseAddr("10.9.0.2"))
	p.tun.Outbound <- back
	if got := openData(t, recv, p.recv(t, "data message")); !bytes.HasPrefix(got, back) {
		t.Fatalf("opened % x, want % x", got, back)
	}
}

// wireguard-go's initiation is accepted by this implementation, and its
// response by wireguard-go, which then sends the data that waited.
func TestWireguardGoAcceptsOurResponse(t *testing.T) {
	v, err := Compute()
	if err != nil {
		t.Fatal(err)
	}
	p := newPeerNet(t, v.InitiatorPriv, publicOf(v.ResponderPriv), v.PSK, "127.0.0.1:1")
	ping := tuntest.Ping(netip.MustParseAddr(peerInner), netip.MustParseAddr("10.9.0.2"))
	p.tun.Outbound <- ping
	init := p.recv(t, "handshake initiation")
	checkMAC1(t, init, publicOf(v.ResponderPriv))
	resp := &Handshake{StaticPriv: v.ResponderPriv, EphemeralPriv: v.ResponderEphPriv, PSK: v.PSK}
	static, _, err := resp.ConsumeInitiation(init)
	if err != nil {
		t.Fatalf("wireguard-go's initiation: %v", err)
	}
	if static != publicOf(v.InitiatorPriv) {
		t.Fatal("wireguard-go's initiation carries another static key")
	}
	theirs := binary.LittleEndian.Uint32(init[4:])
	msg := resp.CreateResponse(v.ResponderIndex, theirs)
	AddMACs(msg, static, nil)
	p.send(t, msg)
	initiatorSend, _ := resp.TransportKeys()
	data := p.recv(t, "data message")
	if got := openData(t, initiatorSend, data); !bytes.HasPrefix(got, ping) {
		t.Fatalf("opened % x, want % x", got, ping)
	}
}
