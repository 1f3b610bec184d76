// Command noisekat prints the known-answer vectors of the driver's KUnit
// suite (kernel/tests/noise_kunit.c and cookie_kunit.c): a WireGuard
// handshake, its MACs and a cookie reply, computed from fixed keys by an
// implementation of the protocol that shares nothing with the driver. Its
// test checks that the vectors in those files are what it prints, and that
// wireguard-go, a third implementation, accepts its messages and answers
// them in keys it derives the same way.
//
// Usage: go run ./tools/noisekat > kernel/tests/kat.h
package main

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

const (
	construction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	identifier   = "WireGuard v1 zx2c4 Jason@zx2c4.com"
	labelMAC1    = "mac1----"
	labelCookie  = "cookie--"

	initiationLen = 148
	responseLen   = 92
	cookieLen     = 64
)

func hashOf(parts ...[]byte) [32]byte {
	h, _ := blake2s.New256(nil)
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// mac is keyed BLAKE2s with a 16-byte output.
func mac(key, msg []byte) [16]byte {
	h, err := blake2s.New128(key)
	if err != nil {
		panic(err)
	}
	h.Write(msg)
	var out [16]byte
	h.Sum(out[:0])
	return out
}

func hmacOf(key, input []byte) [32]byte {
	m := hmac.New(func() hash.Hash { h, _ := blake2s.New256(nil); return h }, key)
	m.Write(input)
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// kdf is HKDF with HMAC-BLAKE2s: it returns n outputs of 32 bytes.
func kdf(ck [32]byte, input []byte, n int) [][32]byte {
	prk := hmacOf(ck[:], input)
	out := make([][32]byte, n)
	prev := []byte{}
	for i := range n {
		out[i] = hmacOf(prk[:], append(append([]byte{}, prev...), byte(i+1)))
		prev = out[i][:]
	}
	return out
}

func dh(priv, pub [32]byte) [32]byte {
	s, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		panic(err)
	}
	return [32]byte(s)
}

func publicOf(priv [32]byte) [32]byte {
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		panic(err)
	}
	return [32]byte(p)
}

func seal(key [32]byte, plain, ad []byte) []byte {
	a, _ := chacha20poly1305.New(key[:])
	return a.Seal(nil, make([]byte, 12), plain, ad)
}

func open(key [32]byte, sealed, ad []byte) ([]byte, error) {
	a, _ := chacha20poly1305.New(key[:])
	return a.Open(nil, make([]byte, 12), sealed, ad)
}

// state is the symmetric state of a handshake: chaining key and hash.
type state struct{ ck, h [32]byte }

func (s *state) mixHash(data []byte) { s.h = hashOf(s.h[:], data) }

// mixKey runs the KDF on input and returns the key of the next AEAD.
func (s *state) mixKey(input []byte) [32]byte {
	o := kdf(s.ck, input, 2)
	s.ck = o[0]
	return o[1]
}

func initialState(responderPub [32]byte) state {
	var s state
	s.ck = hashOf([]byte(construction))
	s.h = hashOf(s.ck[:], []byte(identifier))
	s.mixHash(responderPub[:])
	return s
}

// Handshake is one side's view of a handshake in progress.
type Handshake struct {
	state
	StaticPriv, EphemeralPriv [32]byte
	RemoteStatic, RemoteEph   [32]byte
	PSK                       [32]byte
}

func tai64n(sec uint64, nsec uint32) [12]byte {
	var t [12]byte
	binary.BigEndian.PutUint64(t[:8], 0x400000000000000a+sec)
	binary.BigEndian.PutUint32(t[8:], nsec)
	return t
}

// CreateInitiation makes the first message, without its MACs.
func (hs *Handshake) CreateInitiation(sender uint32, ts [12]byte) []byte {
	hs.state = initialState(hs.RemoteStatic)
	msg := make([]byte, initiationLen)
	binary.LittleEndian.PutUint32(msg[0:], 1)
	binary.LittleEndian.PutUint32(msg[4:], sender)
	ephPub := publicOf(hs.EphemeralPriv)
	copy(msg[8:40], ephPub[:])
	hs.ck = kdf(hs.ck, ephPub[:], 1)[0]
	hs.mixHash(ephPub[:])
	es := dh(hs.EphemeralPriv, hs.RemoteStatic)
	staticPub := publicOf(hs.StaticPriv)
	sealedStatic := seal(hs.mixKey(es[:]), staticPub[:], hs.h[:])
	copy(msg[40:88], sealedStatic)
	hs.mixHash(sealedStatic)
	ss := dh(hs.StaticPriv, hs.RemoteStatic)
	sealedTS := seal(hs.mixKey(ss[:]), ts[:], hs.h[:])
	copy(msg[88:116], sealedTS)
	hs.mixHash(sealedTS)
	return msg
}

// ConsumeInitiation is the responder's side of CreateInitiation; it
// returns the initiator's static key and timestamp.
func (hs *Handshake) ConsumeInitiation(msg []byte) (static [32]byte, ts [12]byte, err error) {
	if len(msg) != initiationLen || msg[0] != 1 {
		return static, ts, errors.New("not an initiation")
	}
	hs.state = initialState(publicOf(hs.StaticPriv))
	copy(hs.RemoteEph[:], msg[8:40])
	hs.ck = kdf(hs.ck, hs.RemoteEph[:], 1)[0]
	hs.mixHash(hs.RemoteEph[:])
	es := dh(hs.StaticPriv, hs.RemoteEph)
	plain, err := open(hs.mixKey(es[:]), msg[40:88], hs.h[:])
	if err != nil {
		return static, ts, fmt.Errorf("static key: %w", err)
	}
	copy(static[:], plain)
	hs.RemoteStatic = static
	hs.mixHash(msg[40:88])
	ss := dh(hs.StaticPriv, static)
	plain, err = open(hs.mixKey(ss[:]), msg[88:116], hs.h[:])
	if err != nil {
		return static, ts, fmt.Errorf("timestamp: %w", err)
	}
	copy(ts[:], plain)
	hs.mixHash(msg[88:116])
	return static, ts, nil
}

// mixPSK is the response's psk step: it returns the key of its AEAD.
func (hs *Handshake) mixPSK() [32]byte {
	o := kdf(hs.ck, hs.PSK[:], 3)
	hs.ck = o[0]
	hs.mixHash(o[1][:])
	return o[2]
}

// CreateResponse makes the second message, without its MACs.
func (hs *Handshake) CreateResponse(sender, receiver uint32) []byte {
	msg := make([]byte, responseLen)
	binary.LittleEndian.PutUint32(msg[0:], 2)
	binary.LittleEndian.PutUint32(msg[4:], sender)
	binary.LittleEndian.PutUint32(msg[8:], receiver)
	ephPub := publicOf(hs.EphemeralPriv)
	copy(msg[12:44], ephPub[:])
	hs.ck = kdf(hs.ck, ephPub[:], 1)[0]
	hs.mixHash(ephPub[:])
	ee := dh(hs.EphemeralPriv, hs.RemoteEph)
	hs.ck = kdf(hs.ck, ee[:], 1)[0]
	se := dh(hs.EphemeralPriv, hs.RemoteStatic)
	hs.ck = kdf(hs.ck, se[:], 1)[0]
	sealed := seal(hs.mixPSK(), nil, hs.h[:])
	copy(msg[44:60], sealed)
	hs.mixHash(sealed)
	return msg
}

// ConsumeResponse is the initiator's side of CreateResponse.
func (hs *Handshake) ConsumeResponse(msg []byte) error {
	if len(msg) != responseLen || msg[0] != 2 {
		return errors.New("not a response")
	}
	copy(hs.RemoteEph[:], msg[12:44])
	hs.ck = kdf(hs.ck, hs.RemoteEph[:], 1)[0]
	hs.mixHash(hs.RemoteEph[:])
	ee := dh(hs.EphemeralPriv, hs.RemoteEph)
	hs.ck = kdf(hs.ck, ee[:], 1)[0]
	se := dh(hs.StaticPriv, hs.RemoteEph)
	hs.ck = kdf(hs.ck, se[:], 1)[0]
	if _, err := open(hs.mixPSK(), msg[44:60], hs.h[:]); err != nil {
		return fmt.Errorf("empty payload: %w", err)
	}
	hs.mixHash(msg[44:60])
	return nil
}

// TransportKeys are the session's keys: the initiator sends with the
// first, the responder with the second.
func (hs *Handshake) TransportKeys() (initiatorSend, responderSend [32]byte) {
	o := kdf(hs.ck, nil, 2)
	return o[0], o[1]
}

// AddMACs fills in mac1 (keyed by the receiver's public key) and mac2
// (keyed by cookie, zeros without one).
func AddMACs(msg []byte, receiverPub [32]byte, cookie *[16]byte) {
	n := len(msg)
	key := hashOf([]byte(labelMAC1), receiverPub[:])
	m1 := mac(key[:], msg[:n-32])
	copy(msg[n-32:], m1[:])
	if cookie == nil {
		clear(msg[n-16:])
		return
	}
	m2 := mac(cookie[:], msg[:n-16])
	copy(msg[n-16:], m2[:])
}

// Cookie is MAC(secret, source address || source port, big endian).
func Cookie(secret [32]byte, addr []byte, port uint16) [16]byte {
	return mac(secret[:], binary.BigEndian.AppendUint16(append([]byte{}, addr...), port))
}

// CookieReply seals cookie for the sender of a message with mac1, as the
// holder of responderPub.
func CookieReply(receiver uint32, nonce [24]byte, cookie [16]byte, mac1 []byte, responderPub [32]byte) []byte {
	msg := make([]byte, cookieLen)
	binary.LittleEndian.PutUint32(msg[0:], 3)
	binary.LittleEndian.PutUint32(msg[4:], receiver)
	copy(msg[8:32], nonce[:])
	key := hashOf([]byte(labelCookie), responderPub[:])
	a, _ := chacha20poly1305.NewX(key[:])
	copy(msg[32:], a.Seal(nil, nonce[:], cookie[:], mac1))
	return msg
}

func main() {
	if err := writeVectors(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "noisekat:", err)
		os.Exit(1)
	}
}

// nonce is the AEAD nonce of a data message: four zero bytes, then the
// counter, little-endian.
func nonce(counter uint64) []byte {
	n := make([]byte, 12)
	binary.LittleEndian.PutUint64(n[4:], counter)
	return n
}

// DataMessage is a data message (type 4) to receiver: packet, zero-padded
// to a multiple of 16 bytes, sealed under key with counter as the nonce.
func DataMessage(key [32]byte, receiver uint32, counter uint64, packet []byte) []byte {
	padded := append(append([]byte{}, packet...), make([]byte, (16-len(packet)%16)%16)...)
	msg := make([]byte, 16)
	binary.LittleEndian.PutUint32(msg[0:], 4)
	binary.LittleEndian.PutUint32(msg[4:], receiver)
	binary.LittleEndian.PutUint64(msg[8:], counter)
	a, _ := chacha20poly1305.New(key[:])
	return a.Seal(msg, nonce(counter), padded, nil)
}
