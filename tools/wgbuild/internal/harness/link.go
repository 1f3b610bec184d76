package harness

import (
	"os"
	"path/filepath"

	"github.com/wgkit/wgkit/vmtest"
)

// link is the virtual wire between the (at most two) VMs of a plan that
// have a NIC: QEMU dgram netdevs on two unix sockets in a private
// directory, each QEMU binding its own and sending to the other's.
type link struct {
	dir   string
	names []string // the VMs on it
}

// newLink makes the link's directory when two VMs have NICs; a plan with
// none gets a nil link. /tmp, not the run directory: a unix socket path
// must be short.
func newLink(vms []VM) (*link, error) {
	var names []string
	for _, vm := range vms {
		if vm.MAC != "" {
			names = append(names, vm.Name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "wgvm-link-")
	if err != nil {
		return nil, err
	}
	return &link{dir: dir, names: names}, nil
}

func (l *link) sock(i int) string {
	return filepath.Join(l.dir, string(rune('a'+i))+".sock")
}

// nic is vm's end of the link. A lone NIC sends to a socket nobody
// binds: its frames are dropped, as on an unplugged cable.
func (l *link) nic(vm VM) vmtest.DgramNIC {
	me := 0
	for i, n := range l.names {
		if n == vm.Name {
			me = i
		}
	}
	return vmtest.DgramNIC{MAC: vm.MAC, Local: l.sock(me), Remote: l.sock(1 - me)}
}

func (l *link) close() {
	if l != nil {
		os.RemoveAll(l.dir)
	}
}
