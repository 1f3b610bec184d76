package guest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestLinkProperties creates devices in several fresh namespaces (the same
// name in each) and checks what rtnetlink reports for a new device.
func TestLinkProperties(t *testing.T) {
	isolated(t)
	const name = "wg0"
	nss := []*testNS{newTestNS(t), newTestNS(t), newTestNS(t)}
	for i, n := range nss {
		l := n.addWG(t, name)
		li := n.linkInfo(t, l.Attrs().Index)
		checks := []struct {
			what      string
			ok        bool
			want, got any
		}{
			{"kind", li.kind == linkKind, linkKind, li.kind},
			{"name", li.name == name, name, li.name},
			{"MTU", li.mtu == defaultMTU, defaultMTU, li.mtu},
			{"type (ARPHRD)", li.typ == arphrdNone, arphrdNone, li.typ},
			{"IFF_POINTOPOINT", li.flags&unix.IFF_POINTOPOINT != 0, "set", li.flags},
			{"IFF_NOARP", li.flags&unix.IFF_NOARP != 0, "set", li.flags},
			{"IFF_UP (new link is down)", li.flags&unix.IFF_UP == 0, "clear", li.flags},
		}
		for _, c := range checks {
			if !c.ok {
				t.Errorf("netns %d: %s of %s: want %v, got %#v", i, c.what, name, c.want, c.got)
			}
		}
	}

	// Each namespace's device is its own: configure different ports and
	// read every one back through that namespace's client.
	for i, n := range nss {
		n.configure(t, name, wgtypes.Config{ListenPort: ptr(41000 + i)})
	}
	for i, n := range nss {
		if got := n.device(t, name).ListenPort; got != 41000+i {
			t.Errorf("netns %d: listen port of %s: want %d, got %d (devices in different namespaces are not independent)", i, name, 41000+i, got)
		}
	}
}

// TestLinkNamespaceIsolation checks that a device is reachable through
// wgctrl only from the namespace it lives in.
func TestLinkNamespaceIsolation(t *testing.T) {
	isolated(t)
	const name = "wgvm-iso0"
	a, b := newTestNS(t), newTestNS(t)
	a.addWG(t, name)
	priv := newPrivateKey(t)
	a.configure(t, name, wgtypes.Config{PrivateKey: &priv})

	if got := a.device(t, name).PublicKey; got != priv.PublicKey() {
		t.Errorf("client in the device's netns: public key want %s, got %s", priv.PublicKey(), got)
	}

	initClient, err := wgctrl.New()
	if err != nil {
		t.Fatalf("wgctrl client in the initial netns: %v", err)
	}
	defer initClient.Close()

	for _, c := range []struct {
		where  string
		client *wgctrl.Client
	}{
		{"initial netns", initClient},
		{"another new netns", b.wg},
	} {
		if _, err := c.client.Device(name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("wgctrl client in the %s: Device(%s) want os.ErrNotExist (the device lives elsewhere), got %v", c.where, name, err)
		}
		err := c.client.ConfigureDevice(name, wgtypes.Config{ListenPort: ptr(1)})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("wgctrl client in the %s: ConfigureDevice(%s) want os.ErrNotExist, got %v", c.where, name, err)
		}
	}
}

// TestLinkDelete deletes a configured device and checks that both
// rtnetlink and the WireGuard API forget it and that its port is released.
func TestLinkDelete(t *testing.T) {
	isolated(t)
	const name, port = "wg0", 42001
	n := newTestNS(t)
	l := n.addWG(t, name)
	n.configure(t, name, wgtypes.Config{
		ListenPort: ptr(port),
		Peers: []wgtypes.PeerConfig{{
			PublicKey:  peerKey(t.Name(), 0),
			AllowedIPs: prefixes(t, "10.0.0.0/24"),
		}},
	})
	n.up(t, name)
	if !n.portBusy(t, port) {
		t.Fatalf("UDP port %d should be bound by the running device before deletion", port)
	}

	if err := n.rtnl.LinkDel(l); err != nil {
		t.Fatalf("ip link del %s: %v", name, err)
	}
	if n.hasLink(t, name) {
		t.Errorf("link %s still exists after deletion", name)
	}
	if _, err := n.wg.Device(name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("wgctrl Device(%s) after deletion: want os.ErrNotExist, got %v", name, err)
	}
	if n.portBusy(t, port) {
		t.Errorf("UDP port %d still bound after the device was deleted", port)
	}
}

// TestLinkNamespaceDeletion destroys a namespace that holds a running
// device. The device was created in another namespace (its UDP socket lives
// there, as upstream documents), so the socket being released is the
// observable sign that the device was destroyed along with its namespace.
func TestLinkNamespaceDeletion(t *testing.T) {
	isolated(t)
	const name, port = "wgvm-nsdel0", 42002
	creator := newTestNS(t)
	l := creator.addWG(t, name)
	creator.configure(t, name, wgtypes.Config{
		ListenPort: ptr(port),
		Peers: []wgtypes.PeerConfig{{
			PublicKey:  peerKey(t.Name(), 0),
			AllowedIPs: prefixes(t, "10.0.0.0/24", "fd00::/64"),
		}},
	})

	victim, err := newNetns()
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	victimOpen := true
	defer func() {
		if victimOpen {
			victim.Close()
		}
	}()
	if err := creator.rtnl.LinkSetNsFd(l, int(victim)); err != nil {
		t.Fatalf("ip link set %s netns <new>: %v", name, err)
	}
	// Bring it up through a short-lived handle, so that nothing but victim
	// holds the namespace afterwards.
	if err := setUpIn(victim, name); err != nil {
		t.Fatalf("bring %s up in its new namespace: %v", name, err)
	}
	if !creator.portBusy(t, port) {
		t.Fatalf("UDP port %d should be bound in the creating namespace while the device runs", port)
	}
	// A second device created inside the doomed namespace itself, running
	// with peers, exercises teardown of a device whose socket dies with it.
	if err := addRunningDeviceIn(victim, "wgvm-local0", peerKey(t.Name(), 1)); err != nil {
		t.Fatalf("set up a device inside the namespace to delete: %v", err)
	}

	victim.Close()
	victimOpen = false

	// Namespace teardown runs asynchronously in the kernel; it must finish
	// (no hang) and take the device, and with it the socket, away.
	deadline := time.Now().Add(scaled(60 * time.Second))
	for creator.portBusy(t, port) {
		if time.Now().After(deadline) {
			t.Fatalf("UDP port %d still bound 60s after the device's namespace was closed: the device was not destroyed", port)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if creator.hasLink(t, name) {
		t.Errorf("link %s came back to the creating namespace; it should have been destroyed", name)
	}
}

// TestLinkMoveNamespace moves a configured device to another namespace
// (ip link set netns) and checks that it keeps its configuration, stays
// configurable there, and that its socket stays in the creating namespace.
func TestLinkMoveNamespace(t *testing.T) {
	isolated(t)
	const name = "wgvm-move0"
	const port, port2 = 42003, 42004
	a, b := newTestNS(t), newTestNS(t)
	l := a.addWG(t, name)
	priv := newPrivateKey(t)
	peer := peerKey(t.Name(), 0)
	a.configure(t, name, wgtypes.Config{
		PrivateKey: &priv,
		ListenPort: ptr(port),
		Peers: []wgtypes.PeerConfig{{
			PublicKey:  peer,
			AllowedIPs: prefixes(t, "10.7.0.0/16"),
		}},
	})
	before := viewOf(a.device(t, name))

	if err := a.rtnl.LinkSetNsFd(l, int(b.ns)); err != nil {
		t.Fatalf("ip link set %s netns B: %v", name, err)
	}
	t.Cleanup(func() {
		if bl, err := b.rtnl.LinkByName(name); err == nil {
			_ = b.rtnl.LinkDel(bl)
		}
	})

	if a.hasLink(t, name) {
		t.Errorf("link %s still in namespace A after the move", name)
	}
	if _, err := a.wg.Device(name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("wgctrl in namespace A: Device(%s) after the move want os.ErrNotExist, got %v", name, err)
	}
	if !b.hasLink(t, name) {
		t.Fatalf("link %s not found in namespace B after the move", name)
	}
	if d := diffViews(before, viewOf(b.device(t, name)), 10); len(d) > 0 {
		t.Errorf("configuration changed by the move: %v", d)
	}

	// Configurable in B.
	peer2 := peerKey(t.Name(), 1)
	b.configure(t, name, wgtypes.Config{
		ListenPort: ptr(port2),
		Peers:      []wgtypes.PeerConfig{{PublicKey: peer2, AllowedIPs: prefixes(t, "10.8.0.0/16")}},
	})
	d := b.device(t, name)
	if d.ListenPort != port2 {
		t.Errorf("listen port set in namespace B: want %d, got %d", port2, d.ListenPort)
	}
	assertPeerIPs(t, d, peerIPs{
		peer:  {"10.7.0.0/16"},
		peer2: {"10.8.0.0/16"},
	}, nil)

	// Up in B: the UDP socket is opened in the creating namespace A.
	b.up(t, name)
	if !a.portBusy(t, port2) {
		t.Errorf("UDP port %d not bound in the creating namespace A after bringing the moved device up", port2)
	}
	if b.portBusy(t, port2) {
		t.Errorf("UDP port %d bound in namespace B; the device's socket belongs in the creating namespace A", port2)
	}
}

// setUpIn brings link name up in ns through a temporary rtnetlink handle.
func setUpIn(ns netns.NsHandle, name string) error {
	h, err := vnl.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("rtnetlink handle: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	return h.LinkSetUp(l)
}

// addRunningDeviceIn creates, configures and brings up a device in ns using
// short-lived handles, leaving nothing open in ns.
func addRunningDeviceIn(ns netns.NsHandle, name string, peer wgtypes.Key) error {
	h, err := vnl.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("rtnetlink handle: %w", err)
	}
	defer h.Close()
	if err := h.LinkAdd(&vnl.Wireguard{LinkAttrs: vnl.LinkAttrs{Name: name}}); err != nil {
		return fmt.Errorf("ip link add %s type wireguard: %w", name, err)
	}
	var c *wgctrl.Client
	if err := inNetns(ns, func() error {
		var err error
		c, err = wgctrl.New()
		return err
	}); err != nil {
		return fmt.Errorf("wgctrl client: %w", err)
	}
	defer c.Close()
	_, ipn, _ := net.ParseCIDR("10.9.0.0/16")
	if err := c.ConfigureDevice(name, wgtypes.Config{
		ListenPort: ptr(42005),
		Peers: []wgtypes.PeerConfig{{
			PublicKey:                   peer,
			Endpoint:                    &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 42006},
			PersistentKeepaliveInterval: ptr(time.Second),
			AllowedIPs:                  []net.IPNet{*ipn},
		}},
	}); err != nil {
		return fmt.Errorf("configure %s: %w", name, err)
	}
	return setUpIn(ns, name)
}
