package guest

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	vnl "github.com/vishvananda/netlink"
	"github.com/wgkit/wgkit/initramfs/manifest"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// How inconsistency is reported: the kernel sets NLM_F_DUMP_INTR on a dump
// message (and on NLMSG_DONE) when the device changed between parts of a
// dump. mdlayher/netlink passes header flags through on each message but
// drops the NLMSG_DONE message, and wgctrl's Device() ignores the flag
// altogether, so these tests read the dump from a raw socket, one datagram
// at a time, and look at every header.

const (
	dumpRcvbuf   = 4096 // small, so the kernel produces the dump in parts
	dumpDeadline = 2 * time.Minute
	// abandonedPeers is the size of the device in TestDumpAbandoned.
	abandonedPeers = 200
	// outlivingPeers is the size of the device in TestDumpOutlivesDevice:
	// its dump is still in parts after the first one (later parts are as
	// large as the reader's buffer, 32 KiB), and 400 lifetime messages fit
	// in the kernel's log.
	outlivingPeers = 200
)

// startDump starts a GET_DEVICE dump of a device with many peers on a raw
// socket and reads the first datagram, which must not end the dump.
func startDump(t *testing.T, n *testNS, name string) (*rawGenl, *dumpReader) {
	t.Helper()
	g := n.genl(t)
	r := n.rawGenlSocket(t, dumpRcvbuf)
	if err := r.sendDump(g.fam.ID, name); err != nil {
		t.Fatalf("send dump request: %v", err)
	}
	dr := newDumpReader()
	msgs, err := r.recv(30 * time.Second)
	if err != nil {
		t.Fatalf("first dump datagram: %v", err)
	}
	if err := dr.add(msgs); err != nil {
		t.Fatal(err)
	}
	if dr.finished() {
		t.Fatalf("the dump ended in its first datagram (%d messages, %d peers, error %v); cannot test a dump in progress",
			dr.messages, len(dr.peers), dr.err)
	}
	return r, dr
}

func describeEnd(dr *dumpReader) string {
	var s []string
	if dr.done {
		s = append(s, "NLMSG_DONE")
	}
	if dr.err != nil {
		s = append(s, "error "+errnoName(errnoOf(dr.err)))
	}
	if dr.intr {
		s = append(s, "NLM_F_DUMP_INTR")
	}
	return strings.Join(s, ", ")
}

// TestDumpDeleteDeviceMidDump deletes the device while a dump of it is in
// progress. The dump must end (cleanly, flagged interrupted, or with an
// error; never hang), the deletion must complete, and a dump that claims to
// be clean and complete must be the full configuration.
func TestDumpDeleteDeviceMidDump(t *testing.T) {
	loadTest(t)
	const name = "wg0"
	n := newTestNS(t)
	n.addWG(t, name)
	want := configureBig(t, n, name, scalePeers)
	r, dr := startDump(t, n, name)

	// Delete through a separate rtnetlink socket: upstream holds a
	// reference on the device for the dump, so the deletion may wait for
	// the dump to end.
	delErr := make(chan error, 1)
	go func() {
		h, err := vnl.NewHandleAt(n.ns, unix.NETLINK_ROUTE)
		if err != nil {
			delErr <- err
			return
		}
		defer h.Close()
		l, err := h.LinkByName(name)
		if err != nil {
			delErr <- err
			return
		}
		delErr <- h.LinkDel(l)
	}()
	deleted := false
	select {
	case err := <-delErr:
		deleted = true
		if err != nil {
			t.Fatalf("ip link del %s during the dump: %v", name, err)
		}
	case <-time.After(500 * time.Millisecond):
		// Still deleting; the dump must go on regardless.
	}

	if err := dr.readAll(r, time.Now().Add(scaled(dumpDeadline))); err != nil {
		t.Fatalf("dump after deleting the device: %v", err)
	}
	t.Logf("dump ended with %s after %d messages, %d peers; deletion finished before the rest was read: %v",
		describeEnd(dr), dr.messages, len(dr.peers), deleted)

	if !deleted {
		select {
		case err := <-delErr:
			if err != nil {
				t.Fatalf("ip link del %s: %v", name, err)
			}
		case <-time.After(scaled(60 * time.Second)):
			t.Fatalf("ip link del %s did not return within 60s after the dump ended", name)
		}
	}
	if n.hasLink(t, name) {
		t.Errorf("link %s still exists after deletion", name)
	}
	if dr.err == nil && !dr.intr {
		if diff := diffPeerIPs(want, dr.peerIPs(), nil, 5); len(diff) > 0 {
			t.Errorf("dump ended cleanly and was not flagged NLM_F_DUMP_INTR, but is not the full configuration:\n  %s",
				strings.Join(diff, "\n  "))
		}
	}
}

// TestDumpAbandoned closes the socket in the middle of a dump; the kernel
// must release the dump's hold on the device, so deleting it completes.
func TestDumpAbandoned(t *testing.T) {
	isolated(t)
	const name = "wg0"
	n := newTestNS(t)
	l := n.addWG(t, name)
	// Fewer peers suffice for a dump in parts, and each peer costs an RCU
	// grace period when the device is deleted.
	configureBig(t, n, name, abandonedPeers)
	r, _ := startDump(t, n, name)
	r.close()

	delErr := make(chan error, 1)
	go func() { delErr <- n.rtnl.LinkDel(l) }()
	select {
	case err := <-delErr:
		if err != nil {
			t.Fatalf("ip link del %s after abandoning a dump: %v", name, err)
		}
	case <-time.After(scaled(60 * time.Second)):
		t.Fatalf("ip link del %s did not return within 60s after a dump of it was abandoned: the dump still holds the device", name)
	}
	if n.hasLink(t, name) {
		t.Errorf("link %s still exists after deletion", name)
	}
}

// TestDumpConcurrentChange changes the peers between the parts of a dump
// (removing the peer the dump stopped at and one not yet dumped, adding
// peers, replacing a peer's allowed IPs). The dump must end, and unless it
// is flagged NLM_F_DUMP_INTR (or fails) it must equal one of the states
// the device was in.
func TestDumpConcurrentChange(t *testing.T) {
	loadTest(t)
	const name = "wg0"
	n := newTestNS(t)
	n.addWG(t, name)
	state0 := configureBig(t, n, name, scalePeers)
	r, dr := startDump(t, n, name)

	// Mutation 1, after the first datagram.
	cursor := dr.lastPeer
	late := peerKey(t.Name(), scalePeers-1)
	if cursor == late {
		t.Fatalf("the first datagram already reached the last peer")
	}
	var added []wgtypes.PeerConfig
	state1 := clonePeerIPs(state0)
	delete(state1, cursor)
	delete(state1, late)
	for i := range 5 {
		k := peerKey(t.Name()+"/added", i)
		ip := fmt.Sprintf("172.16.%d.0/24", i)
		added = append(added, wgtypes.PeerConfig{PublicKey: k, AllowedIPs: prefixes(t, ip)})
		state1[k] = []string{ip}
	}
	n.configure(t, name, wgtypes.Config{Peers: append([]wgtypes.PeerConfig{
		{PublicKey: cursor, Remove: true},
		{PublicKey: late, Remove: true},
	}, added...)})
	states := []peerIPs{state0, state1}

	// Mutation 2, after the next datagram if the dump is still going.
	msgs, err := r.recv(30 * time.Second)
	if err != nil {
		t.Fatalf("second dump datagram: %v", err)
	}
	if err := dr.add(msgs); err != nil {
		t.Fatal(err)
	}
	if !dr.finished() {
		k := peerKey(t.Name(), scalePeers-2)
		n.configure(t, name, wgtypes.Config{Peers: []wgtypes.PeerConfig{{
			PublicKey: k, ReplaceAllowedIPs: true, AllowedIPs: prefixes(t, "192.168.99.0/24"),
		}}})
		state2 := clonePeerIPs(state1)
		state2[k] = []string{"192.168.99.0/24"}
		states = append(states, state2)
	}

	if err := dr.readAll(r, time.Now().Add(scaled(dumpDeadline))); err != nil {
		t.Fatalf("dump with concurrent changes: %v", err)
	}
	t.Logf("dump ended with %s after %d messages, %d peers", describeEnd(dr), dr.messages, len(dr.peers))

	if dr.err == nil && !dr.intr {
		got := dr.peerIPs()
		var diffs [][]string
		for _, s := range states {
			d := diffPeerIPs(s, got, nil, 5)
			if len(d) == 0 {
				diffs = nil
				break
			}
			diffs = append(diffs, d)
		}
		if diffs != nil {
			t.Errorf("the device changed during the dump, which was neither flagged NLM_F_DUMP_INTR nor equal to any state the device was in; vs. the last state:\n  %s",
				strings.Join(diffs[len(diffs)-1], "\n  "))
		}
	}

	// The device itself is intact: a fresh read is the final state.
	assertPeerIPs(t, n.device(t, name), states[len(states)-1], nil)
}

func clonePeerIPs(m peerIPs) peerIPs {
	c := make(peerIPs, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// The dynamic debug control file, where debugfs is mounted, and where it is
// not (5.8 and later).
var dyndbgControls = []string{"/sys/kernel/debug/dynamic_debug/control", "/proc/dynamic_debug/control"}

// enableLifetimeMessages turns on the module's pr_debug messages (a peer's
// "wgN: Peer N created" and "... destroyed") until the test ends.
func enableLifetimeMessages(t *testing.T) {
	t.Helper()
	for _, c := range dyndbgControls {
		f, err := os.OpenFile(c, os.O_WRONLY, 0)
		if err != nil {
			continue
		}
		_, err = f.WriteString("module wireguard +p\n")
		f.Close()
		if err != nil {
			t.Fatalf("enabling the module's debug messages in %s: %v", c, err)
		}
		t.Cleanup(func() {
			if err := os.WriteFile(c, []byte("module wireguard -p\n"), 0); err != nil {
				t.Errorf("disabling the module's debug messages in %s: %v", c, err)
			}
		})
		return
	}
	t.Skipf("no dynamic debug control (%s): the kernel was built without CONFIG_DYNAMIC_DEBUG", strings.Join(dyndbgControls, ", "))
}

// peerLifetimeRE matches a peer's lifetime message: ours and upstream's
// (which adds the endpoint before "destroyed").
var peerLifetimeRE = regexp.MustCompile(`\b(wg[0-9]+): Peer ([0-9]+)\b.*\b(created|destroyed)$`)

// unmatchedPeers lists the peers whose "created" message since seq has no
// "destroyed" message for the same device name, as netns.sh's leak check
// pairs them, and counts the peers created.
func unmatchedPeers(t *testing.T, seq uint64) (unmatched []string, created int) {
	t.Helper()
	recs, err := readKmsg()
	if err != nil {
		t.Fatalf("reading /dev/kmsg: %v", err)
	}
	alive := map[string]bool{}
	var order []string
	for _, r := range recs {
		if r.seq < seq {
			continue
		}
		m := peerLifetimeRE.FindStringSubmatch(r.text)
		if m == nil {
			continue
		}
		id := m[1] + ": Peer " + m[2]
		if m[3] == "created" {
			alive[id] = true
			order = append(order, id)
			created++
		} else {
			delete(alive, id)
		}
	}
	for _, id := range order {
		if alive[id] {
			unmatched = append(unmatched, id)
		}
	}
	return unmatched, created
}

// TestDumpOutlivesDevice deletes a device while a dump of it is paused
// between two parts, and only then ends the dump by closing its socket. Any
// state the dump kept between the parts must not outlive the device in a
// way that touches it afterwards: every peer's "destroyed" message names
// the device it was created on (read from freed memory, it would name
// something else, and KASAN, on the debug kernels, reports the read).
func TestDumpOutlivesDevice(t *testing.T) {
	const name = "wg0"
	enableLifetimeMessages(t)
	n := newTestNS(t)
	l := n.addWG(t, name)
	seq := kmsgSeq(t)
	configureBig(t, n, name, outlivingPeers)
	r, _ := startDump(t, n, name)

	// Ours lets the deletion finish while the dump is paused, which is
	// what the test is about. Upstream holds the device until the dump
	// ends, so its deletion waits for the close below (briefly: after 10s
	// the kernel warns of a device that does not become free).
	upstream := os.Getenv(manifest.ModuleEnv) == manifest.ModuleUpstream
	wait := scaled(60 * time.Second)
	if upstream {
		wait = scaled(time.Second)
	}
	delErr := make(chan error, 1)
	go func() { delErr <- n.rtnl.LinkDel(l) }()
	deleted := false
	select {
	case err := <-delErr:
		if err != nil {
			t.Fatalf("ip link del %s during the dump: %v", name, err)
		}
		deleted = true
	case <-time.After(wait):
		if !upstream {
			t.Fatalf("ip link del %s did not return within %v while a dump of it was paused: the dump holds the device", name, wait)
		}
	}
	if deleted {
		// The device's memory goes after an RCU grace period and the
		// netdev work; then the dump ends.
		time.Sleep(scaled(time.Second))
	}
	r.close()
	if !deleted {
		select {
		case err := <-delErr:
			if err != nil {
				t.Fatalf("ip link del %s after closing the dump: %v", name, err)
			}
		case <-time.After(scaled(60 * time.Second)):
			t.Fatalf("ip link del %s did not return within 60s after the dump's socket was closed", name)
		}
	}
	t.Logf("deletion finished while the dump was paused: %v", deleted)

	// The socket's release may end the dump from a work item.
	deadline := time.Now().Add(scaled(30 * time.Second))
	for {
		unmatched, created := unmatchedPeers(t, seq)
		if created < outlivingPeers {
			t.Fatalf("%d \"%s: Peer N created\" messages in the kernel log, want at least %d: are the module's debug messages on?", created, name, outlivingPeers)
		}
		if len(unmatched) == 0 {
			t.Logf("%d peers created, each destroyed under its device's name", created)
			return
		}
		if time.Now().After(deadline) {
			if len(unmatched) > 5 {
				unmatched = append(unmatched[:5], fmt.Sprintf("and %d more", len(unmatched)-5))
			}
			t.Fatalf("%d peers have no \"destroyed\" message under the name they were created on, 30s after the dump ended: %s",
				len(unmatched), strings.Join(unmatched, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
