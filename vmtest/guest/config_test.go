package guest

import (
	"net"
	"slices"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestConfigDeviceFields sets each device field through wgctrl and reads it
// back.
func TestConfigDeviceFields(t *testing.T) {
	isolated(t)
	const name = "wg0"
	n := newTestNS(t)
	n.addWG(t, name)

	d := n.device(t, name)
	if d.PrivateKey != (wgtypes.Key{}) || d.PublicKey != (wgtypes.Key{}) || d.ListenPort != 0 || d.FirewallMark != 0 || len(d.Peers) != 0 {
		t.Errorf("new device: want no keys, port 0, fwmark 0, no peers; got private %s public %s port %d fwmark %#x peers %d",
			d.PrivateKey, d.PublicKey, d.ListenPort, d.FirewallMark, len(d.Peers))
	}
	if d.Name != name {
		t.Errorf("device name: want %q, got %q", name, d.Name)
	}

	t.Run("PrivateKey", func(t *testing.T) {
		for i := range 2 { // set, then replace
			priv := newPrivateKey(t)
			n.configure(t, name, wgtypes.Config{PrivateKey: &priv})
			d := n.device(t, name)
			if d.PrivateKey != priv {
				t.Errorf("round %d: private key: want %s, got %s", i, priv, d.PrivateKey)
			}
			if d.PublicKey != priv.PublicKey() {
				t.Errorf("round %d: public key: want %s (Curve25519 of the private key), got %s", i, priv.PublicKey(), d.PublicKey)
			}
		}
	})

	t.Run("FirewallMark", func(t *testing.T) {
		for _, mark := range []int{0x1234, 0xffffffff, 0} { // 0 clears it
			n.configure(t, name, wgtypes.Config{FirewallMark: ptr(mark)})
			if got := n.device(t, name).FirewallMark; got != mark {
				t.Errorf("fwmark: set %#x, read back %#x", mark, got)
			}
		}
	})

	t.Run("ListenPortExplicit", func(t *testing.T) {
		const port = 43001
		n.configure(t, name, wgtypes.Config{ListenPort: ptr(port)})
		if got := n.device(t, name).ListenPort; got != port {
			t.Errorf("listen port while down: want %d, got %d", port, got)
		}
		n.up(t, name)
		if got := n.device(t, name).ListenPort; got != port {
			t.Errorf("listen port after up: want %d, got %d", port, got)
		}
		if !n.portBusy(t, port) {
			t.Errorf("UDP port %d is not bound although the device is up", port)
		}
		// Changing the port of a running device moves the socket.
		const port2 = 43002
		n.configure(t, name, wgtypes.Config{ListenPort: ptr(port2)})
		if got := n.device(t, name).ListenPort; got != port2 {
			t.Errorf("listen port changed while up: want %d, got %d", port2, got)
		}
		if !n.portBusy(t, port2) || n.portBusy(t, port) {
			t.Errorf("after changing the port from %d to %d while up: want only %d bound; %d busy=%v, %d busy=%v",
				port, port2, port2, port, n.portBusy(t, port), port2, n.portBusy(t, port2))
		}
	})
}

// TestConfigListenPortAuto checks that port 0 makes the kernel pick a free
// port when the device comes up, and that the real port is reported.
func TestConfigListenPortAuto(t *testing.T) {
	isolated(t)
	const name = "wg0"
	n := newTestNS(t)
	n.addWG(t, name)
	n.configure(t, name, wgtypes.Config{ListenPort: ptr(0)})
	if got := n.device(t, name).ListenPort; got != 0 {
		t.Errorf("listen port 0 while down: read back %d, want 0", got)
	}
	n.up(t, name)
	port := n.device(t, name).ListenPort
	if port == 0 {
		t.Fatalf("listen port after up: got 0, want the port the kernel picked")
	}
	if !n.portBusy(t, port) {
		t.Errorf("reported listen port %d is not actually bound", port)
	}
}

// TestConfigPeerFields sets every peer field through wgctrl and reads it
// back, including the kernel's allowed-IP normalisation.
func TestConfigPeerFields(t *testing.T) {
	isolated(t)
	const name = "wg0"
	n := newTestNS(t)
	n.addWG(t, name)

	psk, err := wgtypes.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		psk       wgtypes.Key
		endpoint  string
		keepalive time.Duration
		ips       []string
	}
	tests := []struct {
		name string
		cfg  wgtypes.PeerConfig
		want want
	}{
		{
			name: "v4 endpoint, PSK, keepalive",
			cfg: wgtypes.PeerConfig{
				PublicKey:                   peerKey(t.Name(), 0),
				PresharedKey:                &psk,
				Endpoint:                    udpAddr(t, "127.0.0.1:51820"),
				PersistentKeepaliveInterval: ptr(25 * time.Second),
				AllowedIPs:                  prefixes(t, "10.10.0.0/16", "192.168.7.1/32"),
			},
			want: want{psk, "127.0.0.1:51820", 25 * time.Second, []string{"10.10.0.0/16", "192.168.7.1/32"}},
		},
		{
			name: "v6 endpoint, max keepalive",
			cfg: wgtypes.PeerConfig{
				PublicKey:                   peerKey(t.Name(), 1),
				Endpoint:                    udpAddr(t, "[::1]:65535"),
				PersistentKeepaliveInterval: ptr(65535 * time.Second),
				AllowedIPs:                  prefixes(t, "fd00:1::/64", "::/0"),
			},
			want: want{wgtypes.Key{}, "[::1]:65535", 65535 * time.Second, []string{"::/0", "fd00:1::/64"}},
		},
		{
			name: "cidr normalisation",
			cfg: wgtypes.PeerConfig{
				PublicKey: peerKey(t.Name(), 2),
				AllowedIPs: []net.IPNet{
					unmaskedPrefix(t, "10.1.2.3/8"),
					unmaskedPrefix(t, "172.16.5.6/12"),
					unmaskedPrefix(t, "fd00:1:2:3::5/48"),
					unmaskedPrefix(t, "1.2.3.4/0"),
				},
			},
			want: want{ips: []string{"0.0.0.0/0", "10.0.0.0/8", "172.16.0.0/12", "fd00:1:2::/48"}},
		},
		{
			name: "no optional fields",
			cfg:  wgtypes.PeerConfig{PublicKey: peerKey(t.Name(), 3)},
			want: want{ips: []string{}},
		},
	}

	var cfgs []wgtypes.PeerConfig
	for _, tt := range tests {
		cfgs = append(cfgs, tt.cfg)
	}
	n.configure(t, name, wgtypes.Config{Peers: cfgs})
	d := n.device(t, name)
	got := make(map[wgtypes.Key]wgtypes.Peer)
	for _, p := range d.Peers {
		got[p.PublicKey] = p
	}
	if len(d.Peers) != len(tests) {
		t.Errorf("peer count: want %d, got %d", len(tests), len(d.Peers))
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := got[tt.cfg.PublicKey]
			if !ok {
				t.Fatalf("peer %s missing from the device", tt.cfg.PublicKey)
			}
			if p.PresharedKey != tt.want.psk {
				t.Errorf("preshared key: want %s, got %s", tt.want.psk, p.PresharedKey)
			}
			if ep := endpointString(p.Endpoint); ep != tt.want.endpoint {
				t.Errorf("endpoint: want %q, got %q", tt.want.endpoint, ep)
			}
			if p.PersistentKeepaliveInterval != tt.want.keepalive {
				t.Errorf("persistent keepalive: want %v, got %v", tt.want.keepalive, p.PersistentKeepaliveInterval)
			}
			if ips := sortedPrefixes(p.AllowedIPs); !slices.Equal(ips, tt.want.ips) {
				t.Errorf("allowed IPs: want %v, got %v", tt.want.ips, ips)
			}
			if p.ProtocolVersion != 1 {
				t.Errorf("protocol version: want 1, got %d", p.ProtocolVersion)
			}
			if !p.LastHandshakeTime.IsZero() {
				t.Errorf("last handshake: want zero for a peer that never talked, got %v", p.LastHandshakeTime)
			}
			if p.ReceiveBytes != 0 || p.TransmitBytes != 0 {
				t.Errorf("rx/tx bytes: want 0/0, got %d/%d", p.ReceiveBytes, p.TransmitBytes)
			}
		})
	}

	// Updating a peer changes only what is given; keepalive 0 disables it;
	// an all-zero PSK clears it; a new endpoint replaces the old one.
	t.Run("update", func(t *testing.T) {
		k := tests[0].cfg.PublicKey
		n.configure(t, name, wgtypes.Config{Peers: []wgtypes.PeerConfig{{
			PublicKey:                   k,
			PresharedKey:                &wgtypes.Key{},
			Endpoint:                    udpAddr(t, "[::1]:1"),
			PersistentKeepaliveInterval: ptr(time.Duration(0)),
		}}})
		var p *wgtypes.Peer
		for _, q := range n.device(t, name).Peers {
			if q.PublicKey == k {
				p = &q
			}
		}
		if p == nil {
			t.Fatalf("peer %s disappeared after an update", k)
		}
		if p.PresharedKey != (wgtypes.Key{}) {
			t.Errorf("preshared key after setting zeros: want cleared, got %s", p.PresharedKey)
		}
		if ep := endpointString(p.Endpoint); ep != "[::1]:1" {
			t.Errorf("endpoint after update: want [::1]:1, got %q", ep)
		}
		if p.PersistentKeepaliveInterval != 0 {
			t.Errorf("keepalive after setting 0: want 0, got %v", p.PersistentKeepaliveInterval)
		}
		if ips := sortedPrefixes(p.AllowedIPs); !slices.Equal(ips, tests[0].want.ips) {
			t.Errorf("allowed IPs changed by an update that did not mention them: want %v, got %v", tests[0].want.ips, ips)
		}
	})
}
