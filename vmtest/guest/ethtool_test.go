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
	err := inNetns(n.ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ioctl := func(buf []byte) error {
			var ifr [40]byte // struct ifreq: name, then a pointer
			copy(ifr[:unix.IFNAMSIZ], dev)
			*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(&buf[0]))
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
				return errno
			}
			return nil
		}
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
