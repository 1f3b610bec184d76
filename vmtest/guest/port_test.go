package guest

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// portOccupiers are the ways a UDP port can already be taken in a
// namespace when a wireguard device wants it.
var portOccupiers = []struct {
	name   string
	occupy func(t *testing.T, n *testNS, port int)
}{
	{"another wireguard device", func(t *testing.T, n *testNS, port int) {
		const other = "wgocc"
		n.addWG(t, other)
		n.configure(t, other, wgtypes.Config{ListenPort: ptr(port)})
		n.up(t, other)
	}},
	{"udp4 socket", func(t *testing.T, n *testNS, port int) { occupyUDP(t, n, "udp4", port) }},
	// Go sets IPV6_V6ONLY for "udp6": only the device's IPv6 socket clashes.
	{"udp6 socket", func(t *testing.T, n *testNS, port int) { occupyUDP(t, n, "udp6", port) }},
}

func occupyUDP(t *testing.T, n *testNS, network string, port int) {
	t.Helper()
	pc, err := n.listenUDP(network, port)
	if err != nil {
		t.Fatalf("bind %s port %d: %v", network, port, err)
	}
	t.Cleanup(func() { pc.Close() })
}

// TestListenPortConflictSet changes the port of a running device to one
// that is taken: EADDRINUSE, and the device keeps its old port and socket.
func TestListenPortConflictSet(t *testing.T) {
	isolated(t)
	const taken, own = 45001, 45002
	for _, occ := range portOccupiers {
		t.Run(occ.name, func(t *testing.T) {
			const name = "wg0"
			n := newTestNS(t)
			occ.occupy(t, n, taken)
			n.addWG(t, name)
			n.configure(t, name, wgtypes.Config{ListenPort: ptr(own)})
			n.up(t, name)

			err := n.wg.ConfigureDevice(name, wgtypes.Config{ListenPort: ptr(taken)})
			if !errors.Is(err, unix.EADDRINUSE) {
				t.Errorf("set listen port to taken %d: want EADDRINUSE, got %v", taken, err)
			}
			if got := n.device(t, name).ListenPort; got != own {
				t.Errorf("listen port after the failed change: want unchanged %d, got %d", own, got)
			}
			if !n.portBusy(t, own) {
				t.Errorf("the device no longer holds its port %d after the failed change", own)
			}
		})
	}
}

// TestListenPortConflictUp brings up a device whose configured port is
// taken: the link stays down and rtnetlink returns EADDRINUSE.
func TestListenPortConflictUp(t *testing.T) {
	isolated(t)
	const taken = 45003
	for _, occ := range portOccupiers {
		t.Run(occ.name, func(t *testing.T) {
			const name = "wg0"
			n := newTestNS(t)
			occ.occupy(t, n, taken)
			l := n.addWG(t, name)
			// While down the port is only recorded, so this succeeds.
			n.configure(t, name, wgtypes.Config{ListenPort: ptr(taken)})

			err := n.rtnl.LinkSetUp(l)
			if !errors.Is(err, unix.EADDRINUSE) {
				t.Errorf("ip link set %s up with taken port %d: want EADDRINUSE, got %v", name, taken, err)
			}
			if li := n.linkInfo(t, l.Attrs().Index); li.flags&unix.IFF_UP != 0 {
				t.Errorf("link %s is up although opening its socket failed", name)
			}
			if got := n.device(t, name).ListenPort; got != taken {
				t.Errorf("configured listen port after the failed up: want %d, got %d", taken, got)
			}

			// With a free port it comes up.
			const free = 45004
			n.configure(t, name, wgtypes.Config{ListenPort: ptr(free)})
			n.up(t, name)
			if !n.portBusy(t, free) {
				t.Errorf("port %d not bound after bringing %s up on it", free, name)
			}
		})
	}
}
