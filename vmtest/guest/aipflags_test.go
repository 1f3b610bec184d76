package guest

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// aAllowedIPFlags is an allowed IP element with WGALLOWEDIP_A_FLAGS.
func aAllowedIPFlags(family uint16, addr []byte, cidr uint8, flags uint32) []byte {
	return aElem(
		nlattr(allowedIPAFamily, 0, u16(family)),
		nlattr(allowedIPAIPAddr, 0, addr),
		nlattr(allowedIPACidrMask, 0, []byte{cidr}),
		nlattr(allowedIPAFlags, 0, u32(flags)),
	)
}

// removeIP4 and removeIP6 are allowed IP elements with WGALLOWEDIP_F_REMOVE_ME.
func removeIP4(s string, cidr uint8) []byte {
	return aAllowedIPFlags(unix.AF_INET, v4(s), cidr, allowedIPFRemoveMe)
}

func removeIP6(s string, cidr uint8) []byte {
	return aAllowedIPFlags(unix.AF_INET6, v6(s), cidr, allowedIPFRemoveMe)
}

// TestAllowedIPFlags checks WGALLOWEDIP_A_FLAGS: WGALLOWEDIP_F_REMOVE_ME
// removes one prefix from the peer it is sent under, and only if that peer
// owns it; unknown flag bits are refused. Modules older than the attribute
// (Debian 6.1's upstream wireguard.ko) reject it under strict validation
// with EINVAL; the test then skips.
func TestAllowedIPFlags(t *testing.T) {
	isolated(t)
	const name = "wg0"
	n := newTestNS(t)
	n.addWG(t, name)
	g := n.genl(t)
	a, b := peerKey(t.Name(), 0), peerKey(t.Name(), 1)
	names := map[wgtypes.Key]string{a: "A", b: "B"}
	aIPs := []string{"10.1.0.0/24", "10.2.0.0/24", "fd00:1::/64", "fd00:2::/64"}
	bIPs := []string{"10.3.0.0/24", "fd00:3::/64"}

	// reset gives the device exactly peers A and B with their prefixes.
	reset := func(t *testing.T) {
		t.Helper()
		n.configure(t, name, wgtypes.Config{ReplacePeers: true, Peers: []wgtypes.PeerConfig{
			{PublicKey: a, AllowedIPs: prefixes(t, aIPs...)},
			{PublicKey: b, AllowedIPs: prefixes(t, bIPs...)},
		}})
	}
	want := func(t *testing.T, aips, bips []string) peerIPs {
		t.Helper()
		return peerIPs{a: sortedPrefixes(prefixes(t, aips...)), b: sortedPrefixes(prefixes(t, bips...))}
	}
	under := func(k wgtypes.Key, elems ...[]byte) []byte {
		return cat(aIfname(name), aPeers(aElem(aPeerKey(k), aAllowedIPs(elems...))))
	}

	// Probe: a REMOVE_ME of a prefix nobody owns changes nothing, so it is
	// harmless wherever the attribute is understood.
	reset(t)
	err := g.set(under(a, removeIP4("10.99.0.0", 24)))
	if errnoOf(err) == unix.EINVAL {
		requireUpstream(t, "WGALLOWEDIP_A_FLAGS rejected with EINVAL")
		t.Skipf("the module rejects WGALLOWEDIP_A_FLAGS with EINVAL: it predates the attribute (WGALLOWEDIP_F_REMOVE_ME), nothing to test (%v)", err)
	}
	if err != nil {
		t.Fatalf("SET_DEVICE with WGALLOWEDIP_F_REMOVE_ME for an absent prefix: want success or EINVAL (attribute unknown), got %v", err)
	}
	assertPeerIPs(t, n.device(t, name), want(t, aIPs, bIPs), names)

	tests := []struct {
		name      string
		attrs     []byte
		wantErr   unix.Errno
		wantA     []string
		wantB     []string
		rationale string
	}{
		{
			name:      "REMOVE_ME removes exactly that prefix from its owner",
			attrs:     under(a, removeIP4("10.1.0.0", 24), removeIP6("fd00:2::", 64)),
			wantA:     []string{"10.2.0.0/24", "fd00:1::/64"},
			wantB:     bIPs,
			rationale: "A loses 10.1.0.0/24 and fd00:2::/64 and nothing else",
		},
		{
			name:      "REMOVE_ME and an addition in one peer",
			attrs:     under(a, aAllowedIP(unix.AF_INET, v4("10.4.0.0"), 24), removeIP4("10.2.0.0", 24)),
			wantA:     []string{"10.1.0.0/24", "10.4.0.0/24", "fd00:1::/64", "fd00:2::/64"},
			wantB:     bIPs,
			rationale: "10.4.0.0/24 is added, 10.2.0.0/24 removed",
		},
		{
			name:      "REMOVE_ME under A of a prefix B owns leaves it with B",
			attrs:     under(a, removeIP4("10.3.0.0", 24), removeIP6("fd00:3::", 64)),
			wantA:     aIPs,
			wantB:     bIPs,
			rationale: "only the owner's prefixes are removed",
		},
		{
			name: "REMOVE_ME of a prefix that does not exist is a no-op",
			attrs: under(a,
				removeIP4("10.9.0.0", 24),
				removeIP4("10.1.0.0", 16), // covers A's 10.1.0.0/24
				removeIP4("10.1.0.0", 25), // inside A's 10.1.0.0/24
				removeIP6("fd00:9::", 64),
				removeIP6("fd00:1::", 48)),
			wantA:     aIPs,
			wantB:     bIPs,
			rationale: "removal matches the exact prefix, not a covering or covered one",
		},
		{
			name:      "unknown flag bit 2 on a new prefix",
			attrs:     under(a, aAllowedIPFlags(unix.AF_INET, v4("10.7.0.0"), 24, 2)),
			wantErr:   errUnknownFlags,
			wantA:     aIPs,
			wantB:     bIPs,
			rationale: "the prefix must not be added",
		},
		{
			name:      "unknown flag bit 2 with REMOVE_ME",
			attrs:     under(a, aAllowedIPFlags(unix.AF_INET, v4("10.1.0.0"), 24, allowedIPFRemoveMe|2)),
			wantErr:   errUnknownFlags,
			wantA:     aIPs,
			wantB:     bIPs,
			rationale: "the prefix must not be removed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reset(t)
			err := g.set(tc.attrs)
			if got := errnoOf(err); !errnoMatches(got, tc.wantErr) || (tc.wantErr == 0 && err != nil) {
				t.Errorf("SET_DEVICE: want %s, got %s (%v)", errnoName(tc.wantErr), errnoName(got), err)
			}
			d := n.device(t, name)
			if diff := diffPeerIPs(want(t, tc.wantA, tc.wantB), peerIPsOf(d), names, 10); len(diff) > 0 {
				t.Errorf("peers after the request (%s):\n  %s", tc.rationale, strings.Join(diff, "\n  "))
			}
		})
	}
}
