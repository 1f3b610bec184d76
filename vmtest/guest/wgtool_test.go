package guest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

const wgTool = "/usr/bin/wg"

// iniSection is one [Interface] or [Peer] section of a wg config.
type iniSection struct {
	name string
	keys map[string]string
}

// parseWGConf parses the output of `wg showconf`.
func parseWGConf(s string) ([]iniSection, error) {
	var out []iniSection
	sc := bufio.NewScanner(strings.NewReader(s))
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = strings.TrimSpace(l[:i])
		}
		switch {
		case l == "":
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			out = append(out, iniSection{name: l[1 : len(l)-1], keys: map[string]string{}})
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || len(out) == 0 {
				return nil, fmt.Errorf("line %d: %q is not key = value inside a section", line, l)
			}
			k = strings.TrimSpace(k)
			if _, dup := out[len(out)-1].keys[k]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", line, k)
			}
			out[len(out)-1].keys[k] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

// confView turns a parsed config into a deviceView for comparison.
func confView(secs []iniSection) (deviceView, error) {
	v := deviceView{Peers: map[wgtypes.Key]peerView{}}
	for _, s := range secs {
		switch s.name {
		case "Interface":
			for k, val := range s.keys {
				var err error
				switch k {
				case "PrivateKey":
					v.PrivateKey, err = wgtypes.ParseKey(val)
					v.PublicKey = v.PrivateKey.PublicKey()
				case "ListenPort":
					v.ListenPort, err = strconv.Atoi(val)
				case "FwMark":
					var m uint64
					m, err = strconv.ParseUint(val, 0, 32)
					v.FirewallMark = int(m)
				default:
					err = fmt.Errorf("unexpected key")
				}
				if err != nil {
					return v, fmt.Errorf("[Interface] %s = %s: %w", k, val, err)
				}
			}
		case "Peer":
			pk, err := wgtypes.ParseKey(s.keys["PublicKey"])
			if err != nil {
				return v, fmt.Errorf("[Peer] PublicKey = %q: %w", s.keys["PublicKey"], err)
			}
			p := peerView{AllowedIPs: []string{}, ProtocolVersion: 1}
			for k, val := range s.keys {
				switch k {
				case "PublicKey":
				case "PresharedKey":
					p.PresharedKey, err = wgtypes.ParseKey(val)
				case "AllowedIPs":
					for _, ip := range strings.Split(val, ",") {
						p.AllowedIPs = append(p.AllowedIPs, strings.TrimSpace(ip))
					}
					sort.Strings(p.AllowedIPs)
				case "Endpoint":
					p.Endpoint = val
				case "PersistentKeepalive":
					var sec int
					sec, err = strconv.Atoi(val)
					p.Keepalive = time.Duration(sec) * time.Second
				default:
					err = fmt.Errorf("unexpected key")
				}
				if err != nil {
					return v, fmt.Errorf("[Peer] %s = %s: %w", k, val, err)
				}
			}
			if _, dup := v.Peers[pk]; dup {
				return v, fmt.Errorf("peer %s listed twice", pk)
			}
			v.Peers[pk] = p
		default:
			return v, fmt.Errorf("unexpected section [%s]", s.name)
		}
	}
	return v, nil
}

// TestWGToolSetconfShowconf round-trips a configuration through the real
// wg(8): setconf, showconf, show dump, show all; and compares each view with
// the intended configuration and with wgctrl's.
func TestWGToolSetconfShowconf(t *testing.T) {
	isolated(t)
	if _, err := os.Stat(wgTool); err != nil {
		t.Fatalf("the wg tool must be in the guest image: %v", err)
	}
	const name, name2 = "wg0", "wg1"
	n := newTestNS(t)
	n.addWG(t, name)
	n.addWG(t, name2)

	priv := newPrivateKey(t)
	psk, err := wgtypes.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := peerKey(t.Name(), 0), peerKey(t.Name(), 1), peerKey(t.Name(), 2)
	conf := fmt.Sprintf(`[Interface]
PrivateKey = %s
ListenPort = 44001
FwMark = 0x2a

[Peer]
PublicKey = %s
PresharedKey = %s
AllowedIPs = 10.20.0.0/16, fd00:20::/64
Endpoint = 127.0.0.1:51000
PersistentKeepalive = 21

[Peer]
PublicKey = %s
AllowedIPs = 10.21.0.1/32
Endpoint = [::1]:51001

[Peer]
# host bits are dropped by the kernel
PublicKey = %s
AllowedIPs = 10.22.3.4/16, fd00:22::1/48
`, priv, a, psk, b, c)

	want := deviceView{
		PrivateKey:   priv,
		PublicKey:    priv.PublicKey(),
		ListenPort:   44001,
		FirewallMark: 0x2a,
		Peers: map[wgtypes.Key]peerView{
			a: {PresharedKey: psk, Endpoint: "127.0.0.1:51000", Keepalive: 21 * time.Second, AllowedIPs: []string{"10.20.0.0/16", "fd00:20::/64"}, ProtocolVersion: 1},
			b: {Endpoint: "[::1]:51001", AllowedIPs: []string{"10.21.0.1/32"}, ProtocolVersion: 1},
			c: {AllowedIPs: []string{"10.22.0.0/16", "fd00:22::/48"}, ProtocolVersion: 1},
		},
	}

	path := filepath.Join(t.TempDir(), "wg0.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.command(t, "", wgTool, "setconf", name, path); err != nil {
		t.Fatalf("wg setconf: %v", err)
	}

	if d := diffViews(want, viewOf(n.device(t, name)), 10); len(d) > 0 {
		t.Errorf("wgctrl view after wg setconf differs from the config file:\n  %s", strings.Join(d, "\n  "))
	}

	showconf, err := n.command(t, "", wgTool, "showconf", name)
	if err != nil {
		t.Fatalf("wg showconf: %v", err)
	}
	secs, err := parseWGConf(showconf)
	if err != nil {
		t.Fatalf("parse wg showconf output: %v\n%s", err, showconf)
	}
	got, err := confView(secs)
	if err != nil {
		t.Fatalf("wg showconf output: %v\n%s", err, showconf)
	}
	if d := diffViews(want, got, 10); len(d) > 0 {
		t.Errorf("wg showconf differs from what was set:\n  %s\n--- showconf:\n%s", strings.Join(d, "\n  "), showconf)
	}

	t.Run("showconf output is valid setconf input", func(t *testing.T) {
		path2 := filepath.Join(t.TempDir(), "wg1.conf")
		if err := os.WriteFile(path2, []byte(showconf), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := n.command(t, "", wgTool, "setconf", name2, path2); err != nil {
			t.Fatalf("wg setconf %s with showconf output: %v", name2, err)
		}
		if d := diffViews(want, viewOf(n.device(t, name2)), 10); len(d) > 0 {
			t.Errorf("%s configured from %s's showconf differs:\n  %s", name2, name, strings.Join(d, "\n  "))
		}
	})

	t.Run("setconf replaces", func(t *testing.T) {
		// setconf replaces the whole configuration: a file with one peer
		// and no port leaves exactly that.
		path3 := filepath.Join(t.TempDir(), "wg1b.conf")
		d := newPrivateKey(t)
		conf := fmt.Sprintf("[Interface]\nPrivateKey = %s\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.99.0.0/24\n", d, c)
		if err := os.WriteFile(path3, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := n.command(t, "", wgTool, "setconf", name2, path3); err != nil {
			t.Fatalf("wg setconf: %v", err)
		}
		wantB := deviceView{
			PrivateKey: d, PublicKey: d.PublicKey(),
			// wg setconf sends ListenPort 0 and FwMark 0 when absent.
			Peers: map[wgtypes.Key]peerView{c: {AllowedIPs: []string{"10.99.0.0/24"}, ProtocolVersion: 1}},
		}
		if diff := diffViews(wantB, viewOf(n.device(t, name2)), 10); len(diff) > 0 {
			t.Errorf("after setconf with a smaller config:\n  %s", strings.Join(diff, "\n  "))
		}
	})

	t.Run("show dump", func(t *testing.T) {
		out, err := n.command(t, "", wgTool, "show", name, "dump")
		if err != nil {
			t.Fatalf("wg show dump: %v", err)
		}
		checkDump(t, out, "", want)
	})

	t.Run("show all dump", func(t *testing.T) {
		out, err := n.command(t, "", wgTool, "show", "all", "dump")
		if err != nil {
			t.Fatalf("wg show all dump: %v", err)
		}
		var mine []string
		seen := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			dev, _, _ := strings.Cut(l, "\t")
			seen[dev] = true
			if dev == name {
				mine = append(mine, l)
			}
		}
		if !seen[name] || !seen[name2] || len(seen) != 2 {
			t.Errorf("wg show all dump: want lines for exactly %s and %s, got devices %v", name, name2, seen)
		}
		checkDump(t, strings.Join(mine, "\n"), name+"\t", want)
	})

	t.Run("show all", func(t *testing.T) {
		out, err := n.command(t, "", wgTool, "show", "all")
		if err != nil {
			t.Fatalf("wg show all: %v", err)
		}
		for _, s := range []string{"interface: " + name, "interface: " + name2, "peer: " + a.String(), "listening port: 44001"} {
			if !strings.Contains(out, s) {
				t.Errorf("wg show all: output lacks %q:\n%s", s, out)
			}
		}
	})
}

// checkDump compares `wg show <dev> dump` output (lines optionally prefixed
// with the device name) with want.
func checkDump(t *testing.T, out, prefix string, want deviceView) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+len(want.Peers) {
		t.Fatalf("wg dump: want %d lines (device + %d peers), got %d:\n%s", 1+len(want.Peers), len(want.Peers), len(lines), out)
	}
	field := func(l string) []string {
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("wg dump line %q lacks prefix %q", l, prefix)
		}
		return strings.Split(strings.TrimPrefix(l, prefix), "\t")
	}
	dev := field(lines[0])
	fwmark := "off"
	if want.FirewallMark != 0 {
		fwmark = fmt.Sprintf("0x%x", want.FirewallMark)
	}
	wantDev := []string{want.PrivateKey.String(), want.PublicKey.String(), strconv.Itoa(want.ListenPort), fwmark}
	if !slices.Equal(dev, wantDev) {
		t.Errorf("wg dump device line: want %q, got %q", wantDev, dev)
	}
	seen := 0
	for _, l := range lines[1:] {
		f := field(l)
		if len(f) != 8 {
			t.Errorf("wg dump peer line: want 8 fields, got %d: %q", len(f), l)
			continue
		}
		pk, err := wgtypes.ParseKey(f[0])
		if err != nil {
			t.Errorf("wg dump peer key %q: %v", f[0], err)
			continue
		}
		wp, ok := want.Peers[pk]
		if !ok {
			t.Errorf("wg dump: unexpected peer %s", pk)
			continue
		}
		seen++
		psk, ep, ips, ka := "(none)", "(none)", "(none)", "off"
		if wp.PresharedKey != (wgtypes.Key{}) {
			psk = wp.PresharedKey.String()
		}
		if wp.Endpoint != "" {
			ep = wp.Endpoint
		}
		if len(wp.AllowedIPs) > 0 {
			got := strings.Split(f[3], ",")
			sort.Strings(got)
			if slices.Equal(got, wp.AllowedIPs) {
				ips = f[3]
			} else {
				ips = strings.Join(wp.AllowedIPs, ",")
			}
		}
		if wp.Keepalive != 0 {
			ka = strconv.Itoa(int(wp.Keepalive / time.Second))
		}
		wantPeer := []string{pk.String(), psk, ep, ips, "0", "0", "0", ka}
		if !slices.Equal(f, wantPeer) {
			t.Errorf("wg dump peer line: want %q, got %q", wantPeer, f)
		}
	}
	if seen != len(want.Peers) {
		t.Errorf("wg dump: saw %d of %d peers", seen, len(want.Peers))
	}
}
