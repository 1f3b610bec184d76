package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
	"github.com/wgkit/wgkit/initramfs/manifest"
)

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/lib/crypto/libcurve25519-generic.ko": "libcurve25519_generic",
		"pvpanic-mmio.ko.xz":                         "pvpanic_mmio",
		"/x/wireguard.ko.zst":                        "wireguard",
		"udp_tunnel":                                 "udp_tunnel",
	} {
		if got := ModName(in); got != want {
			t.Errorf("ModName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseModInfo(t *testing.T) {
	data := []byte("license=GPL\x00depends=udp_tunnel,libchacha20poly1305\x00\x00\x00name=wireguard\x00vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \x00alias=net-pf-16-proto-16-family-wireguard\x00alias=rtnl-link-wireguard\x00")
	info := parseModInfo(data)
	for k, want := range map[string]string{
		"name":     "wireguard",
		"depends":  "udp_tunnel,libchacha20poly1305",
		"vermagic": "6.1.0-56-amd64 SMP preempt mod_unload modversions ",
		"alias":    "rtnl-link-wireguard",
	} {
		if info[k] != want {
			t.Errorf("%s = %q, want %q", k, info[k], want)
		}
	}
}

// fakeResolve resolves over an in-memory module graph.
func fakeResolve(graph map[string][]string, builtin []string, names, files []string) ([]string, error) {
	idx := &ModuleIndex{Dir: "/lib/modules/test", paths: map[string]string{}, builtin: map[string]bool{}}
	for n := range graph {
		idx.paths[n] = "/lib/modules/test/" + n + ".ko"
	}
	for _, b := range builtin {
		idx.builtin[b] = true
	}
	mods, err := idx.resolve(names, files, func(p string) (*Module, error) {
		n := ModName(p)
		if strings.HasPrefix(p, "/out/") {
			return &Module{Name: n, Path: p, Depends: graph["@"+n]}, nil
		}
		deps, ok := graph[n]
		if !ok {
			return nil, fmt.Errorf("no module %s", p)
		}
		return &Module{Name: n, Path: p, Depends: deps}, nil
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out, nil
}

func TestResolveOrder(t *testing.T) {
	// Debian 6.1's wireguard graph; "@wireguard" is our out-of-tree build.
	debian := map[string][]string{
		"wireguard":             {"libcurve25519_generic", "udp_tunnel", "ip6_udp_tunnel", "libchacha20poly1305", "curve25519_x86_64"},
		"@wireguard":            {"udp_tunnel", "ip6_udp_tunnel", "libchacha20poly1305", "curve25519_x86_64", "libcurve25519_generic"},
		"libchacha20poly1305":   {"poly1305_x86_64", "chacha_x86_64"},
		"chacha_x86_64":         {"libchacha"},
		"curve25519_x86_64":     {"libcurve25519_generic"},
		"libcurve25519_generic": nil, "udp_tunnel": nil, "ip6_udp_tunnel": nil,
		"poly1305_x86_64": nil, "libchacha": nil,
		"pvpanic_mmio": {"pvpanic"}, "pvpanic": nil, "veth": nil,
	}
	tests := []struct {
		name    string
		graph   map[string][]string
		builtin []string
		names   []string
		files   []string
		want    string
		errHas  string
	}{
		{
			name: "upstream by name", graph: debian, names: []string{"pvpanic_mmio", "wireguard"},
			want: "pvpanic pvpanic_mmio libcurve25519_generic udp_tunnel ip6_udp_tunnel poly1305_x86_64 libchacha chacha_x86_64 libchacha20poly1305 curve25519_x86_64 wireguard",
		},
		{
			name: "ours from a file", graph: debian, names: []string{"veth"}, files: []string{"/out/wireguard.ko"},
			want: "veth udp_tunnel ip6_udp_tunnel poly1305_x86_64 libchacha chacha_x86_64 libchacha20poly1305 libcurve25519_generic curve25519_x86_64 wireguard",
		},
		{
			name: "built-in names and deps are skipped", graph: map[string][]string{"a": {"b", "c"}, "c": nil},
			builtin: []string{"b", "veth"}, names: []string{"veth", "a"}, want: "c a",
		},
		{name: "cycle", graph: map[string][]string{"a": {"b"}, "b": {"a"}}, names: []string{"a"}, errHas: "cycle: a -> b -> a"},
		{name: "missing dependency", graph: map[string][]string{"a": {"zz"}}, names: []string{"a"}, errHas: "depends on zz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fakeResolve(tt.graph, tt.builtin, tt.names, tt.files)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := strings.Join(got, " "); s != tt.want {
				t.Errorf("order =\n %s\nwant\n %s", s, tt.want)
			}
		})
	}
}

// TestResolveInstalled resolves the installed distribution kernel's own
// wireguard module, if there is one.
func TestResolveInstalled(t *testing.T) {
	dirs, _ := filepath.Glob("/lib/modules/*/kernel/drivers/net/wireguard/wireguard.ko")
	if len(dirs) == 0 {
		t.Skip("no distribution wireguard.ko installed")
	}
	modDir := strings.TrimSuffix(dirs[0], "/kernel/drivers/net/wireguard/wireguard.ko")
	idx, err := OpenModuleIndex(modDir)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := idx.Resolve([]string{"pvpanic_mmio"}, []string{dirs[0]})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range mods {
		pos[m.Name] = i
	}
	if mods[len(mods)-1].Name != "wireguard" {
		t.Errorf("wireguard is not last: %v", pos)
	}
	for _, m := range mods {
		for _, d := range m.Depends {
			if pos[d] >= pos[m.Name] {
				t.Errorf("%s loads before its dependency %s", m.Name, d)
			}
		}
	}
}

func TestOverlayArchive(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "guest.test")
	if err := os.WriteFile(host, []byte("\x7fELF binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := NewOverlay()
	if err := o.AddFile(host, manifest.TestBinary); err != nil {
		t.Fatal(err)
	}
	if err := o.AddManifest(&manifest.Manifest{Kernel: "6.1.0-test"}); err != nil {
		t.Fatal(err)
	}
	if err := o.AddBytes("/usr/bin/x", []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := o.AddBytes("usr/bin/x", []byte("y"), 0o755); err == nil {
		t.Error("adding a path twice was accepted")
	}
	var buf bytes.Buffer
	if _, err := o.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]cpio.Record{}
	var order []string
	for _, r := range recs {
		got[r.Name] = r
		order = append(order, r.Name)
	}
	// Parents come before children, and files keep their permissions.
	want := []string{"wgvm", "wgvm/guest.test", "wgvm/manifest.json", "usr", "usr/bin", "usr/bin/x"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("records = %v, want %v", order, want)
	}
	if r := got["wgvm/guest.test"]; r.Mode&0o777 != 0o755 || r.Mode&cpio.S_IFMT != cpio.S_IFREG {
		t.Errorf("guest.test mode = %o, want a 0755 regular file", r.Mode)
	}
	if r := got["wgvm"]; r.Mode&0o777 != 0o755 || r.Mode&cpio.S_IFMT != cpio.S_IFDIR {
		t.Errorf("wgvm mode = %o, want a 0755 directory", r.Mode)
	}
	b, _ := io.ReadAll(io.NewSectionReader(got["wgvm/manifest.json"].ReaderAt, 0, int64(got["wgvm/manifest.json"].FileSize)))
	if !strings.Contains(string(b), `"kernel": "6.1.0-test"`) {
		t.Errorf("manifest = %s", b)
	}
}

func TestAddExecutableBringsLibraries(t *testing.T) {
	wg := "/usr/bin/wg"
	if _, err := os.Stat(wg); err != nil {
		t.Skip("wg not installed")
	}
	o := NewOverlay()
	if err := o.AddExecutable(wg, "/usr/bin/wg"); err != nil {
		t.Fatal(err)
	}
	var libc, loader bool
	for f := range o.files {
		libc = libc || strings.Contains(f, "libc.so")
		loader = loader || strings.Contains(f, "ld-linux")
	}
	if !libc || !loader {
		t.Errorf("files = %v, want libc and the dynamic loader", o.files)
	}
}
