package guest

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

const (
	scalePeers      = 1000
	scaleIPsPerPeer = 10
)

// configureBig gives device name count peers with scaleIPsPerPeer allowed
// IPs each (wgctrl splits this into many SET_DEVICE messages) and returns
// what should read back.
func configureBig(t *testing.T, n *testNS, name string, count int) peerIPs {
	t.Helper()
	peers, want := bigConfig(t.Name(), count, scaleIPsPerPeer)
	start := time.Now()
	n.configure(t, name, wgtypes.Config{Peers: peers})
	t.Logf("configured %d peers × %d allowed IPs in %v", count, scaleIPsPerPeer, time.Since(start).Round(time.Millisecond))
	return want
}

// TestScaleThousandPeers configures 1,000 peers × 10 allowed IPs and reads
// them back, through wgctrl and through a raw dump that must span many
// netlink messages.
func TestScaleThousandPeers(t *testing.T) {
	loadTest(t)
	const name = "wg0"
	n := newTestNS(t)
	n.addWG(t, name)
	want := configureBig(t, n, name, scalePeers)

	t.Run("wgctrl", func(t *testing.T) {
		start := time.Now()
		d := n.device(t, name)
		t.Logf("Device() returned %d peers in %v", len(d.Peers), time.Since(start).Round(time.Millisecond))
		assertPeerIPs(t, d, want, nil)
		for _, p := range d.Peers {
			if p.ProtocolVersion != 1 || p.Endpoint != nil || p.PersistentKeepaliveInterval != 0 {
				t.Errorf("peer %s: want protocol 1, no endpoint, no keepalive; got %d, %v, %v",
					p.PublicKey, p.ProtocolVersion, p.Endpoint, p.PersistentKeepaliveInterval)
				break
			}
		}
	})

	t.Run("raw dump", func(t *testing.T) {
		g := n.genl(t)
		r := n.rawGenlSocket(t, 1<<20)
		if err := r.sendDump(g.fam.ID, name); err != nil {
			t.Fatalf("send dump request: %v", err)
		}
		dr := newDumpReader()
		if err := dr.readAll(r, time.Now().Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if dr.err != nil {
			t.Fatalf("dump ended with error %v", dr.err)
		}
		if dr.intr {
			t.Errorf("dump flagged NLM_F_DUMP_INTR although nothing changed the device")
		}
		// ~10,000 allowed IPs are hundreds of KiB: far more than one message.
		if dr.messages < 2 {
			t.Errorf("dump of %d peers × %d IPs came in %d message(s); want it split over many", scalePeers, scaleIPsPerPeer, dr.messages)
		}
		t.Logf("dump spanned %d messages", dr.messages)
		if diff := diffPeerIPs(want, dr.peerIPs(), nil, 10); len(diff) > 0 {
			t.Errorf("raw dump differs from the configuration:\n  %s", strings.Join(diff, "\n  "))
		}
		cont := checkContinuations(t, dr, peerDetails)
		t.Logf("%d peers were split across messages", cont)
		if cont == 0 {
			t.Errorf("no peer's allowed IPs were split across messages; the continuation format went unchecked")
		}
	})

	t.Run("replace all", func(t *testing.T) {
		// ReplacePeers with a large set also spans many messages; only the
		// first carries the flag, the rest append.
		peers, want2 := bigConfig(t.Name(), scalePeers/2, scaleIPsPerPeer)
		n.configure(t, name, wgtypes.Config{ReplacePeers: true, Peers: peers})
		assertPeerIPs(t, n.device(t, name), want2, nil)
	})
}

// peerDetails are the peer attributes a dump sends with the first part of
// every peer, whatever its configuration (an endpoint only when it has one).
var peerDetails = []uint16{peerAPresharedKey, peerALastHandshakeTime, peerAKeepalive, peerARxBytes, peerATxBytes, peerAProtocolVersion}

// peerAttrName names a WGPEER_A_* type for messages.
func peerAttrName(typ uint16) string {
	names := map[uint16]string{
		peerAPublicKey: "PUBLIC_KEY", peerAPresharedKey: "PRESHARED_KEY", peerAFlags: "FLAGS",
		peerAEndpoint: "ENDPOINT", peerAKeepalive: "PERSISTENT_KEEPALIVE_INTERVAL",
		peerALastHandshakeTime: "LAST_HANDSHAKE_TIME", peerARxBytes: "RX_BYTES", peerATxBytes: "TX_BYTES",
		peerAAllowedIPs: "ALLOWEDIPS", peerAProtocolVersion: "PROTOCOL_VERSION",
	}
	if n, ok := names[typ]; ok {
		return n
	}
	return fmt.Sprintf("attribute %d", typ)
}

// checkContinuations checks the peer nests of a dump. A peer whose allowed
// IPs did not fit into one message continues as the first peer of the next
// message; that continuation nest carries the public key and allowed IPs
// only: no endpoint, keepalive, handshake time, byte counters, preshared key
// or protocol version. The first nest of every peer carries wantDetails. It
// returns the number of continuations seen.
func checkContinuations(t *testing.T, dr *dumpReader, wantDetails []uint16) int {
	t.Helper()
	var cont, bad int
	for i, pn := range dr.nests {
		isCont := pn.first && i > 0 && dr.nests[i-1].key == pn.key
		if isCont {
			cont++
			var extra []string
			for _, typ := range pn.attrs {
				if typ != peerAPublicKey && typ != peerAAllowedIPs {
					extra = append(extra, peerAttrName(typ))
				}
			}
			if len(extra) > 0 {
				if bad++; bad <= 5 {
					t.Errorf("message %d: continuation of peer %s carries %v; want only PUBLIC_KEY and ALLOWEDIPS", pn.msg, pn.key, extra)
				}
			}
			continue
		}
		var missing []string
		for _, typ := range wantDetails {
			if !slices.Contains(pn.attrs, typ) {
				missing = append(missing, peerAttrName(typ))
			}
		}
		if len(missing) > 0 {
			if bad++; bad <= 5 {
				t.Errorf("message %d: first nest of peer %s lacks %v", pn.msg, pn.key, missing)
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d bad peer nests in all", bad)
	}
	return cont
}

// TestScaleDumpContinuation dumps peers that have every field set (preshared
// key, endpoint, keepalive) and enough allowed IPs that peers are split
// across messages, and checks what each part of a split peer carries.
func TestScaleDumpContinuation(t *testing.T) {
	loadTest(t)
	const name, count = "wg0", 500
	n := newTestNS(t)
	n.addWG(t, name)
	peers, want := bigConfig(t.Name(), count, scaleIPsPerPeer)
	psk, err := wgtypes.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for i := range peers {
		peers[i].PresharedKey = &psk
		peers[i].Endpoint = udpAddr(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(10000+i)).String())
		peers[i].PersistentKeepaliveInterval = ptr(time.Duration(1+i%100) * time.Second)
	}
	n.configure(t, name, wgtypes.Config{Peers: peers})

	g := n.genl(t)
	r := n.rawGenlSocket(t, 1<<20)
	if err := r.sendDump(g.fam.ID, name); err != nil {
		t.Fatalf("send dump request: %v", err)
	}
	dr := newDumpReader()
	if err := dr.readAll(r, time.Now().Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if dr.err != nil || dr.intr {
		t.Fatalf("dump ended with error %v, interrupted %v", dr.err, dr.intr)
	}
	if diff := diffPeerIPs(want, dr.peerIPs(), nil, 10); len(diff) > 0 {
		t.Errorf("raw dump differs from the configuration:\n  %s", strings.Join(diff, "\n  "))
	}
	cont := checkContinuations(t, dr, append(slices.Clone(peerDetails), peerAEndpoint))
	t.Logf("dump spanned %d messages, %d peers split across messages", dr.messages, cont)
	if cont == 0 {
		t.Errorf("no peer's allowed IPs were split across messages; the continuation format went unchecked")
	}
}
