package guest

import (
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
	})

	t.Run("replace all", func(t *testing.T) {
		// ReplacePeers with a large set also spans many messages; only the
		// first carries the flag, the rest append.
		peers, want2 := bigConfig(t.Name(), scalePeers/2, scaleIPsPerPeer)
		n.configure(t, name, wgtypes.Config{ReplacePeers: true, Peers: peers})
		assertPeerIPs(t, n.device(t, name), want2, nil)
	})
}
