package guest

// Malformed configuration: seeded generic netlink messages to the
// wireguard family, built from the uapi's attribute tree with mutations at
// every level. A rejected WG_CMD_SET_DEVICE must leave the device exactly as
// it was (ours checks a whole message before it applies any of it); any
// reply at all must come back; the kernel must not splat.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

const (
	fuzzMessagesEnv = "WGVM_FUZZ_MESSAGES" // messages TestFuzzNetlink sends
	fuzzMessages    = 3000                 // its default
	fuzzNLDev       = "wgfz"
	fuzzNLMaxPeers  = 64 // beyond this, the device is reset to its start
)

// nlFuzzer builds messages; keys are mostly ones the device knows, so
// that mutations reach deep into the handling of existing peers.
type nlFuzzer struct {
	r     *rand.Rand
	keys  []wgtypes.Key
	dev   string
	index uint32
}

func (f *nlFuzzer) chance(n int) bool { return f.r.IntN(n) == 0 }

func (f *nlFuzzer) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(f.r.Uint32())
	}
	return b
}

// attr builds an attribute, sometimes with a lying length, a flag bit
// set, or a random type instead.
func (f *nlFuzzer) attr(typ uint16, payload []byte) []byte {
	hdr := 0
	switch f.r.IntN(40) {
	case 0:
		hdr = 4 + len(payload) + 1 + f.r.IntN(8) // longer than what follows
	case 1:
		hdr = f.r.IntN(4) // shorter than a header
	case 2:
		typ = uint16(f.r.IntN(32))
	case 3:
		typ |= 0x4000 // NLA_F_NET_BYTEORDER
	}
	return nlattr(typ, hdr, payload)
}

func (f *nlFuzzer) nest(typ uint16, children [][]byte) []byte {
	if !f.chance(10) {
		typ |= nlaFNested
	}
	return f.attr(typ, bytes.Join(children, nil))
}

// value is a payload of the right size most of the time, else of another.
func (f *nlFuzzer) value(right []byte) []byte {
	switch f.r.IntN(12) {
	case 0:
		return f.bytes(f.r.IntN(40))
	case 1:
		return right[:f.r.IntN(len(right)+1)]
	case 2:
		return append(right, f.bytes(1+f.r.IntN(8))...)
	}
	return right
}

func (f *nlFuzzer) key() []byte {
	if len(f.keys) > 0 && !f.chance(4) {
		k := f.keys[f.r.IntN(len(f.keys))]
		return k[:]
	}
	return f.bytes(32)
}

func (f *nlFuzzer) endpoint() []byte {
	port := uint16(f.r.IntN(65536))
	switch f.r.IntN(4) {
	case 0:
		return sockaddrIn(netip.AddrFrom4([4]byte{10, 9, byte(f.r.IntN(256)), byte(f.r.IntN(256))}), port)
	case 1:
		return sockaddrIn6(netip.AddrFrom16([16]byte(append([]byte{0xfd, 0x09}, f.bytes(14)...))), port)
	case 2:
		b := sockaddrIn(netip.AddrFrom4([4]byte{10, 9, 0, 1}), port)
		binary.NativeEndian.PutUint16(b, uint16(f.r.IntN(64))) // a random family
		return b
	}
	return f.bytes(f.r.IntN(40))
}

func (f *nlFuzzer) allowedIP() []byte {
	var kids [][]byte
	fam, addr := uint16(unix.AF_INET), f.bytes(4)
	if f.chance(2) {
		fam, addr = unix.AF_INET6, f.bytes(16)
	}
	if f.chance(15) {
		fam = uint16(f.r.IntN(64))
	}
	if !f.chance(15) {
		kids = append(kids, f.attr(allowedIPAFamily, f.value(u16(fam))))
	}
	if !f.chance(15) {
		kids = append(kids, f.attr(allowedIPAIPAddr, f.value(addr)))
	}
	if !f.chance(15) {
		kids = append(kids, f.attr(allowedIPACidrMask, f.value([]byte{byte(f.r.IntN(140))})))
	}
	if f.chance(6) {
		kids = append(kids, f.attr(allowedIPAFlags, f.value(u32(f.r.Uint32N(4)))))
	}
	return f.nest(0, kids)
}

func (f *nlFuzzer) peer() []byte {
	var kids [][]byte
	if !f.chance(10) {
		kids = append(kids, f.attr(peerAPublicKey, f.value(f.key())))
	}
	add := func(typ uint16, p func() []byte) {
		if f.chance(3) {
			kids = append(kids, f.attr(typ, p()))
		}
	}
	add(peerAPresharedKey, func() []byte { return f.value(f.bytes(32)) })
	add(peerAFlags, func() []byte { return f.value(u32(f.r.Uint32N(16))) })
	add(peerAEndpoint, f.endpoint)
	add(peerAKeepalive, func() []byte { return f.value(u16(uint16(f.r.IntN(70000)))) })
	add(peerAProtocolVersion, func() []byte { return f.value(u32(f.r.Uint32N(3))) })
	if f.chance(10) { // read-only attributes
		kids = append(kids, f.attr(uint16(peerALastHandshakeTime+f.r.IntN(3)), f.bytes(f.r.IntN(20))))
	}
	if f.chance(2) {
		var ips [][]byte
		for i := f.r.IntN(5); i > 0; i-- {
			ips = append(ips, f.allowedIP())
		}
		kids = append(kids, f.nest(peerAAllowedIPs, ips))
	}
	f.r.Shuffle(len(kids), func(i, j int) { kids[i], kids[j] = kids[j], kids[i] })
	return f.nest(0, kids)
}

// message returns a command, its flags and its attributes.
func (f *nlFuzzer) message() (uint8, netlink.HeaderFlags, []byte) {
	cmd := uint8(cmdSetDevice)
	switch f.r.IntN(10) {
	case 0:
		cmd = cmdGetDevice
	case 1:
		cmd = uint8(2 + f.r.IntN(254))
	}
	flags := netlink.Request | netlink.Acknowledge
	if cmd == cmdGetDevice && !f.chance(5) {
		flags |= netlink.Dump
	}
	var kids [][]byte
	switch f.r.IntN(12) {
	case 0:
		kids = append(kids, f.attr(deviceAIfindex, f.value(u32(f.index))))
	case 1:
		kids = append(kids, f.attr(deviceAIfname, f.value(cstring(fuzzNLDev+"x"))))
	case 2: // none
	default:
		kids = append(kids, f.attr(deviceAIfname, f.value(cstring(f.dev))))
	}
	add := func(typ uint16, p func() []byte) {
		if f.chance(5) {
			kids = append(kids, f.attr(typ, p()))
		}
	}
	add(deviceAPrivateKey, func() []byte { return f.value(f.bytes(32)) })
	add(deviceAPublicKey, func() []byte { return f.value(f.bytes(32)) })
	add(deviceAFlags, func() []byte { return f.value(u32(f.r.Uint32N(4))) })
	add(deviceAListenPort, func() []byte { return f.value(u16(uint16(40000 + f.r.IntN(100)))) })
	add(deviceAFwmark, func() []byte { return f.value(u32(f.r.Uint32())) })
	if f.chance(8) {
		kids = append(kids, f.attr(uint16(9+f.r.IntN(20)), f.bytes(f.r.IntN(16))))
	}
	if !f.chance(4) {
		var peers [][]byte
		for i := 1 + f.r.IntN(4); i > 0; i-- {
			peers = append(peers, f.peer())
		}
		kids = append(kids, f.nest(deviceAPeers, peers))
	}
	f.r.Shuffle(len(kids), func(i, j int) { kids[i], kids[j] = kids[j], kids[i] })
	if f.chance(30) {
		kids = append(kids, f.bytes(1+f.r.IntN(7))) // trailing garbage
	}
	return cmd, flags, bytes.Join(kids, nil)
}

// TestFuzzNetlink sends WGVM_FUZZ_MESSAGES (default 3,000) seeded messages
// to a device with a few peers. Each gets an answer within a second; after
// each rejected WG_CMD_SET_DEVICE the device must be unchanged (for our
// module: upstream applies the part of a message before a bad attribute).
// Reproduce a run with wgbuild vmtest --run 'TestFuzzNetlink$' --fuzz-seed N.
func TestFuzzNetlink(t *testing.T) {
	seed := fuzzSeed(t, t.Name())
	count := envCount(t, fuzzMessagesEnv, fuzzMessages)
	atomic := os.Getenv(manifest.ModuleEnv) != manifest.ModuleUpstream
	n := newTestNS(t)
	link := n.addWG(t, fuzzNLDev)
	g := n.genl(t)
	start, _ := bigConfig(t.Name(), 8, 3)
	priv := newPrivateKey(t)
	reset := func() {
		n.configure(t, fuzzNLDev, wgtypes.Config{PrivateKey: &priv, ListenPort: ptr(40000), ReplacePeers: true, Peers: start})
	}
	reset()
	f := &nlFuzzer{r: rand.New(rand.NewPCG(seed, ^seed)), dev: fuzzNLDev, index: uint32(link.Attrs().Index)}
	for _, p := range start {
		f.keys = append(f.keys, p.PublicKey)
	}
	replay := fmt.Sprintf("wgbuild vmtest --run 'TestFuzzNetlink$' --fuzz-seed %d --fuzz-messages %d", seed, count)
	before := viewOf(n.device(t, fuzzNLDev))
	results := map[string]int{}
	began := time.Now()
	for i := 0; i < count; i++ {
		cmd, flags, attrs := f.message()
		if err := g.c.SetDeadline(time.Now().Add(tunWait)); err != nil {
			t.Fatal(err)
		}
		_, err := g.c.Execute(genlMsg(cmd, attrs), g.fam.ID, flags)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("message %d (command %d, %d bytes of attributes %x): no answer within %v; replay: %s", i, cmd, len(attrs), attrs, tunWait, replay)
		}
		res := "ok"
		if err != nil {
			res = errnoName(errnoOf(err))
		}
		results[fmt.Sprintf("cmd %d %s", min(cmd, 2), res)]++
		if cmd != cmdSetDevice {
			continue
		}
		after := viewOf(n.device(t, fuzzNLDev))
		if err != nil && atomic {
			if d := diffViews(before, after, 5); len(d) > 0 {
				t.Fatalf("message %d (%v) was rejected but changed the device: %s\nattributes: %x\nreplay: %s", i, err, strings.Join(d, "; "), attrs, replay)
			}
		}
		if len(after.Peers) > fuzzNLMaxPeers {
			reset()
			after = viewOf(n.device(t, fuzzNLDev))
		}
		before = after
	}
	var lines []string
	for k, v := range results {
		lines = append(lines, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(lines)
	t.Logf("seed %d: %d messages in %v; %s", seed, count, time.Since(began).Round(time.Millisecond), strings.Join(lines, ", "))
	// Still a working device: a valid SET is applied.
	reset()
	if d := n.device(t, fuzzNLDev); len(d.Peers) != len(start) || d.PrivateKey != priv {
		t.Errorf("after the fuzzing, a valid configuration gives %d peers (want %d) and private key match %v", len(d.Peers), len(start), d.PrivateKey == priv)
	}
}
