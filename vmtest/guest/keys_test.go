package guest

import (
	"bytes"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// clamp returns k clamped as X25519 requires (RFC 7748): the three low bits
// cleared, the top bit cleared and the second-highest bit set.
func clamp(k wgtypes.Key) wgtypes.Key {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}

// unclampedKeys returns private keys that clamping changes in every place
// it can: all bits set, and a random key with the low bits and the top bit
// set and the second-highest bit cleared.
func unclampedKeys(t *testing.T) []namedKey {
	t.Helper()
	var ff, r wgtypes.Key
	for i := range ff {
		ff[i] = 0xff
	}
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	r[0] |= 7
	r[31] = (r[31] | 128) &^ 64
	return []namedKey{{"32x0xff", ff}, {"random unclamped", r}}
}

type namedKey struct {
	name string
	key  wgtypes.Key
}

// TestPrivateKeyClamping sets unclamped private keys, through wgctrl and
// through a hand-built SET_DEVICE, and checks that the device reports the
// clamped key and the public key X25519(clamped, basepoint).
func TestPrivateKeyClamping(t *testing.T) {
	isolated(t)
	const name = "wg0"
	n := newTestNS(t)
	n.addWG(t, name)
	g := n.genl(t)

	setters := []struct {
		name string
		set  func(t *testing.T, k wgtypes.Key)
	}{
		{"wgctrl", func(t *testing.T, k wgtypes.Key) {
			n.configure(t, name, wgtypes.Config{PrivateKey: &k})
		}},
		{"raw netlink", func(t *testing.T, k wgtypes.Key) {
			if err := g.set(cat(aIfname(name), nlattr(deviceAPrivateKey, 0, k[:]))); err != nil {
				t.Fatalf("SET_DEVICE with private key: %v", err)
			}
		}},
	}
	for _, s := range setters {
		for _, nk := range unclampedKeys(t) {
			k := nk.key
			t.Run(s.name+"/"+nk.name, func(t *testing.T) {
				want := clamp(k)
				if want == k {
					t.Fatalf("test key %s is already clamped", k)
				}
				pub, err := curve25519.X25519(want[:], curve25519.Basepoint)
				if err != nil {
					t.Fatalf("X25519(clamped key, basepoint): %v", err)
				}
				if pk := k.PublicKey(); !bytes.Equal(pub, pk[:]) {
					t.Fatalf("X25519 of the clamped key %x differs from wgtypes' PublicKey() of the original %s", pub, pk)
				}
				// Start from another key, so that a stale identity does
				// not pass for the new one.
				other := newPrivateKey(t)
				n.configure(t, name, wgtypes.Config{PrivateKey: &other})

				s.set(t, k)
				d := n.device(t, name)
				if d.PrivateKey != want {
					t.Errorf("private key: set %x, read back %x; want the clamped form %x", k[:], d.PrivateKey[:], want[:])
				}
				if !bytes.Equal(d.PublicKey[:], pub) {
					t.Errorf("public key: want X25519(clamped, basepoint) = %x, got %x", pub, d.PublicKey[:])
				}
				if d.PublicKey != k.PublicKey() {
					t.Errorf("public key: want wgtypes' PublicKey() of the original key %s, got %s", k.PublicKey(), d.PublicKey)
				}
			})
		}
	}
}
