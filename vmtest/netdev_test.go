package vmtest

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestDgramNICArgs(t *testing.T) {
	a := netip.MustParseAddrPort("127.0.0.1:40001")
	b := netip.MustParseAddrPort("127.0.0.1:40002")
	tests := []struct {
		name    string
		nic     DgramNIC
		want    []string
		errHave string
	}{
		{
			name: "default id",
			nic:  DgramNIC{MAC: "52:54:00:77:00:01", Local: a, Remote: b},
			want: []string{
				"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01",
				"-netdev", "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=40001,remote.type=inet,remote.host=127.0.0.1,remote.port=40002",
			},
		},
		{
			name: "named, reversed",
			nic:  DgramNIC{ID: "wan", MAC: "52:54:00:77:00:02", Local: b, Remote: a},
			want: []string{
				"-device", "virtio-net-pci,netdev=wan,mac=52:54:00:77:00:02",
				"-netdev", "dgram,id=wan,local.type=inet,local.host=127.0.0.1,local.port=40002,remote.type=inet,remote.host=127.0.0.1,remote.port=40001",
			},
		},
		{name: "bad mac", nic: DgramNIC{MAC: "52:54", Local: a, Remote: b}, errHave: "MAC"},
		{name: "no remote", nic: DgramNIC{MAC: "52:54:00:77:00:01", Local: a}, errHave: "not an IPv4 address"},
		{name: "port 0", nic: DgramNIC{MAC: "52:54:00:77:00:01", Local: netip.MustParseAddrPort("127.0.0.1:0"), Remote: b}, errHave: "not an IPv4"},
		{name: "ipv6", nic: DgramNIC{MAC: "52:54:00:77:00:01", Local: netip.MustParseAddrPort("[::1]:5"), Remote: b}, errHave: "not an IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.nic.Args()
			if tt.errHave != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHave) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errHave)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestWithDgramNIC(t *testing.T) {
	c, err := NewConfig(WithKernel("k"), WithInitramfs("i"), WithLogDir("d"),
		WithDgramNIC(DgramNIC{MAC: "52:54:00:77:00:01", Local: netip.MustParseAddrPort("127.0.0.1:1"), Remote: netip.MustParseAddrPort("127.0.0.1:2")}))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Args("/q.sock"), " ")
	if !strings.HasSuffix(got, "-device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01 -netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=1,remote.type=inet,remote.host=127.0.0.1,remote.port=2") {
		t.Errorf("NIC args missing or not last: %s", got)
	}
	if _, err := NewConfig(WithKernel("k"), WithInitramfs("i"), WithLogDir("d"), WithDgramNIC(DgramNIC{MAC: "x"})); err == nil {
		t.Error("a bad NIC was accepted")
	}
}
