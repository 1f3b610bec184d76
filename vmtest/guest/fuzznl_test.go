package guest

// Malformed configuration: seeded generic netlink messages to the
// wireguard family, built from the uapi's attribute tree with mutations at
// every level. A rejected WG_CMD_SET_DEVICE must leave the device exactly as
// it was (ours checks a whole message before it applies any of it); any
// reply at all must come back; the kernel must not splat.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

const (
	fuzzMessagesEnv = manifest.FuzzMessagesEnv // messages TestFuzzNetlink sends
	fuzzMessages    = 1000                     // its default; make test asks for 3000
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

// nlFuzzRun is one netlink fuzzing campaign against one device.
type nlFuzzRun struct {
	g     *genlClient
	wg    *wgctrl.Client
	dev   string
	index uint32
	seed  uint64
	count int
	// atomic: a rejected SET must change nothing (ours; upstream applies
	// the part of a message before a bad attribute).
	atomic bool
	// denied: the sender has no privilege over the device; nothing may
	// succeed and nothing may change.
	denied bool
	// replay is the command that replays the run, for failure messages.
	replay string
}

// nlFuzzStart is the configuration a campaign starts from and returns to.
func nlFuzzStart(test string, priv wgtypes.Key) wgtypes.Config {
	start, _ := bigConfig(test, 8, 3)
	return wgtypes.Config{PrivateKey: &priv, ListenPort: ptr(40000), ReplacePeers: true, Peers: start}
}

// run sends the messages and checks each outcome; it returns a summary of
// the outcomes by command and errno, or the first failure. Unless denied,
// the device is reset to start whenever it grows too large, and at the end
// a valid configuration must still apply.
func (r *nlFuzzRun) run(start wgtypes.Config) (string, error) {
	device := func() (deviceView, error) {
		if r.denied {
			return deviceView{}, nil // the sender may not read it either
		}
		d, err := r.wg.Device(r.dev)
		if err != nil {
			return deviceView{}, fmt.Errorf("reading %s: %w", r.dev, err)
		}
		return viewOf(d), nil
	}
	f := &nlFuzzer{r: rand.New(rand.NewPCG(r.seed, ^r.seed)), dev: r.dev, index: r.index}
	for _, p := range start.Peers {
		f.keys = append(f.keys, p.PublicKey)
	}
	before, err := device()
	if err != nil {
		return "", err
	}
	results := map[string]int{}
	began := time.Now()
	for i := 0; i < r.count; i++ {
		cmd, flags, attrs := f.message()
		if err := r.g.c.SetDeadline(time.Now().Add(tunWait)); err != nil {
			return "", err
		}
		_, err := r.g.c.Execute(genlMsg(cmd, attrs), r.g.fam.ID, flags)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "", fmt.Errorf("message %d (command %d, %d bytes of attributes %x): no answer within %v; replay: %s", i, cmd, len(attrs), attrs, tunWait, r.replay)
		}
		res := "ok"
		if err != nil {
			res = errnoName(errnoOf(err))
		}
		results[fmt.Sprintf("cmd %d %s", min(cmd, 2), res)]++
		if r.denied && err == nil {
			return "", fmt.Errorf("message %d (command %d, flags %v) succeeded without privilege over the device\nattributes: %x\nreplay: %s", i, cmd, flags, attrs, r.replay)
		}
		if cmd != cmdSetDevice || r.denied {
			continue
		}
		after, derr := device()
		if derr != nil {
			return "", derr
		}
		if err != nil && r.atomic {
			if d := diffViews(before, after, 5); len(d) > 0 {
				return "", fmt.Errorf("message %d (%v) was rejected but changed the device: %s\nattributes: %x\nreplay: %s", i, err, strings.Join(d, "; "), attrs, r.replay)
			}
		}
		if len(after.Peers) > fuzzNLMaxPeers {
			if err := r.wg.ConfigureDevice(r.dev, start); err != nil {
				return "", fmt.Errorf("resetting %s: %w", r.dev, err)
			}
			if after, err = device(); err != nil {
				return "", err
			}
		}
		before = after
	}
	var lines []string
	for k, v := range results {
		lines = append(lines, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(lines)
	summary := fmt.Sprintf("seed %d: %d messages in %v; %s", r.seed, r.count, time.Since(began).Round(time.Millisecond), strings.Join(lines, ", "))
	if r.denied {
		return summary, nil
	}
	// Still a working device: a valid SET is applied.
	if err := r.wg.ConfigureDevice(r.dev, start); err != nil {
		return summary, fmt.Errorf("after the fuzzing, a valid configuration was refused: %w", err)
	}
	d, err := r.wg.Device(r.dev)
	if err != nil {
		return summary, err
	}
	if len(d.Peers) != len(start.Peers) || d.PrivateKey != *start.PrivateKey {
		return summary, fmt.Errorf("after the fuzzing, a valid configuration gives %d peers (want %d) and private key match %v", len(d.Peers), len(start.Peers), d.PrivateKey == *start.PrivateKey)
	}
	return summary, nil
}

// TestFuzzNetlink sends WGVM_FUZZ_MESSAGES (default 1,000) seeded messages
// to a device with a few peers. Each gets an answer within a second; after
// each rejected WG_CMD_SET_DEVICE the device must be unchanged (for our
// module: upstream applies the part of a message before a bad attribute).
// Reproduce a run with wgbuild vmtest --run 'TestFuzzNetlink$' --fuzz-seed N.
func TestFuzzNetlink(t *testing.T) {
	loadTest(t)
	seed := fuzzSeed(t, t.Name())
	count := envCount(t, fuzzMessagesEnv, fuzzMessages)
	n := newTestNS(t)
	link := n.addWG(t, fuzzNLDev)
	start := nlFuzzStart(t.Name(), newPrivateKey(t))
	n.configure(t, fuzzNLDev, start)
	r := &nlFuzzRun{g: n.genl(t), wg: n.wg, dev: fuzzNLDev, index: uint32(link.Attrs().Index), seed: seed, count: count,
		atomic: os.Getenv(manifest.ModuleEnv) != manifest.ModuleUpstream,
		replay: fmt.Sprintf("wgbuild vmtest --run 'TestFuzzNetlink$' --fuzz-seed %d --fuzz-messages %d", seed, count)}
	summary, err := r.run(start)
	if summary != "" {
		t.Log(summary)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Helper modes of the unprivileged netlink fuzzing. Both read the
// campaign from the environment and report "fuzz.summary=..." and
// "fuzz=ok" or "fuzz=<the failure>" on stdout.
const (
	// helperFuzzDenied runs as nobody without capabilities in the
	// device's namespace: nothing it sends may succeed.
	helperFuzzDenied = "fuzz-denied"
	// helperFuzzUserns runs as root of its own user namespace (started by
	// helperUsernsOuter) and fuzzes a device it creates in its own
	// network namespace, with every check of TestFuzzNetlink.
	helperFuzzUserns = "fuzz-userns"

	fuzzHelperDevEnv   = "WGVM_FUZZ_DEVICE" // name of the device (denied mode)
	fuzzHelperIndexEnv = "WGVM_FUZZ_INDEX"  // its ifindex
	fuzzHelperTestEnv  = "WGVM_FUZZ_TEST"   // test name that keys the start configuration
)

// fuzzHelper is the code of both helper modes.
func fuzzHelper(mode string, w io.Writer) int {
	report := func(summary string, err error) int {
		if summary != "" {
			fmt.Fprintf(w, "fuzz.summary=%s\n", summary)
		}
		if err != nil {
			fmt.Fprintf(w, "fuzz=%s\n", strings.ReplaceAll(err.Error(), "\n", " | "))
		} else {
			fmt.Fprintln(w, "fuzz=ok")
		}
		return 0
	}
	seed, err := strconv.ParseUint(os.Getenv(fuzzSeedEnv), 0, 64)
	if err != nil {
		return report("", fmt.Errorf("%s: %w", fuzzSeedEnv, err))
	}
	count, err := strconv.Atoi(os.Getenv(fuzzMessagesEnv))
	if err != nil {
		return report("", fmt.Errorf("%s: %w", fuzzMessagesEnv, err))
	}
	c, err := genetlink.Dial(nil)
	if err != nil {
		return report("", err)
	}
	defer c.Close()
	fam, err := c.GetFamily(genlName)
	if err != nil {
		return report("", err)
	}
	r := &nlFuzzRun{g: &genlClient{c: c, fam: fam}, seed: seed, count: count,
		replay: fmt.Sprintf("wgbuild vmtest --run 'TestFuzzNetlinkUnprivileged$' --fuzz-seed %d --fuzz-messages %d", seed, count)}
	start := nlFuzzStart(os.Getenv(fuzzHelperTestEnv), clamp(peerKey("fuzz-helper", 0)))
	if mode == helperFuzzDenied {
		r.denied, r.dev = true, os.Getenv(fuzzHelperDevEnv)
		idx, err := strconv.ParseUint(os.Getenv(fuzzHelperIndexEnv), 0, 32)
		if err != nil {
			return report("", fmt.Errorf("%s: %w", fuzzHelperIndexEnv, err))
		}
		r.index = uint32(idx)
		return report(r.run(start))
	}
	r.dev, r.atomic = fuzzNLDev, os.Getenv(manifest.ModuleEnv) != manifest.ModuleUpstream
	if err := vnl.LinkAdd(&vnl.Wireguard{LinkAttrs: vnl.LinkAttrs{Name: r.dev}}); err != nil {
		return report("", fmt.Errorf("ip link add %s type wireguard in the user namespace: %w", r.dev, err))
	}
	l, err := vnl.LinkByName(r.dev)
	if err != nil {
		return report("", err)
	}
	r.index = uint32(l.Attrs().Index)
	if r.wg, err = wgctrl.New(); err != nil {
		return report("", err)
	}
	defer r.wg.Close()
	if err := r.wg.ConfigureDevice(r.dev, start); err != nil {
		return report("", fmt.Errorf("configuring %s: %w", r.dev, err))
	}
	return report(r.run(start))
}

// fuzzUsernsHelper speaks the inner user namespace helper's protocol
// (ready, a go-ahead on stdin, the report, done, then wait for stdin to
// close) around the fuzzing.
func fuzzUsernsHelper(in io.Reader, w io.Writer) int {
	fmt.Fprintln(w, "ready")
	sc := bufio.NewScanner(in)
	if !sc.Scan() {
		return 0
	}
	fuzzHelper(helperFuzzUserns, w)
	fmt.Fprintln(w, "done")
	for sc.Scan() {
	}
	return 0
}

// TestFuzzNetlinkUnprivileged runs the netlink fuzzer without privilege
// over the device: as nobody without capabilities in the device's
// namespace, where every message must fail and the device must not change;
// and as root of a user namespace that an unprivileged user made, against
// a device in its own network namespace, where it has every check of
// TestFuzzNetlink (the attack surface of an unprivileged user). Each gets
// WGVM_FUZZ_MESSAGES messages (default 1,000).
func TestFuzzNetlinkUnprivileged(t *testing.T) {
	seed := fuzzSeed(t, t.Name())
	count := envCount(t, fuzzMessagesEnv, fuzzMessages)
	exe := worldExecutableCopy(t)
	name := t.Name() // keys the start configuration here and in the helpers
	env := []string{
		fmt.Sprintf("%s=%d", fuzzSeedEnv, seed),
		fmt.Sprintf("%s=%d", fuzzMessagesEnv, count),
		fuzzHelperTestEnv + "=" + name,
		manifest.ModuleEnv + "=" + os.Getenv(manifest.ModuleEnv),
	}

	t.Run("denied", func(t *testing.T) {
		n := newTestNS(t)
		link := n.addWG(t, fuzzNLDev)
		start := nlFuzzStart(name, newPrivateKey(t))
		n.configure(t, fuzzNLDev, start)
		before := viewOf(n.device(t, fuzzNLDev))
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(exe)
		cmd.Dir = "/"
		cmd.Env = append([]string{helperEnv + "=" + helperFuzzDenied, fuzzHelperDevEnv + "=" + fuzzNLDev,
			fmt.Sprintf("%s=%d", fuzzHelperIndexEnv, link.Attrs().Index)}, env...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
		if err := n.run(cmd); err != nil {
			t.Fatalf("run the helper: %v (stderr: %q)", err, stderr.String())
		}
		got := helperReport(&stdout)
		t.Logf("as nobody: %s", got["fuzz.summary"])
		if got["fuzz"] != "ok" {
			t.Errorf("as nobody: %s (stderr: %q)", got["fuzz"], stderr.String())
		}
		assertUnchanged(t, before, viewOf(n.device(t, fuzzNLDev)))
	})

	t.Run("userns", func(t *testing.T) {
		h := startUsernsHelper(t, exe, append([]string{usernsInnerModeEnv + "=" + helperFuzzUserns}, env...)...)
		// The debug kernel answers about 17 messages a second; go test's
		// own timeout bounds the run.
		h.wait = time.Minute + time.Duration(count)*100*time.Millisecond
		h.proceed(t)
		t.Logf("as root of a user namespace: %s", h.got["fuzz.summary"])
		if h.got["fuzz"] != "ok" {
			t.Errorf("as root of a user namespace: %s", h.got["fuzz"])
		}
	})
}

// helperReport parses a helper's key=value lines.
func helperReport(r io.Reader) map[string]string {
	got := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			got[k] = v
		}
	}
	return got
}
