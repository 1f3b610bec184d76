package vmtest

import (
	"slices"
	"strings"
	"testing"
)

func TestDgramNICArgs(t *testing.T) {
	a, b := "/tmp/wgvm-link-1/a.sock", "/tmp/wgvm-link-1/b.sock"
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
				"-netdev", "dgram,id=n0,local.type=unix,local.path=/tmp/wgvm-link-1/a.sock,remote.type=unix,remote.path=/tmp/wgvm-link-1/b.sock",
			},
		},
		{
			name: "named, reversed",
			nic:  DgramNIC{ID: "wan", MAC: "52:54:00:77:00:02", Local: b, Remote: a},
			want: []string{
				"-device", "virtio-net-pci,netdev=wan,mac=52:54:00:77:00:02",
				"-netdev", "dgram,id=wan,local.type=unix,local.path=/tmp/wgvm-link-1/b.sock,remote.type=unix,remote.path=/tmp/wgvm-link-1/a.sock",
			},
		},
		{name: "bad mac", nic: DgramNIC{MAC: "52:54", Local: a, Remote: b}, errHave: "MAC"},
		{name: "no remote", nic: DgramNIC{MAC: "52:54:00:77:00:01", Local: a}, errHave: "not an absolute path"},
		{name: "relative", nic: DgramNIC{MAC: "52:54:00:77:00:01", Local: "a.sock", Remote: b}, errHave: "not an absolute path"},
		{name: "too long", nic: DgramNIC{MAC: "52:54:00:77:00:01", Local: "/" + strings.Repeat("x", 120), Remote: b}, errHave: "longer than a unix socket"},
		{name: "comma", nic: DgramNIC{MAC: "52:54:00:77:00:01", Local: "/tmp/a,b", Remote: b}, errHave: "comma"},
		{name: "same socket", nic: DgramNIC{MAC: "52:54:00:77:00:01", Local: a, Remote: a}, errHave: "both"},
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
		WithDgramNIC(DgramNIC{MAC: "52:54:00:77:00:01", Local: "/l/a", Remote: "/l/b"}))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Args("/q.sock"), " ")
	if !strings.HasSuffix(got, "-device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01 -netdev dgram,id=n0,local.type=unix,local.path=/l/a,remote.type=unix,remote.path=/l/b") {
		t.Errorf("NIC args missing or not last: %s", got)
	}
	if _, err := NewConfig(WithKernel("k"), WithInitramfs("i"), WithLogDir("d"), WithDgramNIC(DgramNIC{MAC: "x"})); err == nil {
		t.Error("a bad NIC was accepted")
	}
}
