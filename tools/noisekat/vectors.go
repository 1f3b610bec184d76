package main

import (
	"fmt"
	"io"
	"strings"
)

// Vectors are the inputs and expected results of the known-answer tests.
type Vectors struct {
	InitiatorPriv, ResponderPriv       [32]byte
	InitiatorEphPriv, ResponderEphPriv [32]byte
	PSK                                [32]byte
	Timestamp                          [12]byte
	InitiatorIndex, ResponderIndex     uint32

	InitialChainingKey, InitialHash [32]byte
	// After the initiation, on both sides.
	InitiationChainingKey, InitiationHash [32]byte
	Initiation                            []byte // with mac1, no mac2
	Response                              []byte // with mac1, no mac2
	InitiatorSend, InitiatorRecv          [32]byte
	// A data message: the initiator's first packet after the handshake
	// sealed under InitiatorSend (37 bytes: padded to 48).
	DataCounter uint64
	DataPacket  []byte
	DataMessage []byte

	// Cookies: the responder's secret, the initiator's source, the
	// cookie it gets, the reply that carries it (answering Initiation's
	// mac1) and the initiation's mac2 under that cookie.
	CookieSecret [32]byte
	SourceAddr   [4]byte
	SourcePort   uint16
	Cookie       [16]byte
	ReplyNonce   [24]byte
	CookieReply  []byte
	MAC2         [16]byte
}

// fixedKey is a Curve25519 private key (clamped) or a secret named by
// label: BLAKE2s-256 of "wgkit kat " + label.
func fixedKey(label string, clamp bool) [32]byte {
	k := hashOf([]byte("wgkit kat " + label))
	if clamp {
		k[0] &= 248
		k[31] = (k[31] & 127) | 64
	}
	return k
}

// Compute runs one handshake between fixed keys.
func Compute() (*Vectors, error) {
	v := &Vectors{
		InitiatorPriv:    fixedKey("initiator static", true),
		ResponderPriv:    fixedKey("responder static", true),
		InitiatorEphPriv: fixedKey("initiator ephemeral", true),
		ResponderEphPriv: fixedKey("responder ephemeral", true),
		PSK:              fixedKey("preshared key", false),
		Timestamp:        tai64n(1700000000, 7<<24), // a multiple of the driver's 2^24 ns grain
		InitiatorIndex:   0x11223344,
		ResponderIndex:   0x55667788,
		CookieSecret:     fixedKey("cookie secret", false),
		SourceAddr:       [4]byte{192, 0, 2, 1},
		SourcePort:       51820,
	}
	copy(v.ReplyNonce[:], "wgkit kat nonce of reply")
	v.InitialChainingKey = hashOf([]byte(construction))
	v.InitialHash = hashOf(v.InitialChainingKey[:], []byte(identifier))

	ini := &Handshake{StaticPriv: v.InitiatorPriv, EphemeralPriv: v.InitiatorEphPriv,
		RemoteStatic: publicOf(v.ResponderPriv), PSK: v.PSK}
	v.Initiation = ini.CreateInitiation(v.InitiatorIndex, v.Timestamp)
	AddMACs(v.Initiation, ini.RemoteStatic, nil)
	v.InitiationChainingKey, v.InitiationHash = ini.ck, ini.h

	resp := &Handshake{StaticPriv: v.ResponderPriv, EphemeralPriv: v.ResponderEphPriv, PSK: v.PSK}
	static, ts, err := resp.ConsumeInitiation(v.Initiation)
	if err != nil {
		return nil, fmt.Errorf("the responder refused the initiation: %w", err)
	}
	if static != publicOf(v.InitiatorPriv) || ts != v.Timestamp || resp.state != ini.state {
		return nil, fmt.Errorf("the responder read the initiation differently")
	}
	v.Response = resp.CreateResponse(v.ResponderIndex, v.InitiatorIndex)
	AddMACs(v.Response, static, nil)
	if err := ini.ConsumeResponse(v.Response); err != nil {
		return nil, fmt.Errorf("the initiator refused the response: %w", err)
	}
	v.InitiatorSend, v.InitiatorRecv = ini.TransportKeys()
	if s, r := resp.TransportKeys(); s != v.InitiatorSend || r != v.InitiatorRecv {
		return nil, fmt.Errorf("the two ends derived different session keys")
	}

	v.DataCounter = 0x0102030405060708
	v.DataPacket = []byte("wgkit kat: a packet of 37 bytes, sent")
	v.DataMessage = DataMessage(v.InitiatorSend, v.ResponderIndex, v.DataCounter, v.DataPacket)

	v.Cookie = Cookie(v.CookieSecret, v.SourceAddr[:], v.SourcePort)
	v.CookieReply = CookieReply(v.InitiatorIndex, v.ReplyNonce, v.Cookie,
		v.Initiation[116:132], publicOf(v.ResponderPriv))
	withMAC2 := append([]byte{}, v.Initiation...)
	AddMACs(withMAC2, publicOf(v.ResponderPriv), &v.Cookie)
	v.MAC2 = [16]byte(withMAC2[132:])
	return v, nil
}

func cBytes(w *strings.Builder, name string, b []byte) {
	fmt.Fprintf(w, "\t.%s = {", name)
	for i, c := range b {
		if i%8 == 0 {
			w.WriteString("\n\t\t")
		} else {
			w.WriteString(" ")
		}
		fmt.Fprintf(w, "0x%02x,", c)
	}
	w.WriteString("\n\t},\n")
}

// C renders v as the initializer of the KUnit suites' struct wg_kat.
func (v *Vectors) C() string {
	var w strings.Builder
	w.WriteString("static const struct wg_kat wg_kat = {\n")
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{"initiator_private", v.InitiatorPriv[:]},
		{"responder_private", v.ResponderPriv[:]},
		{"initiator_ephemeral", v.InitiatorEphPriv[:]},
		{"responder_ephemeral", v.ResponderEphPriv[:]},
		{"preshared_key", v.PSK[:]},
		{"timestamp", v.Timestamp[:]},
		{"initial_chaining_key", v.InitialChainingKey[:]},
		{"initial_hash", v.InitialHash[:]},
		{"initiation_chaining_key", v.InitiationChainingKey[:]},
		{"initiation_hash", v.InitiationHash[:]},
		{"initiation", v.Initiation},
		{"response", v.Response},
		{"initiator_send", v.InitiatorSend[:]},
		{"initiator_recv", v.InitiatorRecv[:]},
		{"data_packet", v.DataPacket},
		{"data_message", v.DataMessage},
		{"cookie_secret", v.CookieSecret[:]},
		{"source_addr", v.SourceAddr[:]},
		{"cookie", v.Cookie[:]},
		{"cookie_reply", v.CookieReply},
		{"mac2", v.MAC2[:]},
	} {
		cBytes(&w, f.name, f.b)
	}
	fmt.Fprintf(&w, "\t.initiator_index = 0x%08x,\n", v.InitiatorIndex)
	fmt.Fprintf(&w, "\t.responder_index = 0x%08x,\n", v.ResponderIndex)
	fmt.Fprintf(&w, "\t.source_port = %d,\n", v.SourcePort)
	fmt.Fprintf(&w, "\t.data_counter = 0x%016x,\n", v.DataCounter)
	w.WriteString("};\n")
	return w.String()
}

// header is kernel/tests/kat.h around the initializer.
const header = `/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Known answers of the WireGuard protocol for the KUnit suites: one
 * handshake between fixed keys, its MACs, a cookie reply and a data
 * message, computed by tools/noisekat, an implementation of the protocol
 * that shares nothing with the driver and is checked against
 * wireguard-go. Generated: run "go run ./tools/noisekat" and replace this
 * file with its output.
 */

#ifndef _WG_TESTS_KAT_H
#define _WG_TESTS_KAT_H

#include <linux/types.h>

struct wg_kat {
	/* Inputs: keys, the initiation's timestamp and both indices. */
	u8 initiator_private[32];
	u8 responder_private[32];
	u8 initiator_ephemeral[32];
	u8 responder_ephemeral[32];
	u8 preshared_key[32];
	u8 timestamp[12];
	u32 initiator_index;
	u32 responder_index;
	/* C and H after the protocol name and identifier. */
	u8 initial_chaining_key[32];
	u8 initial_hash[32];
	/* C and H after the initiation, on both sides. */
	u8 initiation_chaining_key[32];
	u8 initiation_hash[32];
	/* The messages, with mac1 and a zero mac2. */
	u8 initiation[148];
	u8 response[92];
	/* The session: what the initiator sends and receives with. */
	u8 initiator_send[32];
	u8 initiator_recv[32];
	/*
	 * A data message: the initiator's packet of 37 bytes (padded to 48)
	 * sealed under initiator_send with data_counter, to responder_index.
	 */
	u64 data_counter;
	u8 data_packet[37];
	u8 data_message[80];
	/*
	 * Cookies: the responder's secret, the initiator's source, its
	 * cookie, the reply that carries it (bound to the initiation's
	 * mac1) and the initiation's mac2 under it.
	 */
	u8 cookie_secret[32];
	u8 source_addr[4];
	u16 source_port;
	u8 cookie[16];
	u8 cookie_reply[64];
	u8 mac2[16];
};

`

// File is the whole of kernel/tests/kat.h.
func (v *Vectors) File() string {
	return header + v.C() + "\n#endif /* _WG_TESTS_KAT_H */\n"
}

func writeVectors(out io.Writer) error {
	v, err := Compute()
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, v.File())
	return err
}
