package vmtest

import (
	"fmt"
	"net"
	"net/netip"
)

// A DgramNIC is a virtio-net NIC whose Ethernet frames travel as UDP
// datagrams between two host addresses (QEMU's dgram netdev): two VMs
// whose NICs name each other's Local as Remote share a link.
type DgramNIC struct {
	// ID names the netdev (default "n0").
	ID string
	// MAC is the guest NIC's address, e.g. 52:54:00:77:00:01.
	MAC string
	// Local is where this QEMU receives frames; Remote where it sends
	// them (the other QEMU's Local).
	Local, Remote netip.AddrPort
}

// Args returns the -device and -netdev arguments for the NIC.
func (n DgramNIC) Args() ([]string, error) {
	id := n.ID
	if id == "" {
		id = "n0"
	}
	if _, err := net.ParseMAC(n.MAC); err != nil {
		return nil, fmt.Errorf("vmtest: NIC %s: MAC %q: %v", id, n.MAC, err)
	}
	for _, a := range []netip.AddrPort{n.Local, n.Remote} {
		if !a.IsValid() || a.Port() == 0 || !a.Addr().Is4() {
			return nil, fmt.Errorf("vmtest: NIC %s: %q is not an IPv4 address and port", id, a)
		}
	}
	return []string{
		"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s", id, n.MAC),
		"-netdev", fmt.Sprintf("dgram,id=%s,local.type=inet,local.host=%s,local.port=%d,remote.type=inet,remote.host=%s,remote.port=%d",
			id, n.Local.Addr(), n.Local.Port(), n.Remote.Addr(), n.Remote.Port()),
	}, nil
}

// WithDgramNIC adds a virtio-net NIC on a dgram netdev.
func WithDgramNIC(n DgramNIC) Option {
	return func(c *Config) error {
		args, err := n.Args()
		if err != nil {
			return err
		}
		c.ExtraArgs = append(c.ExtraArgs, args...)
		return nil
	}
}
