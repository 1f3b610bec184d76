package cli

import (
	"strings"
	"testing"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/harness"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestInteropSides(t *testing.T) {
	kOurs, _ := wgtypes.GeneratePrivateKey()
	kUp, _ := wgtypes.GeneratePrivateKey()
	psk, _ := wgtypes.GenerateKey()
	sides := interopSides(kOurs, kUp, psk, 12345)
	envOf := func(s harness.VM) map[string]string {
		m := map[string]string{}
		for _, kv := range s.Env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("%s: env entry %q has no =", s.Name, kv)
			}
			if _, dup := m[k]; dup {
				t.Fatalf("%s: %s set twice", s.Name, k)
			}
			m[k] = v
		}
		return m
	}
	ours, up := envOf(sides[0]), envOf(sides[1])
	tests := []struct {
		name      string
		got, want string
	}{
		{"ours role", ours["WGVM_ROLE"], "ours"},
		{"upstream role", up["WGVM_ROLE"], "upstream"},
		{"ours module", sides[0].Module, moduleOurs},
		{"upstream module", sides[1].Module, moduleUpstream},
		{"ours private key", ours["WGVM_PRIVATE_KEY"], kOurs.String()},
		{"upstream private key", up["WGVM_PRIVATE_KEY"], kUp.String()},
		{"ours knows upstream's public key", ours["WGVM_PEER_PUBLIC_KEY"], kUp.PublicKey().String()},
		{"upstream knows ours' public key", up["WGVM_PEER_PUBLIC_KEY"], kOurs.PublicKey().String()},
		{"ours outer", ours["WGVM_OUTER"], "192.168.77.1/24"},
		{"upstream outer", up["WGVM_OUTER"], "192.168.77.2/24"},
		{"ours inner", ours["WGVM_INNER"], "10.77.0.1/24"},
		{"upstream inner", up["WGVM_INNER"], "10.77.0.2/24"},
		{"ours' peer outer", ours["WGVM_PEER_OUTER"], "192.168.77.2"},
		{"upstream's peer outer", up["WGVM_PEER_OUTER"], "192.168.77.1"},
		{"ours' peer inner", ours["WGVM_PEER_INNER"], "10.77.0.2"},
		{"upstream's peer inner", up["WGVM_PEER_INNER"], "10.77.0.1"},
		{"ours port", ours["WGVM_WG_PORT"], "51820"},
		{"ours outer6", ours["WGVM_OUTER6"], "fd77::1/64"},
		{"upstream outer6", up["WGVM_OUTER6"], "fd77::2/64"},
		{"ours inner6", ours["WGVM_INNER6"], "fd00:77::1/64"},
		{"upstream's peer outer6", up["WGVM_PEER_OUTER6"], "fd77::1"},
		{"ours' peer inner6", ours["WGVM_PEER_INNER6"], "fd00:77::2"},
		{"one preshared key", ours["WGVM_PRESHARED_KEY"] + "," + up["WGVM_PRESHARED_KEY"], psk.String() + "," + psk.String()},
		{"size", ours["WGVM_TRANSFER_BYTES"] + "," + up["WGVM_TRANSFER_BYTES"], "12345,12345"},
		{"ours MAC is its NIC's", ours["WGVM_MAC"], sides[0].MAC},
		{"upstream MAC is its NIC's", up["WGVM_MAC"], sides[1].MAC},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if sides[0].MAC == sides[1].MAC {
		t.Errorf("both NICs have MAC %s", sides[0].MAC)
	}
	p := harness.Plan{VMs: sides[:]}
	if err := p.Check(); err != nil {
		t.Errorf("the pair is not a valid plan: %v", err)
	}
}

func TestInteropUsage(t *testing.T) {
	tests := []struct {
		args      []string
		code      int
		stdoutHas string
		stderrHas string
	}{
		{args: []string{"interop", "--help"}, code: ExitOK, stdoutHas: "TestTwoVMInterop"},
		{args: []string{"help"}, code: ExitOK, stdoutHas: "interop"},
		{args: []string{"interop", "--module", "upstream"}, code: ExitUsage, stderrHas: "always pairs"},
		{args: []string{"interop", "--bytes", "0"}, code: ExitUsage, stderrHas: "--bytes"},
		{args: []string{"interop", "--timeout", "1s"}, code: ExitUsage, stderrHas: "too short"},
		{args: []string{"interop", "--accel", "hvf"}, code: ExitUsage, stderrHas: "--accel"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			if code := Main(tt.args, &stdout, &stderr); code != tt.code {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdoutHas) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdoutHas, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderrHas, stderr.String())
			}
		})
	}
}
