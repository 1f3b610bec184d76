package guest

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Hand-built attribute helpers. Every nested attribute carries NLA_F_NESTED
// as wg(8) and wgctrl send it, unless a case leaves it out on purpose.

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func aIfname(name string) []byte { return nlattr(deviceAIfname, 0, cstring(name)) }
func aPeers(elems ...[]byte) []byte {
	return nlattr(deviceAPeers|nlaFNested, 0, cat(elems...))
}

// aElem is one element of a netlink array (peers or allowed IPs).
func aElem(attrs ...[]byte) []byte { return nlattr(nlaFNested, 0, cat(attrs...)) }
func aPeerKey(k wgtypes.Key) []byte {
	return nlattr(peerAPublicKey, 0, k[:])
}
func aAllowedIPs(elems ...[]byte) []byte {
	return nlattr(peerAAllowedIPs|nlaFNested, 0, cat(elems...))
}

// aAllowedIP is one allowed IP element with the given raw fields.
func aAllowedIP(family uint16, addr []byte, cidr uint8) []byte {
	return aElem(
		nlattr(allowedIPAFamily, 0, u16(family)),
		nlattr(allowedIPAIPAddr, 0, addr),
		nlattr(allowedIPACidrMask, 0, []byte{cidr}),
	)
}

func v4(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }
func v6(s string) []byte { a := netip.MustParseAddr(s).As16(); return a[:] }

// rawFixture is a device with a known configuration that the bad requests
// must leave alone.
type rawFixture struct {
	n          *testNS
	g          *genlClient
	name       string
	ifindex    int
	existing   wgtypes.Key // a peer that exists
	existingIP string
	fresh      wgtypes.Key // a peer that does not exist
}

func newRawFixture(t *testing.T) *rawFixture {
	t.Helper()
	const name = "wg0"
	n := newTestNS(t)
	l := n.addWG(t, name)
	priv := newPrivateKey(t)
	psk, err := wgtypes.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &rawFixture{
		n: n, g: n.genl(t), name: name, ifindex: l.Attrs().Index,
		existing:   peerKey(t.Name(), 1),
		existingIP: "10.51.0.0/24",
		fresh:      peerKey(t.Name(), 2),
	}
	n.configure(t, name, wgtypes.Config{
		PrivateKey:   &priv,
		ListenPort:   ptr(46001),
		FirewallMark: ptr(0x77),
		Peers: []wgtypes.PeerConfig{
			{
				PublicKey:                   peerKey(t.Name(), 0),
				PresharedKey:                &psk,
				Endpoint:                    udpAddr(t, "127.0.0.1:1000"),
				PersistentKeepaliveInterval: ptr(10 * time.Second),
				AllowedIPs:                  prefixes(t, "10.50.0.0/24", "fd00:50::/64"),
			},
			{PublicKey: f.existing, AllowedIPs: prefixes(t, f.existingIP)},
		},
	})
	return f
}

// rawCase is one malformed request and the errno it must fail with.
//
// The errnos are the upstream ABI: an attribute whose length is outside
// its policy's exact or minimum length (keys, endpoint, address) fails
// netlink policy validation with ERANGE; other malformed or unknown
// attributes with EINVAL (strict validation); unknown flag bits with
// EINVAL too (errUnknownFlags; upstream before 7.2 said EOPNOTSUPP); a
// protocol version other than 1 with EPFNOSUPPORT; neither or both of
// ifindex and ifname with EBADR; a missing device with ENODEV.
type rawCase struct {
	name  string
	attrs func(f *rawFixture) []byte
	want  unix.Errno
}

// existingPeerWith targets the existing peer, so that nothing is applied
// before the bad attribute even by a driver that applies as it parses.
func existingPeerWith(attrs ...[]byte) func(f *rawFixture) []byte {
	return func(f *rawFixture) []byte {
		return cat(aIfname(f.name), aPeers(aElem(append([][]byte{aPeerKey(f.existing)}, attrs...)...)))
	}
}

// existingPeerIP targets the existing peer with one allowed IP element.
func existingPeerIP(elem []byte) func(f *rawFixture) []byte {
	return existingPeerWith(aAllowedIPs(elem))
}

func withIfname(attrs ...[]byte) func(f *rawFixture) []byte {
	return func(f *rawFixture) []byte { return cat(append([][]byte{aIfname(f.name)}, attrs...)...) }
}

var rawSetCases = []rawCase{
	// Device attributes.
	{"private key 31 bytes", withIfname(nlattr(deviceAPrivateKey, 0, make([]byte, 31))), unix.ERANGE},
	{"private key 33 bytes", withIfname(nlattr(deviceAPrivateKey, 0, make([]byte, 33))), unix.ERANGE},
	{"unknown top-level attribute 100", withIfname(nlattr(100, 0, u32(1))), unix.EINVAL},
	{"top-level attribute type 0 (UNSPEC)", withIfname(nlattr(deviceAUnspec, 0, u32(1))), unix.EINVAL},
	{"listen port as u32", withIfname(nlattr(deviceAListenPort, 0, u32(46002))), unix.EINVAL},
	{"listen port with NLA_F_NESTED", withIfname(nlattr(deviceAListenPort|nlaFNested, 0, u16(46002))), unix.EINVAL},
	{"fwmark as u16", withIfname(nlattr(deviceAFwmark, 0, u16(1))), unix.EINVAL},
	{"unknown device flag bit", withIfname(nlattr(deviceAFlags, 0, u32(1<<1))), errUnknownFlags},
	{"unknown device flag high bit", withIfname(nlattr(deviceAFlags, 0, u32(deviceFReplacePeers|1<<31))), errUnknownFlags},
	{"peers without NLA_F_NESTED", func(f *rawFixture) []byte {
		return cat(aIfname(f.name), nlattr(deviceAPeers, 0, aElem(aPeerKey(f.fresh))))
	}, unix.EINVAL},
	{"truncated top-level attribute", func(f *rawFixture) []byte {
		// The peers header claims 200 bytes; 36 follow.
		return cat(aIfname(f.name), nlattr(deviceAPeers|nlaFNested, 200, aElem(aPeerKey(f.fresh))))
	}, unix.EINVAL},

	// Addressing the device.
	{"neither ifindex nor ifname", func(f *rawFixture) []byte {
		return nlattr(deviceAListenPort, 0, u16(46003))
	}, unix.EBADR},
	{"both ifindex and ifname", func(f *rawFixture) []byte {
		return cat(nlattr(deviceAIfindex, 0, u32(uint32(f.ifindex))), aIfname(f.name), nlattr(deviceAListenPort, 0, u16(46003)))
	}, unix.EBADR},
	{"nonexistent ifname", func(f *rawFixture) []byte { return cat(aIfname("wgnope0"), nlattr(deviceAListenPort, 0, u16(1))) }, unix.ENODEV},
	{"nonexistent ifindex", func(f *rawFixture) []byte {
		return cat(nlattr(deviceAIfindex, 0, u32(0x7ffffff0)), nlattr(deviceAListenPort, 0, u16(1)))
	}, unix.ENODEV},
	{"ifname not NUL-terminated within IFNAMSIZ", func(f *rawFixture) []byte {
		return nlattr(deviceAIfname, 0, []byte("wg0wg0wg0wg0wg0w"))
	}, unix.EINVAL},
	{"not a wireguard device (lo)", func(f *rawFixture) []byte { return cat(aIfname("lo"), nlattr(deviceAListenPort, 0, u16(1))) }, unix.EOPNOTSUPP},

	// Peer attributes.
	{"peer public key 33 bytes", withIfname(aPeers(aElem(nlattr(peerAPublicKey, 0, make([]byte, 33))))), unix.ERANGE},
	{"peer public key 31 bytes", withIfname(aPeers(aElem(nlattr(peerAPublicKey, 0, make([]byte, 31))))), unix.ERANGE},
	{"peer without public key", withIfname(aPeers(aElem(aAllowedIPs(aAllowedIP(unix.AF_INET, v4("10.70.0.0"), 24))))), unix.EINVAL},
	{"preshared key 31 bytes", existingPeerWith(nlattr(peerAPresharedKey, 0, make([]byte, 31))), unix.ERANGE},
	{"unknown peer flag bit", existingPeerWith(nlattr(peerAFlags, 0, u32(peerFReplaceAllowedIPs|1<<3))), errUnknownFlags},
	{"protocol version 2", func(f *rawFixture) []byte {
		return cat(aIfname(f.name), aPeers(aElem(aPeerKey(f.fresh), nlattr(peerAProtocolVersion, 0, u32(2)))))
	}, unix.EPFNOSUPPORT},
	{"unknown peer attribute 50", existingPeerWith(nlattr(50, 0, u32(1))), unix.EINVAL},
	{"endpoint shorter than sockaddr", existingPeerWith(nlattr(peerAEndpoint, 0, sockaddrIn(netip.MustParseAddr("127.0.0.1"), 1)[:8])), unix.ERANGE},
	{"keepalive as u32", existingPeerWith(nlattr(peerAKeepalive, 0, u32(5))), unix.EINVAL},
	{"allowed IPs without NLA_F_NESTED", existingPeerWith(nlattr(peerAAllowedIPs, 0, aAllowedIP(unix.AF_INET, v4("10.71.0.0"), 24))), unix.EINVAL},
	{"truncated attribute inside a peer", func(f *rawFixture) []byte {
		// The key header claims 40 bytes; the peer element ends after 32.
		return cat(aIfname(f.name), aPeers(aElem(nlattr(peerAPublicKey, 40, f.existing[:]))))
	}, unix.EINVAL},

	// Allowed IPs (of the existing peer, nothing before them).
	{"IPv4 cidr 33", existingPeerIP(aAllowedIP(unix.AF_INET, v4("10.72.0.0"), 33)), unix.EINVAL},
	{"IPv6 cidr 129", existingPeerIP(aAllowedIP(unix.AF_INET6, v6("fd00:72::"), 129)), unix.EINVAL},
	{"AF_INET with a 16-byte address", existingPeerIP(aAllowedIP(unix.AF_INET, v6("fd00:73::"), 24)), unix.EINVAL},
	{"AF_INET6 with a 4-byte address", existingPeerIP(aAllowedIP(unix.AF_INET6, v4("10.74.0.0"), 24)), unix.EINVAL},
	{"address of 3 bytes", existingPeerIP(aAllowedIP(unix.AF_INET, []byte{10, 75, 0}, 24)), unix.ERANGE},
	{"unknown family AF_UNIX", existingPeerIP(aAllowedIP(unix.AF_UNIX, v4("10.76.0.0"), 24)), unix.EINVAL},
	{"missing cidr", existingPeerIP(aElem(
		nlattr(allowedIPAFamily, 0, u16(unix.AF_INET)),
		nlattr(allowedIPAIPAddr, 0, v4("10.77.0.0")),
	)), unix.EINVAL},
	{"missing family", existingPeerIP(aElem(
		nlattr(allowedIPAIPAddr, 0, v4("10.77.0.0")),
		nlattr(allowedIPACidrMask, 0, []byte{24}),
	)), unix.EINVAL},
	{"cidr as u16", existingPeerIP(aElem(
		nlattr(allowedIPAFamily, 0, u16(unix.AF_INET)),
		nlattr(allowedIPAIPAddr, 0, v4("10.78.0.0")),
		nlattr(allowedIPACidrMask, 0, u16(24)),
	)), unix.EINVAL},
	{"unknown allowed-IP attribute 10", existingPeerIP(aElem(
		nlattr(allowedIPAFamily, 0, u16(unix.AF_INET)),
		nlattr(allowedIPAIPAddr, 0, v4("10.79.0.0")),
		nlattr(allowedIPACidrMask, 0, []byte{24}),
		nlattr(10, 0, u32(0)),
	)), unix.EINVAL},
}

// TestRawSetDeviceRejects sends malformed WG_CMD_SET_DEVICE requests; each
// must fail with its errno and leave the device exactly as it was.
func TestRawSetDeviceRejects(t *testing.T) {
	f := newRawFixture(t)
	for _, tc := range rawSetCases {
		t.Run(tc.name, func(t *testing.T) {
			before := viewOf(f.n.device(t, f.name))
			err := f.g.set(tc.attrs(f))
			if got := errnoOf(err); !errnoMatches(got, tc.want) {
				t.Errorf("SET_DEVICE: want %s, got %s (%v)", errnoName(tc.want), errnoName(got), err)
			}
			assertUnchanged(t, before, viewOf(f.n.device(t, f.name)))
		})
	}
}

// TestRawSetDeviceWrongFlags sends SET_DEVICE as a dump, which it does not
// support.
func TestRawSetDeviceWrongFlags(t *testing.T) {
	f := newRawFixture(t)
	before := viewOf(f.n.device(t, f.name))
	_, err := f.g.c.Execute(genlMsg(cmdSetDevice, cat(aIfname(f.name), nlattr(deviceAListenPort, 0, u16(46004)))), f.g.fam.ID, netlink.Request|netlink.Dump)
	if got := errnoOf(err); got != unix.EOPNOTSUPP {
		t.Errorf("SET_DEVICE with NLM_F_DUMP: want EOPNOTSUPP, got %s (%v)", errnoName(got), err)
	}
	assertUnchanged(t, before, viewOf(f.n.device(t, f.name)))
}

// TestRawGetDeviceRejects sends malformed WG_CMD_GET_DEVICE requests.
func TestRawGetDeviceRejects(t *testing.T) {
	f := newRawFixture(t)
	tests := []struct {
		name  string
		cmd   uint8
		flags netlink.HeaderFlags
		attrs func(f *rawFixture) []byte
		want  unix.Errno
	}{
		{"neither ifindex nor ifname", cmdGetDevice, netlink.Request | netlink.Dump, func(*rawFixture) []byte { return nil }, unix.EBADR},
		{"both ifindex and ifname", cmdGetDevice, netlink.Request | netlink.Dump, func(f *rawFixture) []byte {
			return cat(nlattr(deviceAIfindex, 0, u32(uint32(f.ifindex))), aIfname(f.name))
		}, unix.EBADR},
		{"nonexistent ifname", cmdGetDevice, netlink.Request | netlink.Dump, func(*rawFixture) []byte { return aIfname("wgnope0") }, unix.ENODEV},
		{"nonexistent ifindex", cmdGetDevice, netlink.Request | netlink.Dump, func(*rawFixture) []byte { return nlattr(deviceAIfindex, 0, u32(0x7ffffff0)) }, unix.ENODEV},
		{"not a wireguard device (lo)", cmdGetDevice, netlink.Request | netlink.Dump, func(*rawFixture) []byte { return aIfname("lo") }, unix.EOPNOTSUPP},
		{"unknown attribute 100", cmdGetDevice, netlink.Request | netlink.Dump, func(f *rawFixture) []byte { return cat(aIfname(f.name), nlattr(100, 0, u32(0))) }, unix.EINVAL},
		{"ifindex as u16", cmdGetDevice, netlink.Request | netlink.Dump, func(f *rawFixture) []byte { return nlattr(deviceAIfindex, 0, u16(uint16(f.ifindex))) }, unix.EINVAL},
		{"without NLM_F_DUMP", cmdGetDevice, netlink.Request | netlink.Acknowledge, func(f *rawFixture) []byte { return aIfname(f.name) }, unix.EOPNOTSUPP},
		{"unknown command 7", 7, netlink.Request | netlink.Acknowledge, func(f *rawFixture) []byte { return aIfname(f.name) }, unix.EOPNOTSUPP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := f.g.c.Execute(genlMsg(tc.cmd, tc.attrs(f)), f.g.fam.ID, tc.flags)
			if got := errnoOf(err); !errnoMatches(got, tc.want) {
				t.Errorf("command %d: want %s, got %s (%v, %d messages)", tc.cmd, errnoName(tc.want), errnoName(got), err, len(msgs))
			}
		})
	}

	// The good requests work, by name and by index.
	for _, attrs := range [][]byte{aIfname(f.name), nlattr(deviceAIfindex, 0, u32(uint32(f.ifindex)))} {
		msgs, err := f.g.get(attrs)
		if err != nil || len(msgs) == 0 {
			t.Errorf("valid GET_DEVICE: want messages, got %d and error %v", len(msgs), err)
		}
	}
}

// TestRawSetDeviceAtomic_StricterThanUpstream puts valid changes before a
// bad part in one SET_DEVICE message and asserts that nothing at all is
// applied. Our driver validates the whole message before changing anything;
// the upstream module applies as it parses, so these cases are expected to
// FAIL against --module upstream (partial application, and for the last two
// cases upstream does not even report an error).
func TestRawSetDeviceAtomic_StricterThanUpstream(t *testing.T) {
	f := newRawFixture(t)
	newPeer := func() []byte {
		return aElem(aPeerKey(f.fresh), aAllowedIPs(aAllowedIP(unix.AF_INET, v4("10.60.0.0"), 24)))
	}
	// A valid update of the existing peer: new endpoint, one more IP.
	updateExisting := func() []byte {
		return aElem(aPeerKey(f.existing),
			nlattr(peerAEndpoint, 0, sockaddrIn6(netip.MustParseAddr("::1"), 2000)),
			aAllowedIPs(aAllowedIP(unix.AF_INET6, v6("fd00:61::"), 64)))
	}
	third := peerKey(t.Name(), 3)
	validPrefix := func(f *rawFixture, flags uint32) []byte {
		b := cat(aIfname(f.name),
			nlattr(deviceAListenPort, 0, u16(46099)),
			nlattr(deviceAFwmark, 0, u32(0x99)))
		if flags != 0 {
			b = cat(b, nlattr(deviceAFlags, 0, u32(flags)))
		}
		return b
	}
	badSecond := func(bad []byte) func(f *rawFixture) []byte {
		return func(f *rawFixture) []byte { return cat(validPrefix(f, 0), aPeers(newPeer(), updateExisting(), bad)) }
	}
	tests := []rawCase{
		{"third peer IPv4 cidr 33", badSecond(aElem(aPeerKey(third), aAllowedIPs(aAllowedIP(unix.AF_INET, v4("10.62.0.0"), 33)))), unix.EINVAL},
		{"third peer IPv6 cidr 129", badSecond(aElem(aPeerKey(third), aAllowedIPs(aAllowedIP(unix.AF_INET6, v6("fd00:62::"), 129)))), unix.EINVAL},
		{"third peer AF_INET with 16-byte address", badSecond(aElem(aPeerKey(third), aAllowedIPs(aAllowedIP(unix.AF_INET, v6("fd00:63::"), 24)))), unix.EINVAL},
		{"third peer public key 33 bytes", badSecond(aElem(nlattr(peerAPublicKey, 0, make([]byte, 33)))), unix.ERANGE},
		{"third peer protocol version 2", badSecond(aElem(aPeerKey(third), nlattr(peerAProtocolVersion, 0, u32(2)))), unix.EPFNOSUPPORT},
		{"third peer unknown flag", badSecond(aElem(aPeerKey(third), nlattr(peerAFlags, 0, u32(1<<3)))), errUnknownFlags},
		{"good then bad allowed IP in one peer", badSecond(aElem(aPeerKey(third), aAllowedIPs(
			aAllowedIP(unix.AF_INET, v4("10.64.0.0"), 24),
			aAllowedIP(unix.AF_INET, v4("10.64.1.0"), 40)))), unix.EINVAL},
		{"REPLACE_PEERS then a bad peer", func(f *rawFixture) []byte {
			return cat(validPrefix(f, deviceFReplacePeers), aPeers(newPeer(), aElem(aPeerKey(third), nlattr(peerAProtocolVersion, 0, u32(2)))))
		}, unix.EPFNOSUPPORT},
		{"new private key then a bad peer", func(f *rawFixture) []byte {
			k := peerKey("private", 0)
			return cat(validPrefix(f, 0), nlattr(deviceAPrivateKey, 0, k[:]), aPeers(newPeer(), aElem(aPeerKey(third), aAllowedIPs(aAllowedIP(unix.AF_INET, v4("10.65.0.0"), 33)))))
		}, unix.EINVAL},
		// Upstream silently ignores the rest of an array whose next element
		// is truncated, and reports success.
		{"truncated peer array element", badSecond(nlattr(nlaFNested, 200, aPeerKey(third))), unix.EINVAL},
		// Upstream silently ignores an endpoint whose length does not match
		// its family, and reports success.
		{"endpoint AF_INET with sockaddr_in6 length", badSecond(aElem(aPeerKey(third),
			nlattr(peerAEndpoint, 0, append(sockaddrIn(netip.MustParseAddr("127.0.0.1"), 3), make([]byte, sizeofSockIn6-sizeofSockIn)...)))), unix.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := viewOf(f.n.device(t, f.name))
			err := f.g.set(tc.attrs(f))
			if got := errnoOf(err); !errnoMatches(got, tc.want) {
				t.Errorf("SET_DEVICE: want %s, got %s (%v)", errnoName(tc.want), errnoName(got), err)
			}
			after := viewOf(f.n.device(t, f.name))
			assertUnchanged(t, before, after)
			if t.Failed() {
				// Put the fixture back for the next case.
				restoreFixture(t, f, before)
			}
		})
	}
}

// restoreFixture reconfigures the fixture device to view v.
func restoreFixture(t *testing.T, f *rawFixture, v deviceView) {
	t.Helper()
	cfg := wgtypes.Config{
		PrivateKey:   &v.PrivateKey,
		ListenPort:   ptr(v.ListenPort),
		FirewallMark: ptr(v.FirewallMark),
		ReplacePeers: true,
	}
	for k, p := range v.Peers {
		pc := wgtypes.PeerConfig{
			PublicKey:    k,
			PresharedKey: ptr(p.PresharedKey),
			AllowedIPs:   prefixes(t, p.AllowedIPs...),
		}
		if p.Endpoint != "" {
			pc.Endpoint = udpAddr(t, p.Endpoint)
		}
		if p.Keepalive != 0 {
			pc.PersistentKeepaliveInterval = ptr(p.Keepalive)
		}
		cfg.Peers = append(cfg.Peers, pc)
	}
	f.n.configure(t, f.name, cfg)
	if d := diffViews(v, viewOf(f.n.device(t, f.name)), 5); len(d) > 0 {
		t.Fatalf("could not restore the fixture: %v", d)
	}
}

// TestRawSetDeviceValidControl sends well-formed requests built with the
// same helpers as the bad ones, so that a rejection above is known to come
// from the bad part and not from the builders.
func TestRawSetDeviceValidControl(t *testing.T) {
	f := newRawFixture(t)
	existing, fresh := f.existing, f.fresh
	ip4 := func(s string, cidr uint8) []byte { return aAllowedIP(unix.AF_INET, v4(s), cidr) }
	steps := []struct {
		name  string
		attrs []byte
		check func(t *testing.T, v deviceView)
	}{
		{"append an allowed IP", cat(aIfname(f.name), aPeers(aElem(aPeerKey(existing), aAllowedIPs(ip4("10.80.0.0", 24))))),
			func(t *testing.T, v deviceView) {
				wantIPs(t, v, existing, f.existingIP, "10.80.0.0/24")
			}},
		{"replace allowed IPs, v4 endpoint, protocol 1", cat(aIfname(f.name), aPeers(aElem(aPeerKey(existing),
			nlattr(peerAFlags, 0, u32(peerFReplaceAllowedIPs)),
			nlattr(peerAProtocolVersion, 0, u32(1)),
			nlattr(peerAEndpoint, 0, sockaddrIn(netip.MustParseAddr("127.0.0.1"), 3000)),
			aAllowedIPs(aAllowedIP(unix.AF_INET6, v6("fd00:81::"), 64))))),
			func(t *testing.T, v deviceView) {
				wantIPs(t, v, existing, "fd00:81::/64")
				if ep := v.Peers[existing].Endpoint; ep != "127.0.0.1:3000" {
					t.Errorf("endpoint: want 127.0.0.1:3000, got %q", ep)
				}
			}},
		{"v6 endpoint, keepalive", cat(aIfname(f.name), aPeers(aElem(aPeerKey(existing),
			nlattr(peerAEndpoint, 0, sockaddrIn6(netip.MustParseAddr("::1"), 3001)),
			nlattr(peerAKeepalive, 0, u16(7))))),
			func(t *testing.T, v deviceView) {
				if p := v.Peers[existing]; p.Endpoint != "[::1]:3001" || p.Keepalive != 7*time.Second {
					t.Errorf("endpoint/keepalive: want [::1]:3001/7s, got %q/%v", p.Endpoint, p.Keepalive)
				}
			}},
		{"UPDATE_ONLY does not create", cat(aIfname(f.name), aPeers(aElem(aPeerKey(fresh), nlattr(peerAFlags, 0, u32(peerFUpdateOnly))))),
			func(t *testing.T, v deviceView) {
				if _, ok := v.Peers[fresh]; ok {
					t.Errorf("UPDATE_ONLY created peer %s", fresh)
				}
			}},
		{"REMOVE_ME removes", cat(aIfname(f.name), aPeers(aElem(aPeerKey(existing), nlattr(peerAFlags, 0, u32(peerFRemoveMe))))),
			func(t *testing.T, v deviceView) {
				if _, ok := v.Peers[existing]; ok {
					t.Errorf("REMOVE_ME left peer %s", existing)
				}
			}},
		{"by ifindex: REPLACE_PEERS, port, fwmark", cat(
			nlattr(deviceAIfindex, 0, u32(uint32(f.ifindex))),
			nlattr(deviceAFlags, 0, u32(deviceFReplacePeers)),
			nlattr(deviceAListenPort, 0, u16(46100)),
			nlattr(deviceAFwmark, 0, u32(0x5))),
			func(t *testing.T, v deviceView) {
				if len(v.Peers) != 0 || v.ListenPort != 46100 || v.FirewallMark != 5 {
					t.Errorf("want 0 peers, port 46100, fwmark 0x5; got %d peers, port %d, fwmark %#x", len(v.Peers), v.ListenPort, v.FirewallMark)
				}
			}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := f.g.set(st.attrs); err != nil {
				t.Fatalf("valid SET_DEVICE failed: %v", err)
			}
			st.check(t, viewOf(f.n.device(t, f.name)))
		})
	}
}

func wantIPs(t *testing.T, v deviceView, k wgtypes.Key, ips ...string) {
	t.Helper()
	p, ok := v.Peers[k]
	if !ok {
		t.Fatalf("peer %s missing", k)
	}
	want := sortedPrefixes(prefixes(t, ips...))
	if !slices.Equal(p.AllowedIPs, want) {
		t.Errorf("allowed IPs of %s: want %v, got %v", k, want, p.AllowedIPs)
	}
}
