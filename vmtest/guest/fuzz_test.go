package guest

// Malformed packets: seeded, structured mutations of the four message
// types and random bytes sent into a device's listen port, IPv4 and IPv6,
// while its peer keeps the tunnel in use. Every datagram must be dropped
// and counted by a reason; afterwards the tunnel works and the peer's
// endpoint has not moved to the fuzzer's address.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

const (
	fuzzSeedEnv    = manifest.FuzzSeedEnv    // the fuzzers' seed; random if unset
	fuzzPacketsEnv = manifest.FuzzPacketsEnv // datagrams TestFuzzPackets sends
	fuzzPackets    = 5000                    // its default (about a second under TCG); make test asks for 20000
)

// fuzzSeed returns WGVM_FUZZ_SEED or a new seed, and writes it to the
// kernel log too, so that a splat on the console follows the seed that
// caused it.
func fuzzSeed(t *testing.T, test string) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv(fuzzSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 0, 64); err != nil {
			t.Fatalf("%s=%q: want a number", fuzzSeedEnv, s)
		}
	}
	msg := fmt.Sprintf("wgkit: %s: seed %d", test, seed)
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(f, msg)
		f.Close()
	}
	t.Log(msg)
	return seed
}

func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// fuzzInput is what a mutator builds from: messages captured from a real
// handshake and session, and the target's public key for valid mac1s.
type fuzzInput struct {
	initiation, data []byte // A's, as B received them
	pub              [32]byte
	sender           uint32 // A's index in the initiation
	receiver         uint32 // B's index that A's data messages carry
}

type mutator struct {
	name string
	make func(r *rand.Rand, in *fuzzInput) []byte
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// withMAC1 fills in a valid mac1 (and a random mac2) of a handshake
// message, so that it gets past the first check.
func withMAC1(t *testing.T, msg []byte, pub [32]byte) []byte {
	copy(msg[len(msg)-32:], mac1(pub, msg[:len(msg)-32]))
	return msg
}

func fuzzMutators(t *testing.T) []mutator {
	header := func(typ byte, n int, r *rand.Rand) []byte {
		b := randBytes(r, n)
		b[0], b[1], b[2], b[3] = typ, 0, 0, 0
		return b
	}
	flip := func(r *rand.Rand, msg []byte) []byte {
		b := bytes.Clone(msg)
		i := r.IntN(len(b))
		b[i] ^= 1 << r.IntN(8)
		return b
	}
	return []mutator{
		{"random_bytes", func(r *rand.Rand, _ *fuzzInput) []byte { return randBytes(r, r.IntN(257)) }},
		{"empty_and_short", func(r *rand.Rand, _ *fuzzInput) []byte { return randBytes(r, r.IntN(4)) }},
		{"type_unknown", func(r *rand.Rand, _ *fuzzInput) []byte {
			b := randBytes(r, 32+r.IntN(200))
			binary.LittleEndian.PutUint32(b, 5+r.Uint32N(1<<20))
			return b
		}},
		{"reserved_set", func(r *rand.Rand, in *fuzzInput) []byte {
			b := bytes.Clone(in.initiation)
			if r.IntN(2) == 0 {
				b = bytes.Clone(in.data)
			}
			b[1+r.IntN(3)] |= byte(1 + r.IntN(255))
			return b
		}},
		{"type_right_length_random", func(r *rand.Rand, _ *fuzzInput) []byte {
			switch r.IntN(4) {
			case 0:
				return header(1, 148, r)
			case 1:
				return header(2, 92, r)
			case 2:
				return header(3, 64, r)
			default:
				return header(4, 32+16*r.IntN(90), r)
			}
		}},
		{"type_wrong_length", func(r *rand.Rand, _ *fuzzInput) []byte {
			lengths := map[byte]int{1: 148, 2: 92, 3: 64, 4: 32}
			typ := byte(1 + r.IntN(4))
			n := lengths[typ] + r.IntN(33) - 16
			if n == lengths[typ] {
				n++
			}
			if typ == 4 && n > 32 {
				n = 32 - 1 - r.IntN(28) // data: shorter than header and tag
			}
			return header(typ, n, r)
		}},
		{"initiation_bit_flipped", func(r *rand.Rand, in *fuzzInput) []byte { return flip(r, in.initiation) }},
		{"initiation_replayed", func(_ *rand.Rand, in *fuzzInput) []byte { return bytes.Clone(in.initiation) }},
		{"initiation_valid_mac1_bad_payload", func(r *rand.Rand, in *fuzzInput) []byte {
			return withMAC1(t, header(1, 148, r), in.pub)
		}},
		{"response_valid_mac1_our_index", func(r *rand.Rand, in *fuzzInput) []byte {
			b := header(2, 92, r)
			// Its receiver is A's index, under which B has no handshake.
			binary.LittleEndian.PutUint32(b[8:], in.sender)
			return withMAC1(t, b, in.pub)
		}},
		{"cookie_reply_random", func(r *rand.Rand, in *fuzzInput) []byte {
			b := header(3, 64, r)
			if r.IntN(2) == 0 {
				binary.LittleEndian.PutUint32(b[4:], in.receiver) // B's own live index
			}
			return b
		}},
		{"data_bit_flipped", func(r *rand.Rand, in *fuzzInput) []byte { return flip(r, in.data) }},
		{"data_replayed", func(_ *rand.Rand, in *fuzzInput) []byte { return bytes.Clone(in.data) }},
		{"data_live_index_random_counter", func(r *rand.Rand, in *fuzzInput) []byte {
			b := header(4, 32+16*r.IntN(90), r)
			binary.LittleEndian.PutUint32(b[4:], in.receiver)
			return b
		}},
		{"data_truncated_or_extended", func(r *rand.Rand, in *fuzzInput) []byte {
			if r.IntN(2) == 0 {
				return bytes.Clone(in.data[:16+r.IntN(len(in.data)-16)])
			}
			return append(bytes.Clone(in.data), randBytes(r, 1+r.IntN(64))...)
		}},
	}
}

// rxDropCounters are the device's ethtool counters of received messages
// that were dropped (or answered with a cookie instead of processed).
var rxDropCounters = []string{
	"rx_invalid_message", "rx_handshake_queue_full", "rx_bad_mac1", "rx_cookie_reply_sent",
	"rx_ratelimited", "rx_handshake_refused", "rx_unknown_session", "rx_queue_full",
	"rx_open_failed", "rx_replayed", "rx_bad_inner_packet", "rx_bad_source",
}

// softnetDropped sums the backlog drops of every CPU (/proc/net/softnet_stat,
// second column): datagrams the veth could not hand over under the flood.
func softnetDropped(t *testing.T) uint64 {
	t.Helper()
	f, err := os.Open("/proc/net/softnet_stat")
	if err != nil {
		t.Fatalf("softnet_stat: %v", err)
	}
	defer f.Close()
	var sum uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, err := strconv.ParseUint(fields[1], 16, 64)
		if err != nil {
			t.Fatalf("softnet_stat %q: %v", sc.Text(), err)
		}
		sum += v
	}
	return sum
}

// TestFuzzPackets sends WGVM_FUZZ_PACKETS datagrams (default 5,000) built
// by the mutators above into B's listen port from a socket of A's
// namespace, alternating IPv4 and IPv6, while A pings B through the
// tunnel. Each datagram must be counted by one drop reason of B's (or by
// the veth's backlog, when it overflows); afterwards the tunnel works and
// B's endpoint for A is still A's port. Reproduce a run with wgbuild vmtest
// --run 'TestFuzzPackets$' --fuzz-seed N (the seed is in the log and the
// kernel log).
func TestFuzzPackets(t *testing.T) {
	loadTest(t)
	seed := fuzzSeed(t, t.Name())
	count := envCount(t, fuzzPacketsEnv, fuzzPackets)
	tn := newTunnel(t, tunConfig{})
	ps := tn.b.packetSocket(t, tunVethB)
	tn.establish(t)
	in := &fuzzInput{pub: [32]byte(tn.b.key.PublicKey())}
	for deadline := time.Now().Add(tunWait); in.initiation == nil || in.data == nil; {
		f, err := ps.next(deadline)
		if err != nil {
			t.Fatalf("B did not see A's initiation and a data message on %s: %v", tunVethB, err)
		}
		_, udp, ok := udp4Of(f)
		if !ok || binary.BigEndian.Uint16(udp[2:4]) != tunPortB || len(udp) < 8+32 {
			continue
		}
		msg := udp[8:]
		switch {
		case msg[0] == 1 && len(msg) == 148 && in.initiation == nil:
			in.initiation = bytes.Clone(msg)
			in.sender = binary.LittleEndian.Uint32(msg[4:])
		case msg[0] == 4 && in.data == nil:
			in.data = bytes.Clone(msg)
			in.receiver = binary.LittleEndian.Uint32(msg[4:])
		}
	}
	hasCounters := len(ethtoolStats(t, tn.b.testNS, tunDev)) > 0
	if !hasCounters {
		requireUpstream(t, "no ethtool -S drop counters")
	}
	sumDrops := func() uint64 {
		if !hasCounters {
			return 0
		}
		st := ethtoolStats(t, tn.b.testNS, tunDev)
		var s uint64
		for _, c := range rxDropCounters {
			v, ok := st[c]
			if !ok {
				t.Fatalf("B's ethtool -S has no %s", c)
			}
			s += v
		}
		return s
	}
	// Resolve B's outer addresses first: datagrams that wait for a
	// neighbour entry may be discarded before they reach B.
	for _, dst := range []netip.Addr{tn.b.outer4, tn.b.outer6} {
		if err := tn.a.ping(dst); err != nil {
			t.Fatalf("A: ping B's outer address %v: %v", dst, err)
		}
	}
	endpointBefore := endpointOf(tn.b.peer(t))
	dropsBefore, lostBefore := sumDrops(), softnetDropped(t)

	fz4 := tn.a.udpSocket(t, netip.AddrPortFrom(tn.a.outer4, 0))
	fz6 := tn.a.udpSocket(t, netip.AddrPortFrom(tn.a.outer6, 0))
	muts := fuzzMutators(t)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	perMutator := make(map[string]int)
	pings, pingErrs := 0, 0
	start := time.Now()
	sent := 0
	for i := 0; i < count; i++ {
		m := muts[r.IntN(len(muts))]
		msg := m.make(r, in)
		c, dst := fz4, netip.AddrPortFrom(tn.b.outer4, tunPortB)
		if i%2 == 1 {
			c, dst = fz6, netip.AddrPortFrom(tn.b.outer6, tunPortB)
		}
		if _, err := c.WriteToUDPAddrPort(msg, dst); err != nil {
			t.Fatalf("datagram %d (%s, %d bytes) to %v: %v", i, m.name, len(msg), dst, err)
		}
		sent++
		perMutator[m.name]++
		if i%2000 == 1999 {
			pings++
			if err := tn.a.echo(tn.b.inner4, 56, tunWait); err != nil {
				pingErrs++
			}
		}
	}
	elapsed := time.Since(start)

	// The handshake worker may still be draining its queue.
	var drops, lost uint64
	for deadline, last, stable := time.Now().Add(time.Minute), uint64(0), time.Now(); ; {
		drops, lost = sumDrops()-dropsBefore, softnetDropped(t)-lostBefore
		if drops+lost >= uint64(sent) || !hasCounters {
			break
		}
		if drops+lost != last {
			last, stable = drops+lost, time.Now()
		}
		if time.Since(stable) > 3*time.Second || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var names []string
	for n := range perMutator {
		names = append(names, fmt.Sprintf("%s %d", n, perMutator[n]))
	}
	sort.Strings(names)
	t.Logf("seed %d: %d datagrams in %v (%s); counted as dropped %d, lost in the veth backlog %d; %d of %d pings during the run lost",
		seed, sent, elapsed.Round(time.Millisecond), strings.Join(names, ", "), drops, lost, pingErrs, pings)
	if hasCounters {
		// Each ping also passes B: a lost one may be counted too.
		if drops+lost < uint64(sent) || drops > uint64(sent+2*pings) {
			t.Errorf("B counted %d drops and the backlog %d for %d malformed datagrams: every one must be counted once (reasons: %s)",
				drops, lost, sent, strings.Join(rxDropCounters, " "))
		}
	}
	if err := tn.a.ping(tn.b.inner4); err != nil {
		t.Fatalf("ping from A to B after the fuzzing: %v (replay: wgbuild vmtest --run 'TestFuzzPackets$' --fuzz-seed %d --fuzz-packets %d)", err, seed, count)
	}
	if err := tn.b.ping(tn.a.inner6); err != nil {
		t.Fatalf("ping from B to A after the fuzzing: %v (replay: wgbuild vmtest --run 'TestFuzzPackets$' --fuzz-seed %d --fuzz-packets %d)", err, seed, count)
	}
	if got := endpointOf(tn.b.peer(t)); got != endpointBefore {
		t.Errorf("B's endpoint for A moved from %v to %v: a malformed datagram was taken as A's", endpointBefore, got)
	}
}
