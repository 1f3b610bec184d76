package vmtest

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
)

// A DgramNIC is a virtio-net NIC whose Ethernet frames travel as datagrams
// between two unix sockets (QEMU's dgram netdev): two VMs whose NICs name
// each other's Local as Remote share a link. The paths are chosen, not
// found, so two runs cannot race for them as for free UDP ports.
type DgramNIC struct {
	// ID names the netdev (default "n0").
	ID string
	// MAC is the guest NIC's address, e.g. 52:54:00:77:00:01.
	MAC string
	// Local is the socket this QEMU binds and receives frames on; Remote
	// the one it sends them to (the other QEMU's Local). Absolute paths,
	// shorter than a unix socket address allows (107 bytes).
	Local, Remote string
}

// maxSocketPath is the longest path a unix socket address holds.
const maxSocketPath = 107

// Args returns the -device and -netdev arguments for the NIC.
func (n DgramNIC) Args() ([]string, error) {
	id := n.ID
	if id == "" {
		id = "n0"
	}
	if _, err := net.ParseMAC(n.MAC); err != nil {
		return nil, fmt.Errorf("vmtest: NIC %s: MAC %q: %v", id, n.MAC, err)
	}
	for _, p := range []string{n.Local, n.Remote} {
		switch {
		case !filepath.IsAbs(p):
			return nil, fmt.Errorf("vmtest: NIC %s: socket %q is not an absolute path", id, p)
		case len(p) > maxSocketPath:
			return nil, fmt.Errorf("vmtest: NIC %s: socket path %s is longer than a unix socket address (%d bytes): use a shorter directory", id, p, maxSocketPath)
		case strings.Contains(p, ","):
			return nil, fmt.Errorf("vmtest: NIC %s: socket path %q has a comma, which QEMU's option syntax cannot carry", id, p)
		}
	}
	if n.Local == n.Remote {
		return nil, fmt.Errorf("vmtest: NIC %s: local and remote are both %s", id, n.Local)
	}
	return []string{
		"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s", id, n.MAC),
		"-netdev", fmt.Sprintf("dgram,id=%s,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s", id, n.Local, n.Remote),
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
