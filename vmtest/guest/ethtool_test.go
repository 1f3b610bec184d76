package guest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtool calls fn in namespace n with a function that issues one
// SIOCETHTOOL ioctl on dev; buf is the command's struct, cmd first.
func ethtool(n *testNS, dev string, fn func(ioctl func(buf []byte) error) error) error {
	return inNetns(n.ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return fn(func(buf []byte) error {
			var ifr [40]byte // struct ifreq: name, then a pointer
			copy(ifr[:unix.IFNAMSIZ], dev)
			*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(&buf[0]))
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
				return errno
			}
			return nil
		})
	})
}

// ethtoolStats reads a device's ethtool -S counters with the SIOCETHTOOL
// ioctl (ETHTOOL_GSSET_INFO, ETHTOOL_GSTRINGS, ETHTOOL_GSTATS), from inside
// namespace n.
func ethtoolStats(t *testing.T, n *testNS, dev string) map[string]uint64 {
	t.Helper()
	const (
		gstrings  = 0x1b
		gstats    = 0x1d
		gssetInfo = 0x37
		ssStats   = 1
		strLen    = 32
	)
	stats := map[string]uint64{}
	err := ethtool(n, dev, func(ioctl func([]byte) error) error {
		// struct ethtool_sset_info: cmd, reserved, sset_mask u64, data[]
		info := make([]byte, 16+4)
		binary.NativeEndian.PutUint32(info[0:], gssetInfo)
		binary.NativeEndian.PutUint64(info[8:], 1<<ssStats)
		if err := ioctl(info); err != nil {
			return fmt.Errorf("ETHTOOL_GSSET_INFO: %w", err)
		}
		count := int(binary.NativeEndian.Uint32(info[16:]))
		// struct ethtool_gstrings: cmd, string_set, len, data[]
		names := make([]byte, 12+count*strLen)
		binary.NativeEndian.PutUint32(names[0:], gstrings)
		binary.NativeEndian.PutUint32(names[4:], ssStats)
		binary.NativeEndian.PutUint32(names[8:], uint32(count))
		if err := ioctl(names); err != nil {
			return fmt.Errorf("ETHTOOL_GSTRINGS: %w", err)
		}
		// struct ethtool_stats: cmd, n_stats, data[] (u64)
		vals := make([]byte, 8+count*8)
		binary.NativeEndian.PutUint32(vals[0:], gstats)
		binary.NativeEndian.PutUint32(vals[4:], uint32(count))
		if err := ioctl(vals); err != nil {
			return fmt.Errorf("ETHTOOL_GSTATS: %w", err)
		}
		for i := range count {
			name := names[12+i*strLen : 12+(i+1)*strLen]
			name, _, _ = bytes.Cut(name, []byte{0})
			stats[string(name)] = binary.NativeEndian.Uint64(vals[8+i*8:])
		}
		return nil
	})
	if errors.Is(err, unix.EOPNOTSUPP) {
		return nil // a device without driver counters
	}
	if err != nil {
		t.Fatalf("ethtool -S %s: %v", dev, err)
	}
	return stats
}

// TestEthtoolCounters checks that drops are counted by reason in ethtool -S
// (the upstream module has no such counters, so this tests our driver
// only): a packet to an address no peer owns, garbage on the UDP port, a
// handshake message with a wrong mac1, and a data message for no session.
func TestEthtoolCounters(t *testing.T) {
	loadTest(t)
	p := newWggoPair(t)
	if len(ethtoolStats(t, p.n, wggoLink)) == 0 {
		requireUpstream(t, "no ethtool -S counters")
		t.Skip("the module has no ethtool -S counters (the upstream module)")
	}

	send := func(payload []byte) {
		t.Helper()
		err := inNetns(p.n.ns, func() error {
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), wggoKernelPort)))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write(payload)
			return err
		})
		if err != nil {
			t.Fatalf("sending to the device's port: %v", err)
		}
	}
	tests := []struct {
		counter string
		do      func()
	}{
		{"tx_no_peer", func() {
			c := p.kernelDialUDP(t, netip.AddrPortFrom(netip.MustParseAddr("10.99.0.77"), 9))
			_, _ = c.Write([]byte("nobody owns 10.99.0.77"))
		}},
		{"rx_invalid_message", func() { send([]byte("not a wireguard message")) }},
		{"rx_bad_mac1", func() {
			msg := make([]byte, 148)
			binary.LittleEndian.PutUint32(msg, 1)
			send(msg)
		}},
		{"rx_unknown_session", func() {
			msg := make([]byte, 32)
			binary.LittleEndian.PutUint32(msg, 4)
			binary.LittleEndian.PutUint32(msg[4:], 0xdeadbeef)
			send(msg)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.counter, func(t *testing.T) {
			before := ethtoolStats(t, p.n, wggoLink)
			if _, ok := before[tt.counter]; !ok {
				t.Fatalf("ethtool -S has no %s; it has %v", tt.counter, before)
			}
			tt.do()
			deadline := time.Now().Add(5 * time.Second)
			for {
				after := ethtoolStats(t, p.n, wggoLink)
				if after[tt.counter] > before[tt.counter] {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s stayed at %d", tt.counter, after[tt.counter])
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// An offload that ethtool -K toggles: its name there, and the legacy
// ETHTOOL_G* / ETHTOOL_S* commands (struct ethtool_value) that read and set
// it; the kernel maps each to its netdev feature bits.
type offload struct {
	name     string
	get, set uint32
}

var (
	offRx  = offload{"rx", 0x14, 0x15}  // rx-checksumming: NETIF_F_RXCSUM
	offTx  = offload{"tx", 0x16, 0x17}  // tx-checksumming: NETIF_F_CSUM_MASK
	offSG  = offload{"sg", 0x18, 0x19}  // scatter-gather: NETIF_F_SG
	offTSO = offload{"tso", 0x1e, 0x1f} // tcp-segmentation-offload: NETIF_F_ALL_TSO
	offGSO = offload{"gso", 0x23, 0x24} // generic-segmentation-offload: NETIF_F_GSO
	offGRO = offload{"gro", 0x2b, 0x2c} // generic-receive-offload: NETIF_F_GRO
)

// setOffload is ethtool -K dev name on|off, checked by reading it back.
func setOffload(t *testing.T, n *testNS, dev string, o offload, on bool) {
	t.Helper()
	val := func(cmd uint32, v bool) []byte {
		b := make([]byte, 8) // struct ethtool_value: cmd, data
		binary.NativeEndian.PutUint32(b, cmd)
		if v {
			binary.NativeEndian.PutUint32(b[4:], 1)
		}
		return b
	}
	var got bool
	err := ethtool(n, dev, func(ioctl func([]byte) error) error {
		if err := ioctl(val(o.set, on)); err != nil {
			return fmt.Errorf("set: %w", err)
		}
		b := val(o.get, false)
		if err := ioctl(b); err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		got = binary.NativeEndian.Uint32(b[4:]) != 0
		return nil
	})
	if err != nil {
		t.Fatalf("ethtool -K %s %s %s: %v", dev, o.name, onOff(on), err)
	}
	if got != on {
		t.Fatalf("ethtool -K %s %s %s: it reads back %s", dev, o.name, onOff(on), onOff(got))
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// TestTunnelOffloads turns the device's offloads off and on as ethtool -K
// does, on the sending side (checksums, scatter-gather, TSO, GSO: the stack
// then hands over what the device can no longer take, segmented or
// checksummed) and on the receiving side (GRO, rx checksums), and moves
// TCP data through each setting, checked by SHA-256 and by the receiver's
// TCP checksum errors, inner IPv4 and IPv6.
func TestTunnelOffloads(t *testing.T) {
	isolated(t)
	data, sum, recv := transferData(t, 21, tunTransferSize(t)/8)
	tn := newTunnel(t, tunConfig{})
	tn.establish(t)
	all := []offload{offTx, offSG, offTSO, offGSO}
	tests := []struct {
		name string
		a, b []offload // turned off on A (sender) and B (receiver)
	}{
		{name: "tx_checksum_off", a: []offload{offTx}},
		{name: "sg_off", a: []offload{offSG}},
		{name: "tso_gso_off", a: []offload{offTSO, offGSO}},
		{name: "all_tx_off", a: all},
		{name: "gro_off", b: []offload{offGRO}},
		{name: "rx_checksum_off", b: []offload{offRx}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, o := range tt.a {
				setOffload(t, tn.a.testNS, tunDev, o, false)
			}
			for _, o := range tt.b {
				setOffload(t, tn.b.testNS, tunDev, o, false)
			}
			defer func() {
				// Back on, in the order their dependencies need.
				for _, o := range all {
					setOffload(t, tn.a.testNS, tunDev, o, true)
				}
				for _, o := range []offload{offRx, offGRO} {
					setOffload(t, tn.b.testNS, tunDev, o, true)
				}
			}()
			for _, fam := range tunFamilies {
				// One TCP MIB counts for both families.
				before := tn.b.snmp(t, "Tcp")
				tn.tcpTransfer(t, tt.name+"_"+fam.name, tn.b.inner(fam.v6), data, sum, recv)
				after := tn.b.snmp(t, "Tcp")
				if d := after["InCsumErrors"] - before["InCsumErrors"]; d != 0 {
					t.Errorf("%s: B counted %d TCP checksum errors during the transfer", fam.name, d)
				}
			}
		})
	}
}
