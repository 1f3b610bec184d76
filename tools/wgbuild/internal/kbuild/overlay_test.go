package kbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const netKconfig = `config DUMMY
	tristate "Dummy net driver support"

config WIREGUARD
	tristate "WireGuard secure network tunnel"
	depends on NET && INET
	select NET_UDP_TUNNEL
	help
	  upstream help

	  more upstream help

config WIREGUARD_DEBUG
	bool "Debugging checks and verbose messages"
	depends on WIREGUARD
	help
	  upstream debug help

config EQUALIZER
	tristate "EQL"
`

const ourEntry = "config WIREGUARD\n\ttristate \"ours\"\n\tselect NET_UDP_TUNNEL\n\nconfig WIREGUARD_DEBUG\n\tbool \"ours debug\"\n"

func TestSpliceKconfig(t *testing.T) {
	got, err := SpliceKconfig([]byte(netKconfig), []byte(ourEntry))
	if err != nil {
		t.Fatal(err)
	}
	want := "config DUMMY\n\ttristate \"Dummy net driver support\"\n\n" + ourEntry + "\nconfig EQUALIZER\n\ttristate \"EQL\"\n"
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, err := SpliceKconfig([]byte("config DUMMY\n\tbool\n"), []byte(ourEntry)); err == nil || !strings.Contains(err.Error(), "5.6") {
		t.Errorf("tree without WireGuard: err = %v, want one naming 5.6", err)
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOverlayApplyKeepsPristine checks that writing the overlay into a
// hard-linked copy never changes the pristine tree, removes upstream's
// driver files, and reports changes only when there are some.
func TestOverlayApplyKeepsPristine(t *testing.T) {
	base := t.TempDir()
	pristine := filepath.Join(base, "pristine")
	writeFiles(t, pristine, map[string]string{
		"Makefile":                       "VERSION = 6\n",
		"drivers/net/Kconfig":            netKconfig,
		"drivers/net/wireguard/Makefile": "upstream makefile\n",
		"drivers/net/wireguard/cookie.c": "upstream cookie\n",
		"drivers/net/wireguard/device.c": "upstream device\n",
		"include/uapi/linux/wireguard.h": "upstream uapi\n",
		"include/net/genetlink.h":        "u8 resv_start_op;\ngenl_info_dump(cb)\nstruct genl_split_ops {\nstruct genl_ops {\n\tconst struct nla_policy *policy;\n};\n",
		"include/net/netlink.h":          "#define NLA_POLICY_MASK(tp, _mask) {\n",
		"include/linux/netdevice.h":      "pcpu_stat_type:8; unsigned long lltx:1; dev_get_tstats64( netif_napi_add_weight( dev_sw_netstats_rx_add( __netif_napi_del(\n#define DEV_STATS_INC(\nstatic inline void __dev_put(struct net_device *dev)\n{\n\tif (dev) {\n",
		"include/linux/random.h":         "get_random_u32_below(\n",
		"include/crypto/blake2s.h":       "struct blake2s_ctx {\nstatic inline void blake2s(const u8 *key, size_t keylen,\n",
		"include/linux/slab.h":           "void kfree_sensitive(const void *);\n#define kzalloc_obj(P, ...) \\\n",
		"include/linux/timer.h":          "timer_delete(\n#define timer_container_of(\n",
		"include/linux/workqueue.h":      "\tWQ_PERCPU\t\t= 1 << 8,\n",
		"include/net/gso.h":              "skb_gso_segment\n",
		"include/net/udp_tunnel.h":       "bool nocheck, u16 ipcb_flags);\nbool nocheck, u16 ip6cb_flags);\nvoid setup_udp_tunnel_sock(struct net *net, struct sock *sk,\nvoid udp_tunnel_sock_release(struct sock *sk);\n",
		"include/net/rtnetlink.h":        "struct rtnl_newlink_params {\n",
		"include/net/dst_cache.h":        "void dst_cache_reset_now(struct dst_cache *dst_cache);\n",
	})
	src := filepath.Join(base, "src")
	writeFiles(t, src, map[string]string{
		"Makefile":          "obj-$(CONFIG_WIREGUARD) := wireguard.o\n",
		"device.c":          "ours device\n",
		"uapi/wireguard.h":  "our uapi\n",
		"selftest/x_test.c": "selftest\n",
	})
	kconf := filepath.Join(base, "Kconfig")
	writeFiles(t, base, map[string]string{"Kconfig": ourEntry})

	copyTree := filepath.Join(base, "copy")
	if out, err := execCommand("cp", "-al", pristine, copyTree); err != nil {
		t.Fatalf("cp -al: %v: %s", err, out)
	}
	ov, err := NewOverlay(src, kconf, pristine)
	if err != nil {
		t.Fatal(err)
	}
	if ov.Compat != "" {
		t.Errorf("a tree with every API needs no compat, got %q", ov.Compat)
	}
	changed, err := ov.Apply(copyTree)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Error("first Apply reported no change")
	}
	for p, want := range map[string]string{
		"drivers/net/wireguard/device.c":          "ours device\n",
		"drivers/net/wireguard/selftest/x_test.c": "selftest\n",
		"include/uapi/linux/wireguard.h":          "our uapi\n",
		"drivers/net/wireguard/Makefile":          "obj-$(CONFIG_WIREGUARD) := wireguard.o\n",
	} {
		b, err := os.ReadFile(filepath.Join(copyTree, p))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(copyTree, "drivers/net/wireguard/cookie.c")); !os.IsNotExist(err) {
		t.Errorf("upstream's cookie.c survived the overlay: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(copyTree, "drivers/net/Kconfig")); !strings.Contains(string(b), "ours debug") || strings.Contains(string(b), "upstream help") {
		t.Errorf("drivers/net/Kconfig not spliced:\n%s", b)
	}
	// The pristine tree is untouched.
	for p, want := range map[string]string{
		"drivers/net/wireguard/device.c": "upstream device\n",
		"drivers/net/wireguard/cookie.c": "upstream cookie\n",
		"include/uapi/linux/wireguard.h": "upstream uapi\n",
		"drivers/net/Kconfig":            netKconfig,
	} {
		b, err := os.ReadFile(filepath.Join(pristine, p))
		if err != nil || string(b) != want {
			t.Errorf("pristine %s = %q, %v; want %q", p, b, err, want)
		}
	}
	if changed, err := ov.Apply(copyTree); err != nil || changed {
		t.Errorf("second Apply: changed %v, err %v; want no change", changed, err)
	}
}

// TestOverlayCompat checks that an older tree gets the compat header, the
// Makefile line that force-includes it, and the dropped lines.
func TestOverlayCompat(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	writeFiles(t, tree, map[string]string{
		"drivers/net/Kconfig":       netKconfig,
		"lib/crypto/Kconfig":        "config CRYPTO_LIB_BLAKE2S\n\ttristate\n",
		"include/net/genetlink.h":   "genl_dumpit_info(cb)\n",
		"include/net/netlink.h":     "#define NLA_POLICY_RANGE(\n",
		"include/linux/netdevice.h": "netif_napi_add(\n",
		"include/linux/random.h":    "get_random_u32(\n",
		"include/crypto/blake2s.h":  "struct blake2s_state {\n",
		"include/linux/slab.h":      "kzfree(\n",
		"include/linux/timer.h":     "del_timer(\n",
		"include/linux/workqueue.h": "\tWQ_UNBOUND\t\t= 1 << 1,\n",
		"include/net/udp_tunnel.h":  "bool xnet, bool nocheck);\n",
		"include/net/rtnetlink.h":   "struct rtnl_newlink_params {\n",
		"include/net/dst_cache.h":   "void dst_cache_reset(struct dst_cache *dst_cache);\n",
	})
	src := filepath.Join(base, "src")
	writeFiles(t, src, map[string]string{
		"Makefile":            "obj-m := wireguard.o\n",
		"netlink.c":           "static struct genl_family f = {\n\t.name = \"wireguard\",\n\t.parallel_ops = true,\n\t.split_ops = wireguard_nl_ops,\n\t.resv_start_op = 2,\n};\n\treturn genl_register_family(&genl_family);\n",
		"generated/netlink.c": "/* Ops table for wireguard */\n\t\t.policy\t\t= wireguard_get_device_nl_policy,\n\t\t.maxattr\t= WGDEVICE_A_IFNAME,\n",
		"device.c":            "\twg->id = atomic64_inc_return(&last_id);\n\tkvfree(wg->peer_hashtable);\n\tdev->pcpu_stat_type = NETDEV_PCPU_STAT_TSTATS;\n\tdev->lltx = true;\n\tdev->needs_free_netdev = true;\n",
	})
	writeFiles(t, base, map[string]string{"Kconfig": ourEntry})
	ov, err := NewOverlay(src, filepath.Join(base, "Kconfig"), tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"genl_info_dump", "timer_delete", "net/gso.h", "genl_family.resv_start_op", "genl_split_ops", "genl_ops.policy", "NLA_POLICY_MASK"} {
		if !strings.Contains(ov.Compat, name) {
			t.Errorf("compat %q lacks %s", ov.Compat, name)
		}
	}
	h := string(ov.Files["drivers/net/wireguard/compat/compat.h"])
	if !strings.Contains(h, "#define genl_info_dump(cb) genl_dumpit_info(cb)") || strings.Contains(h, "uapi") {
		t.Errorf("compat.h:\n%s", h)
	}
	if _, ok := ov.Files["drivers/net/wireguard/compat/include/net/gso.h"]; !ok {
		t.Error("no net/gso.h stub")
	}
	if mk := string(ov.Files["drivers/net/wireguard/Makefile"]); !strings.Contains(mk, "-include $(wg-compat)/compat.h") {
		t.Errorf("Makefile does not force-include compat.h:\n%s", mk)
	}
	wantNL := "static struct genl_family f = {\n\t.name = \"wireguard\",\n\t.parallel_ops = true,\n\t.ops = wireguard_nl_ops,\n\t.n_ops = ARRAY_SIZE(wireguard_nl_ops),\n};\n" +
		"\tgenl_family.policy = wg_compat_device_policy;\n\tgenl_family.maxattr = WGDEVICE_A_MAX;\n\treturn genl_register_family(&genl_family);\n"
	if c := string(ov.Files["drivers/net/wireguard/netlink.c"]); c != wantNL {
		t.Errorf("netlink.c after compat edits:\n%s\nwant:\n%s", c, wantNL)
	}
	if c := string(ov.Files["drivers/net/wireguard/generated/netlink.c"]); strings.Contains(c, ".policy") || strings.Contains(c, ".maxattr") || !strings.Contains(c, "wg_compat_device_policy =\n\twireguard_set_device_nl_policy;") {
		t.Errorf("generated/netlink.c after compat edits:\n%s", c)
	}
	wantDev := "\twg->id = atomic64_inc_return(&last_id);\n\tdev->tstats = netdev_alloc_pcpu_stats(struct pcpu_sw_netstats);\n\tif (!dev->tstats)\n\t\treturn -ENOMEM;\n\tkvfree(wg->peer_hashtable);\n\tfree_percpu(wg->dev->tstats);\n\tdev->features |= NETIF_F_LLTX;\n\tdev->needs_free_netdev = true;\n"
	if d := string(ov.Files["drivers/net/wireguard/device.c"]); d != wantDev {
		t.Errorf("device.c after compat edits:\n%s\nwant:\n%s", d, wantDev)
	}
	if k := string(ov.Files["drivers/net/Kconfig"]); !strings.Contains(k, "\tselect NET_UDP_TUNNEL\n\tselect CRYPTO_LIB_BLAKE2S\n") {
		t.Errorf("Kconfig lacks the BLAKE2S select of a pre-5.17 tree:\n%s", k)
	}
}

func execCommand(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}
