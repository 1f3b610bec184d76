package guest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestSemantics checks the meaning of the configuration flags: each case
// applies an initial configuration, then a change, then compares the peers
// and their allowed IPs with what should result.
func TestSemantics(t *testing.T) {
	isolated(t)
	// Peers are named by label; "self" is the device's own public key.
	labels := []string{"A", "B", "C", "D", "X"}
	keys := map[string]wgtypes.Key{}
	names := map[wgtypes.Key]string{}
	for i, l := range labels {
		keys[l] = peerKey(t.Name(), i)
		names[keys[l]] = l
	}
	priv := newPrivateKey(t)
	keys["self"] = priv.PublicKey()
	names[keys["self"]] = "self"
	// P is a peer whose private key the device will take over; Q is a
	// bystander with every field set.
	pPriv := newPrivateKey(t)
	keys["P"] = pPriv.PublicKey()
	names[keys["P"]] = "P"
	keys["Q"] = peerKey(t.Name(), len(labels))
	names[keys["Q"]] = "Q"
	qPSK, err := wgtypes.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	peerQ := wgtypes.PeerConfig{
		PublicKey:                   keys["Q"],
		PresharedKey:                &qPSK,
		Endpoint:                    udpAddr(t, "127.0.0.1:5000"),
		PersistentKeepaliveInterval: ptr(25 * time.Second),
		AllowedIPs:                  prefixes(t, "10.0.2.0/24", "fd00:2::/64"),
	}

	peer := func(label string, ips ...string) wgtypes.PeerConfig {
		return wgtypes.PeerConfig{PublicKey: keys[label], AllowedIPs: prefixes(t, ips...)}
	}
	with := func(p wgtypes.PeerConfig, f func(*wgtypes.PeerConfig)) wgtypes.PeerConfig {
		f(&p)
		return p
	}

	tests := []struct {
		name      string
		withKey   bool // give the device a private key first
		initial   []wgtypes.PeerConfig
		change    wgtypes.Config
		want      map[string][]string
		wantCheck func(t *testing.T, peers map[string]wgtypes.Peer)
		// then, if set, runs last with the device for further checks.
		then func(t *testing.T, n *testNS, name string)
	}{
		{
			name:    "ReplacePeers drops old peers, adds new",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24"), peer("B", "10.0.2.0/24")},
			change:  wgtypes.Config{ReplacePeers: true, Peers: []wgtypes.PeerConfig{peer("C", "10.0.3.0/24"), peer("D", "10.0.4.0/24")}},
			want:    map[string][]string{"C": {"10.0.3.0/24"}, "D": {"10.0.4.0/24"}},
		},
		{
			name:    "ReplacePeers with no peers clears",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24"), peer("B", "10.0.2.0/24")},
			change:  wgtypes.Config{ReplacePeers: true},
			want:    map[string][]string{},
		},
		{
			name:    "ReplacePeers recreates a listed peer from scratch",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24"), peer("B", "10.0.2.0/24")},
			change:  wgtypes.Config{ReplacePeers: true, Peers: []wgtypes.PeerConfig{peer("A", "10.0.9.0/24")}},
			want:    map[string][]string{"A": {"10.0.9.0/24"}},
		},
		{
			name:    "Remove removes exactly that peer and its allowed IPs",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24"), peer("B", "10.0.2.0/24", "fd00:2::/64"), peer("C", "10.0.3.0/24")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: keys["B"], Remove: true}}},
			want:    map[string][]string{"A": {"10.0.1.0/24"}, "C": {"10.0.3.0/24"}},
		},
		{
			name:    "Remove of an unknown peer is a no-op",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: keys["X"], Remove: true}}},
			want:    map[string][]string{"A": {"10.0.1.0/24"}},
		},
		{
			name:    "Remove then add in one message recreates the peer",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24"), peer("B", "10.0.2.0/24")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: keys["B"], Remove: true}, peer("B", "10.0.5.0/24")}},
			want:    map[string][]string{"A": {"10.0.1.0/24"}, "B": {"10.0.5.0/24"}},
		},
		{
			name:    "UpdateOnly does not create a missing peer",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{with(peer("X", "10.0.7.0/24"), func(p *wgtypes.PeerConfig) { p.UpdateOnly = true })}},
			want:    map[string][]string{"A": {"10.0.1.0/24"}},
		},
		{
			name:    "UpdateOnly updates an existing peer",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24"), peer("B", "10.0.2.0/24")},
			change: wgtypes.Config{Peers: []wgtypes.PeerConfig{with(peer("A", "10.0.5.0/24"), func(p *wgtypes.PeerConfig) {
				p.UpdateOnly = true
				p.PersistentKeepaliveInterval = ptr(15 * time.Second)
			})}},
			want: map[string][]string{"A": {"10.0.1.0/24", "10.0.5.0/24"}, "B": {"10.0.2.0/24"}},
			wantCheck: func(t *testing.T, peers map[string]wgtypes.Peer) {
				if got := peers["A"].PersistentKeepaliveInterval; got != 15*time.Second {
					t.Errorf("keepalive of A after UpdateOnly: want 15s, got %v", got)
				}
			},
		},
		{
			name:    "allowed IPs append by default",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{peer("A", "10.0.2.0/24", "fd00:a::/64")}},
			want:    map[string][]string{"A": {"10.0.1.0/24", "10.0.2.0/24", "fd00:a::/64"}},
		},
		{
			name:    "same prefix again is one entry",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24", "10.0.1.0/24")}},
			want:    map[string][]string{"A": {"10.0.1.0/24"}},
		},
		{
			name:    "ReplaceAllowedIPs replaces",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24", "fd00:1::/64"), peer("B", "10.0.2.0/24")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{with(peer("A", "10.0.3.0/24"), func(p *wgtypes.PeerConfig) { p.ReplaceAllowedIPs = true })}},
			want:    map[string][]string{"A": {"10.0.3.0/24"}, "B": {"10.0.2.0/24"}},
		},
		{
			name:    "ReplaceAllowedIPs with none clears",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24", "fd00:1::/64")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{with(peer("A"), func(p *wgtypes.PeerConfig) { p.ReplaceAllowedIPs = true })}},
			want:    map[string][]string{"A": {}},
		},
		{
			name:    "IPv4 prefix moves from A to B",
			initial: []wgtypes.PeerConfig{peer("A", "10.9.0.0/16", "10.8.0.0/16"), peer("B", "10.7.0.0/16")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{peer("B", "10.9.0.0/16")}},
			want:    map[string][]string{"A": {"10.8.0.0/16"}, "B": {"10.7.0.0/16", "10.9.0.0/16"}},
		},
		{
			name:    "IPv6 prefix moves from A to B",
			initial: []wgtypes.PeerConfig{peer("A", "fd00:9::/64"), peer("B")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{peer("B", "fd00:9::/64")}},
			want:    map[string][]string{"A": {}, "B": {"fd00:9::/64"}},
		},
		{
			name:    "prefix is normalised before it moves",
			initial: []wgtypes.PeerConfig{peer("A", "10.1.0.0/16")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: keys["B"], AllowedIPs: []net.IPNet{unmaskedPrefix(t, "10.1.2.3/16")}}}},
			want:    map[string][]string{"A": {}, "B": {"10.1.0.0/16"}},
		},
		{
			name:    "nested prefixes of different peers coexist",
			initial: []wgtypes.PeerConfig{peer("A", "10.0.0.0/8", "::/0")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{peer("B", "10.1.0.0/16", "fd00::/8")}},
			want:    map[string][]string{"A": {"10.0.0.0/8", "::/0"}, "B": {"10.1.0.0/16", "fd00::/8"}},
		},
		{
			name:    "the device's own public key is silently ignored as a peer",
			withKey: true,
			initial: []wgtypes.PeerConfig{peer("A", "10.0.1.0/24")},
			change:  wgtypes.Config{Peers: []wgtypes.PeerConfig{peer("self", "10.0.2.0/24"), peer("B", "10.0.3.0/24")}},
			want:    map[string][]string{"A": {"10.0.1.0/24"}, "B": {"10.0.3.0/24"}},
		},
		{
			name:    "private key of an existing peer removes that peer and its allowed IPs",
			initial: []wgtypes.PeerConfig{peer("P", "10.0.1.0/24", "fd00:1::/64"), peerQ},
			change:  wgtypes.Config{PrivateKey: &pPriv},
			want:    map[string][]string{"Q": {"10.0.2.0/24", "fd00:2::/64"}},
			wantCheck: func(t *testing.T, peers map[string]wgtypes.Peer) {
				q := peers["Q"]
				if q.PresharedKey != qPSK || endpointString(q.Endpoint) != "127.0.0.1:5000" || q.PersistentKeepaliveInterval != 25*time.Second {
					t.Errorf("peer Q changed: want PSK %s, endpoint 127.0.0.1:5000, keepalive 25s; got %s, %q, %v",
						qPSK, q.PresharedKey, endpointString(q.Endpoint), q.PersistentKeepaliveInterval)
				}
			},
			then: func(t *testing.T, n *testNS, name string) {
				if got := n.device(t, name).PublicKey; got != keys["P"] {
					t.Errorf("device public key: want P's %s, got %s", keys["P"], got)
				}
				// Give the device another key and add P back without
				// allowed IPs: P is a new peer and owns none of its old
				// prefixes, which went with it.
				other := newPrivateKey(t)
				n.configure(t, name, wgtypes.Config{PrivateKey: &other, Peers: []wgtypes.PeerConfig{peer("P")}})
				want := peerIPs{keys["P"]: {}, keys["Q"]: sortedPrefixes(prefixes(t, "10.0.2.0/24", "fd00:2::/64"))}
				assertPeerIPs(t, n.device(t, name), want, names)
			},
		},
	}

	n := newTestNS(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("wgs%d", i)
			n.addWG(t, name)
			if tt.withKey {
				n.configure(t, name, wgtypes.Config{PrivateKey: &priv})
			}
			n.configure(t, name, wgtypes.Config{Peers: tt.initial})
			n.configure(t, name, tt.change)

			d := n.device(t, name)
			want := make(peerIPs, len(tt.want))
			for l, ips := range tt.want {
				want[keys[l]] = sortedPrefixes(prefixes(t, ips...))
			}
			assertPeerIPs(t, d, want, names)
			if tt.wantCheck != nil {
				byLabel := map[string]wgtypes.Peer{}
				for _, p := range d.Peers {
					byLabel[names[p.PublicKey]] = p
				}
				tt.wantCheck(t, byLabel)
			}
			if tt.then != nil {
				tt.then(t, n, name)
			}
		})
	}
}
