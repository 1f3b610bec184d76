// Package compat generates the header that lets the driver, written for the
// newest kernel API this project builds against, compile out of tree on older
// kernels.
//
// Kernel version numbers are not used: distribution kernels carry backports,
// so each probe looks at the target's own headers for the symbol it needs.
// The generated header is force-included (-include) by out-of-tree builds
// only; the driver sources and the patch series never see it.
package compat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A Probe tests the target's headers for one API and says what to emit
// when the API is missing.
type Probe struct {
	// Name identifies the probe in the generated header and in errors.
	Name string
	// Header is the path of the header relative to an include root, such
	// as "net/genetlink.h".
	Header string
	// Pattern must match somewhere in Header for the API to be present.
	Pattern *regexp.Regexp
	// Fallback is emitted when the pattern does not match.
	Fallback string
	// Drop, when set, matches lines to delete from the copied driver
	// sources when the API is missing: for what a header cannot undo, such
	// as a designated initializer of a structure member that the target's
	// structure does not have. Use it only where deleting the line is
	// exactly right on the older kernel.
	Drop *regexp.Regexp
	// Inserts, when set, add lines to the copied driver sources when the
	// API is missing: for what the newer kernel does for the driver and an
	// older one leaves to it (allocating and freeing what the core
	// allocates since). Each insertion's anchor must match exactly one
	// line of its file; a driver edit that moves it fails the build with an
	// error naming the probe, never a silent miscompile.
	Inserts []Insertion
	// Optional says that a kernel without Header at all needs nothing:
	// the code that uses the API is not compiled there.
	Optional bool
	// Stub, when set, is the content of a header of the same path that
	// the build puts on the include path, for a header the driver includes
	// that the target does not have (the API moved there later). The
	// build's include directory comes after the kernel's, so the stub is
	// only ever found when the kernel's own header is missing.
	Stub string
}

// Insertion is text added after (or, with Before, before) the one line of
// File that Anchor matches.
type Insertion struct {
	File   string // relative to the driver's directory, e.g. "device.c"
	Anchor *regexp.Regexp
	Before bool
	Text   string // whole lines, each ending in a newline
}

// StubDir is where stub headers go, relative to the build directory; the
// build adds it to the include path.
const StubDir = "compat/include"

// Probes is the list of APIs the driver uses that older kernels lack.
// Keep it ordered by header; each entry names the mainline release that
// introduced the API so it can be dropped once no supported kernel needs it.
var Probes = []Probe{
	{
		// 6.7: the core allocates and frees per-CPU stats of the type a
		// driver asks for; before, a driver allocated them itself.
		Name:    "net_device.pcpu_stat_type",
		Header:  "linux/netdevice.h",
		Pattern: regexp.MustCompile(`\bpcpu_stat_type\s*:`),
		Drop:    regexp.MustCompile(`^\s*dev->pcpu_stat_type = NETDEV_PCPU_STAT_TSTATS;\s*$`),
		Inserts: []Insertion{
			{
				File:   "device.c",
				Anchor: regexp.MustCompile(`^\twg->id = atomic64_inc_return\(&last_id\);$`),
				Text:   "\tdev->tstats = netdev_alloc_pcpu_stats(struct pcpu_sw_netstats);\n\tif (!dev->tstats)\n\t\treturn -ENOMEM;\n",
			},
			{
				File:   "device.c",
				Anchor: regexp.MustCompile(`^\tkvfree\(wg->peer_hashtable\);$`),
				Text:   "\tfree_percpu(wg->dev->tstats);\n",
			},
		},
	},
	{
		// 6.12: a lockless transmit is dev->lltx; before, the
		// NETIF_F_LLTX feature bit.
		Name:    "net_device.lltx",
		Header:  "linux/netdevice.h",
		Pattern: regexp.MustCompile(`\blltx\s*:\s*1\s*;`),
		Drop:    regexp.MustCompile(`^\s*dev->lltx = true;\s*$`),
		Inserts: []Insertion{{
			File:   "device.c",
			Anchor: regexp.MustCompile(`^\tdev->needs_free_netdev = true;$`),
			Before: true,
			Text:   "\tdev->features |= NETIF_F_LLTX;\n",
		}},
	},
	{
		// 5.11: the ndo_get_stats64 of drivers with per-CPU tstats.
		Name:    "dev_get_tstats64",
		Header:  "linux/netdevice.h",
		Pattern: regexp.MustCompile(`\bdev_get_tstats64\s*\(`),
		Fallback: `static inline void dev_get_tstats64(struct net_device *dev,
				    struct rtnl_link_stats64 *s)
{
	int cpu;

	netdev_stats_to_stats64(s, &dev->stats);
	for_each_possible_cpu(cpu) {
		const struct pcpu_sw_netstats *t = per_cpu_ptr(dev->tstats, cpu);
		u64 rxp, rxb, txp, txb;
		unsigned int start;

		do {
			start = u64_stats_fetch_begin_irq(&t->syncp);
			rxp = t->rx_packets;
			rxb = t->rx_bytes;
			txp = t->tx_packets;
			txb = t->tx_bytes;
		} while (u64_stats_fetch_retry_irq(&t->syncp, start));
		s->rx_packets += rxp;
		s->rx_bytes += rxb;
		s->tx_packets += txp;
		s->tx_bytes += txb;
	}
}`,
	},
	{
		// 6.19 or later (7.2 has it): the BLAKE2s context is struct
		// blake2s_ctx (it was struct blake2s_state).
		Name:     "blake2s_ctx",
		Header:   "crypto/blake2s.h",
		Pattern:  regexp.MustCompile(`\bstruct blake2s_ctx\b`),
		Fallback: "#define blake2s_ctx blake2s_state",
	},
	{
		// Along with it: blake2s() takes the key first and the output
		// last.
		Name:     "blake2s.key_first",
		Header:   "crypto/blake2s.h",
		Pattern:  regexp.MustCompile(`blake2s\(const u8 \*key, size_t keylen,`),
		Fallback: "#define blake2s(key, keylen, in, inlen, out, outlen) blake2s(out, in, key, outlen, inlen, keylen)",
	},
	{
		// 5.10: the receive half of the per-CPU tstats helpers.
		Name:    "dev_sw_netstats_rx_add",
		Header:  "linux/netdevice.h",
		Pattern: regexp.MustCompile(`\bdev_sw_netstats_rx_add\s*\(`),
		Fallback: `static inline void dev_sw_netstats_rx_add(struct net_device *dev, unsigned int len)
{
	struct pcpu_sw_netstats *tstats = this_cpu_ptr(dev->tstats);

	u64_stats_update_begin(&tstats->syncp);
	tstats->rx_bytes += len;
	tstats->rx_packets++;
	u64_stats_update_end(&tstats->syncp);
}`,
	},
	{
		// 6.0: the core's counters in dev->stats became atomic_long_t
		// with helpers; before, they were unsigned longs of the same size.
		Name:    "DEV_STATS_INC",
		Header:  "linux/netdevice.h",
		Pattern: regexp.MustCompile(`#define DEV_STATS_INC\(`),
		Fallback: "#define DEV_STATS_INC(DEV, FIELD) atomic_long_inc((atomic_long_t *)&(DEV)->stats.FIELD)\n" +
			"#define DEV_STATS_ADD(DEV, FIELD, VAL) atomic_long_add((VAL), (atomic_long_t *)&(DEV)->stats.FIELD)",
	},
	{
		// 5.17 (and 5.10.y): dst_cache_reset_now() releases the cached
		// routes at once. Before, only the lazy reset existed, which
		// releases them at each CPU's next use of the cache.
		Name:     "dst_cache_reset_now",
		Header:   "net/dst_cache.h",
		Pattern:  regexp.MustCompile(`\bdst_cache_reset_now\s*\(`),
		Fallback: "#define dst_cache_reset_now(c) dst_cache_reset(c)",
	},
	{
		// 5.13: __netif_napi_del() leaves the RCU grace period to the
		// caller; before, netif_napi_del() waited for one itself.
		Name:     "__netif_napi_del",
		Header:   "linux/netdevice.h",
		Pattern:  regexp.MustCompile(`\b__netif_napi_del\s*\(`),
		Fallback: "#define __netif_napi_del(napi) netif_napi_del(napi)",
	},
	{
		// 5.15 (and 5.10.y): dev_put(NULL) does nothing; before, it
		// dereferenced the NULL.
		Name:    "dev_put.null",
		Header:  "linux/netdevice.h",
		Pattern: regexp.MustCompile(`void _{0,2}dev_put\(struct net_device \*dev\)\s*\{\s*if \(dev\)`),
		Fallback: `static inline void wg_compat_dev_put(struct net_device *dev)
{
	if (dev)
		dev_put(dev);
}
#define dev_put(dev) wg_compat_dev_put(dev)`,
	},
	{
		// 6.1: netif_napi_add() lost its weight argument (5.19 added
		// netif_napi_add_weight() for those who need one).
		Name:     "netif_napi_add_weight",
		Header:   "linux/netdevice.h",
		Pattern:  regexp.MustCompile(`\bnetif_napi_add_weight\s*\(`),
		Fallback: "#define netif_napi_add(dev, napi, poll) netif_napi_add(dev, napi, poll, NAPI_POLL_WEIGHT)",
	},
	{
		// 7.x (7.3 has it; its checkpatch asks for it): kzalloc_obj()
		// allocates an object of the type of its first argument.
		Name:     "kzalloc_obj",
		Header:   "linux/slab.h",
		Pattern:  regexp.MustCompile(`#define kzalloc_obj\(`),
		Fallback: "#define kzalloc_obj(P, gfp) ((typeof(P) *)kzalloc(sizeof(P), gfp))",
	},
	{
		// 6.2: KUnit compares memory and prints both sides on failure.
		// Only the KUnit tests use it, which a kernel without KUnit
		// does not build.
		Name:     "KUNIT_EXPECT_MEMEQ",
		Header:   "kunit/test.h",
		Pattern:  regexp.MustCompile(`#define KUNIT_EXPECT_MEMEQ\(`),
		Optional: true,
		Fallback: "#define KUNIT_EXPECT_MEMEQ(test, left, right, size) KUNIT_EXPECT_EQ(test, memcmp(left, right, size), 0)\n" +
			"#define KUNIT_EXPECT_MEMNEQ(test, left, right, size) KUNIT_EXPECT_NE(test, memcmp(left, right, size), 0)",
	},
	{
		// 6.2: get_random_u32_below() replaced prandom_u32_max().
		Name:    "get_random_u32_below",
		Header:  "linux/random.h",
		Pattern: regexp.MustCompile(`\bget_random_u32_below\s*\(`),
		Fallback: `static inline u32 get_random_u32_below(u32 ceil)
{
	return (u32)(((u64)get_random_u32() * ceil) >> 32);
}`,
	},
	{
		// 5.9: kfree_sensitive() is the new name of kzfree().
		Name:     "kfree_sensitive",
		Header:   "linux/slab.h",
		Pattern:  regexp.MustCompile(`\bkfree_sensitive\b`),
		Fallback: "#define kfree_sensitive(p) kzfree(p)",
	},
	{
		// 6.2: timer_delete() is the new name of del_timer().
		Name:     "timer_delete",
		Header:   "linux/timer.h",
		Pattern:  regexp.MustCompile(`\btimer_delete\s*\(`),
		Fallback: "#define timer_delete(timer) del_timer(timer)\n#define timer_delete_sync(timer) del_timer_sync(timer)",
	},
	{
		// 6.17 (and 6.12.y): a workqueue says whether it is per-CPU or
		// unbound; 7.3 warns when it says neither.
		Name:     "WQ_PERCPU",
		Header:   "linux/workqueue.h",
		Pattern:  regexp.MustCompile(`\bWQ_PERCPU\b`),
		Fallback: "#define WQ_PERCPU 0",
	},
	{
		// 6.16: timer_container_of() is the new name of from_timer().
		Name:     "timer_container_of",
		Header:   "linux/timer.h",
		Pattern:  regexp.MustCompile(`#define timer_container_of\(`),
		Fallback: "#define timer_container_of(var, callback_timer, timer_fieldname) from_timer(var, callback_timer, timer_fieldname)",
	},
	{
		// 6.5: skb_gso_segment() moved from netdevice.h to net/gso.h.
		Name:    "net/gso.h",
		Header:  "net/gso.h",
		Pattern: regexp.MustCompile(`skb_gso_segment`),
		Stub:    "#include <linux/netdevice.h>",
	},
	{
		// 6.6: genl_info_dump() replaced direct use of genl_dumpit_info();
		// both return a structure with an attrs member.
		Name:     "genl_info_dump",
		Header:   "net/genetlink.h",
		Pattern:  regexp.MustCompile(`\bgenl_info_dump\s*\(`),
		Fallback: "#define genl_info_dump(cb) genl_dumpit_info(cb)",
	},
	{
		// 6.2: a family's operations are split ops (struct
		// genl_split_ops, .split_ops), one per command and kind, with
		// their own policy; the generated netlink code declares them so.
		// Before, struct genl_ops has the same members for what the
		// driver uses (from 5.10 on with a policy each, see the next
		// probe), in .ops.
		Name:     "genl_split_ops",
		Header:   "net/genetlink.h",
		Pattern:  regexp.MustCompile(`\bstruct genl_split_ops \{`),
		Fallback: "#define genl_split_ops genl_ops",
		Drop:     regexp.MustCompile(`^\t\.(?:n_)?split_ops = .*,$`),
		Inserts: []Insertion{{
			File:   "netlink.c",
			Anchor: regexp.MustCompile(`^\t\.parallel_ops = true,$`),
			Text:   "\t.ops = wireguard_nl_ops,\n\t.n_ops = ARRAY_SIZE(wireguard_nl_ops),\n",
		}},
	},
	{
		// 5.10: an operation has its own policy and maxattr; before,
		// the family has one for all. The generated operations' are
		// dropped and the family gets the SET_DEVICE one, which has
		// every device attribute (GET_DEVICE's has two of them).
		Name:     "genl_ops.policy",
		Header:   "net/genetlink.h",
		Pattern:  regexp.MustCompile(`struct genl_ops \{[^}]*\*policy;`),
		Fallback: "extern const struct nla_policy *const wg_compat_device_policy;",
		Drop:     regexp.MustCompile(`^\t\t\.(?:policy|maxattr)\t+= .*,$`),
		Inserts: []Insertion{
			{
				File:   "generated/netlink.c",
				Anchor: regexp.MustCompile(`^/\* Ops table for wireguard \*/$`),
				Before: true,
				Text: "const struct nla_policy *const wg_compat_device_policy =\n" +
					"\twireguard_set_device_nl_policy;\n" +
					"static const struct nla_policy *const wg_compat_get_policy __maybe_unused =\n" +
					"\twireguard_get_device_nl_policy;\n\n",
			},
			{
				File:   "netlink.c",
				Anchor: regexp.MustCompile(`^\treturn genl_register_family\(&genl_family\);$`),
				Before: true,
				Text:   "\tgenl_family.policy = wg_compat_device_policy;\n\tgenl_family.maxattr = WGDEVICE_A_MAX;\n",
			},
		},
	},
	{
		// 6.1: commands below resv_start_op keep the old lax validation;
		// before 6.1 every command has it, and the member does not exist.
		Name:    "genl_family.resv_start_op",
		Header:  "net/genetlink.h",
		Pattern: regexp.MustCompile(`\bresv_start_op;`),
		Drop:    regexp.MustCompile(`^\s*\.resv_start_op\s*=.*,\s*$`),
	},
	{
		// 5.10: a policy may give the bits a flags attribute takes (the
		// generated policies do). Without, the handlers' own checks
		// refuse unknown bits, with the same EINVAL.
		Name:     "NLA_POLICY_MASK",
		Header:   "net/netlink.h",
		Pattern:  regexp.MustCompile(`#define NLA_POLICY_MASK\(`),
		Fallback: "#define NLA_POLICY_MASK(tp, mask) { .type = (tp) }",
	},
	{
		// 6.15: a link's newlink() gets the namespaces and attributes in
		// struct rtnl_newlink_params; before, as four arguments. Older
		// kernels get the structure and a wrapper of the old shape.
		Name:    "rtnl_newlink_params",
		Header:  "net/rtnetlink.h",
		Pattern: regexp.MustCompile(`\bstruct rtnl_newlink_params \{`),
		Fallback: `struct rtnl_newlink_params {
	struct net *src_net;
	struct net *link_net;
	struct net *peer_net;
	struct nlattr **tb;
	struct nlattr **data;
};`,
		Drop: regexp.MustCompile(`^\t\.newlink = wg_newlink,$`),
		Inserts: []Insertion{
			{
				File:   "device.c",
				Anchor: regexp.MustCompile(`^static struct rtnl_link_ops link_ops __read_mostly = \{$`),
				Before: true,
				Text: "static int wg_newlink_compat(struct net *src_net, struct net_device *dev,\n" +
					"\t\t\t     struct nlattr *tb[], struct nlattr *data[],\n" +
					"\t\t\t     struct netlink_ext_ack *extack)\n" +
					"{\n" +
					"\tstruct rtnl_newlink_params params = {\n" +
					"\t\t.src_net = src_net,\n" +
					"\t\t.tb = tb,\n" +
					"\t\t.data = data,\n" +
					"\t};\n" +
					"\n" +
					"\treturn wg_newlink(dev, &params, extack);\n" +
					"}\n" +
					"\n",
			},
			{
				File:   "device.c",
				Anchor: regexp.MustCompile(`^\t\.setup = wg_setup,$`),
				Text:   "\t.newlink = wg_newlink_compat,\n",
			},
		},
	},
	{
		// After 6.12 (7.2 has it): the UDP tunnel helpers take the
		// struct sock of the tunnel's socket; before, its struct socket.
		Name:     "setup_udp_tunnel_sock.sk",
		Header:   "net/udp_tunnel.h",
		Pattern:  regexp.MustCompile(`void setup_udp_tunnel_sock\(struct net \*net, struct sock \*sk,`),
		Fallback: "#define setup_udp_tunnel_sock(net, sk, cfg) setup_udp_tunnel_sock(net, (sk)->sk_socket, cfg)",
	},
	{
		Name:     "udp_tunnel_sock_release.sk",
		Header:   "net/udp_tunnel.h",
		Pattern:  regexp.MustCompile(`void udp_tunnel_sock_release\(struct sock \*sk\);`),
		Fallback: "#define udp_tunnel_sock_release(sk) udp_tunnel_sock_release((sk)->sk_socket)",
	},
	{
		// After 6.12 (7.2 has it): the UDP tunnel transmit helpers take
		// the flags to set in the IP control block.
		Name:    "udp_tunnel_xmit_skb.ipcb_flags",
		Header:  "net/udp_tunnel.h",
		Pattern: regexp.MustCompile(`bool nocheck, u16 ipcb_flags\);`),
		Fallback: "#define udp_tunnel_xmit_skb(rt, sk, skb, src, dst, tos, ttl, df, sport, dport, xnet, nocheck, ipcb_flags) \\\n" +
			"\tudp_tunnel_xmit_skb(rt, sk, skb, src, dst, tos, ttl, df, sport, dport, xnet, nocheck)",
	},
	{
		Name:    "udp_tunnel6_xmit_skb.ip6cb_flags",
		Header:  "net/udp_tunnel.h",
		Pattern: regexp.MustCompile(`bool nocheck,\s*u16 ip6cb_flags\);`),
		Fallback: "#define udp_tunnel6_xmit_skb(dst, sk, skb, dev, saddr, daddr, prio, ttl, label, sport, dport, nocheck, ip6cb_flags) \\\n" +
			"\tudp_tunnel6_xmit_skb(dst, sk, skb, dev, saddr, daddr, prio, ttl, label, sport, dport, nocheck)",
	},
}

// KUnitSuites reports whether a module built against kdir can carry KUnit
// suites that run when it loads: the kernel has KUnit (CONFIG_KUNIT=y or
// m), and its kunit/test.h puts a module's suites in the
// .kunit_test_suites section, which the module loader hands to KUnit
// (6.0; before, kunit_test_suites() defined the module's init function,
// which a driver has already). When not, it says why.
func KUnitSuites(kdir string) (bool, string) {
	conf, err := os.ReadFile(filepath.Join(kdir, "include/config/auto.conf"))
	if err != nil {
		return false, fmt.Sprintf("cannot read the kernel's configuration: %v", err)
	}
	if !kunitConfigured.Match(conf) {
		return false, "the kernel has no KUnit (CONFIG_KUNIT is not set)"
	}
	if !KUnitModuleSuites(IncludeRoots(kdir)) {
		return false, NoKUnitModuleSuites
	}
	dirs := []string{kdir}
	if src, err := filepath.EvalSymlinks(filepath.Join(kdir, "source")); err == nil {
		dirs = append(dirs, src)
	}
	return KUnitAfterInit(dirs)
}

var kunitConfigured = regexp.MustCompile(`(?m)^CONFIG_KUNIT=[ym]$`)

// kunitAtLive matches lib/kunit/test.c of a KUnit that runs a module's
// suites once the module is live, after its init function.
var kunitAtLive = regexp.MustCompile(`case MODULE_STATE_LIVE:\s*kunit_module_init\(`)

// KUnitAfterInit reports whether the KUnit of the kernel tree in one of
// dirs runs a module's suites after the module's init function: ours use
// what the driver's init sets up (its caches, the ratelimiter). 6.1's runs
// them while the module is still coming, before its init. When not, it
// says why.
func KUnitAfterInit(dirs []string) (bool, string) {
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "lib/kunit/test.c"))
		if err != nil {
			continue
		}
		if kunitAtLive.Match(b) {
			return true, ""
		}
		return false, "this kernel's KUnit runs a module's suites before the module's init function (as 6.1's does)"
	}
	return false, "cannot tell when this kernel's KUnit runs a module's suites: its source (lib/kunit/test.c) is not with the headers"
}

// NoKUnitModuleSuites is why a kernel whose KUnit lacks KUnitModuleSuites
// does not run ours.
const NoKUnitModuleSuites = "this kernel's KUnit cannot run the suites of a module with its own init function (before 6.0)"

// KUnitModuleSuites reports whether the kunit/test.h under roots puts a
// module's suites in the .kunit_test_suites section.
func KUnitModuleSuites(roots []string) bool {
	section := Probe{Name: "kunit module suites", Header: "kunit/test.h",
		Pattern: regexp.MustCompile(`__section\("\.kunit_test_suites"\)`)}
	ok, err := probe(roots, section)
	return err == nil && ok
}

// Preamble opens every generated header. The driver ships the newest uapi
// header, which older kernels' own copy lacks parts of (WGALLOWEDIP_A_FLAGS
// before 6.16). Included first, it wins over the kernel's copy: 7.2 and 7.3
// generate theirs from the netlink spec, with the include guard ours has;
// older kernels' copy has _WG_UAPI_WIREGUARD_H, defined here so that it is
// skipped. The path is relative to compat/compat.h in the build directory,
// where uapi/ sits next to compat/.
const Preamble = "#define _WG_UAPI_WIREGUARD_H /* older kernels' copy of the uapi header: ours replaces it */\n" +
	`#include "../uapi/wireguard.h"`

// ErrNoHeaders is returned when no include root holds the probed headers.
var ErrNoHeaders = errors.New("compat: no kernel headers found")

// IncludeRoots returns the include directories of a kernel build directory
// (what /lib/modules/<release>/build points to). Debian splits the headers
// into an arch-specific directory and a common one that its Makefile
// includes; a kernel built with O= has a "source" link instead.
func IncludeRoots(kdir string) []string {
	dirs := []string{kdir}
	if src, err := filepath.EvalSymlinks(filepath.Join(kdir, "source")); err == nil {
		dirs = append(dirs, src)
	}
	if inc := includedMakefileDir(filepath.Join(kdir, "Makefile")); inc != "" {
		dirs = append(dirs, inc)
	}
	var roots []string
	seen := map[string]bool{}
	for _, d := range dirs {
		for _, sub := range []string{"include", "arch/x86/include"} {
			p := filepath.Join(d, sub)
			if seen[p] {
				continue
			}
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				seen[p] = true
				roots = append(roots, p)
			}
		}
	}
	return roots
}

// includedMakefileDir returns the directory of a Makefile that the given
// Makefile includes as its first directive, as Debian's header packages do.
func includedMakefileDir(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rest, ok := strings.CutPrefix(line, "include ")
		if !ok {
			return ""
		}
		return filepath.Dir(strings.TrimSpace(rest))
	}
	return ""
}

// Generate probes the kernel build directory kdir and returns the compat
// header for it.
func Generate(kdir string) ([]byte, error) {
	return GenerateFrom(IncludeRoots(kdir), Probes, Preamble)
}

// Missing returns the names of the probes (with or without stubs) whose API
// the roots lack: none means the driver builds there as it is.
func Missing(roots []string, probes []Probe) ([]string, error) {
	if len(roots) == 0 {
		return nil, ErrNoHeaders
	}
	var missing []string
	for _, p := range probes {
		found, err := probe(roots, p)
		if err != nil && !(p.Stub != "" && errors.Is(err, ErrNoHeaders)) {
			return nil, err
		}
		if !found {
			missing = append(missing, p.Name)
		}
	}
	return missing, nil
}

// Stubs probes kdir and returns the stub headers it needs, by path
// relative to StubDir.
func Stubs(kdir string) (map[string][]byte, error) {
	return StubsFrom(IncludeRoots(kdir), Probes)
}

// StubsFrom runs the probes that have stubs against the given roots. A
// header missing from every root is what a stub is for, not an error.
func StubsFrom(roots []string, probes []Probe) (map[string][]byte, error) {
	if len(roots) == 0 {
		return nil, ErrNoHeaders
	}
	stubs := map[string][]byte{}
	for _, p := range probes {
		if p.Stub == "" {
			continue
		}
		found, err := probe(roots, p)
		if err != nil && !errors.Is(err, ErrNoHeaders) {
			return nil, err
		}
		if !found {
			stubs[p.Header] = []byte("/* SPDX-License-Identifier: GPL-2.0 */\n/* Generated by wgbuild: " +
				p.Name + " is missing from the target kernel. */\n" + p.Stub + "\n")
		}
	}
	return stubs, nil
}

// Inserts returns the insertions of the probes whose API the roots lack.
func Inserts(roots []string, probes []Probe) ([]Insertion, error) {
	var ins []Insertion
	for _, p := range probes {
		if len(p.Inserts) == 0 {
			continue
		}
		found, err := probe(roots, p)
		if err != nil {
			return nil, err
		}
		if !found {
			ins = append(ins, p.Inserts...)
		}
	}
	return ins, nil
}

// Insert applies the insertions for the file rel (relative to the driver's
// directory) to src.
func Insert(rel string, src []byte, ins []Insertion) ([]byte, error) {
	for _, in := range ins {
		if in.File != rel {
			continue
		}
		lines := bytes.SplitAfter(src, []byte("\n"))
		at := -1
		for i, l := range lines {
			if in.Anchor.Match(bytes.TrimRight(l, "\n")) {
				if at >= 0 {
					return nil, fmt.Errorf("compat: the anchor %q matches more than one line of %s: make it match one", in.Anchor, rel)
				}
				at = i
			}
		}
		if at < 0 {
			return nil, fmt.Errorf("compat: the anchor %q matches no line of %s: the driver changed there; update the probe in tools/wgbuild/internal/compat", in.Anchor, rel)
		}
		var out []byte
		for i, l := range lines {
			if i == at && in.Before {
				out = append(out, in.Text...)
			}
			out = append(out, l...)
			if i == at && !in.Before {
				out = append(out, in.Text...)
			}
		}
		src = out
	}
	return src, nil
}

// Drops returns the line patterns to delete from the driver's sources for
// the probes whose API the roots lack.
func Drops(roots []string, probes []Probe) ([]*regexp.Regexp, error) {
	var drops []*regexp.Regexp
	for _, p := range probes {
		if p.Drop == nil {
			continue
		}
		found, err := probe(roots, p)
		if err != nil {
			return nil, err
		}
		if !found {
			drops = append(drops, p.Drop)
		}
	}
	return drops, nil
}

// DropLines deletes the lines of src that match any of drops.
func DropLines(src []byte, drops []*regexp.Regexp) []byte {
	if len(drops) == 0 {
		return src
	}
	lines := bytes.SplitAfter(src, []byte("\n"))
	out := make([]byte, 0, len(src))
	for _, l := range lines {
		keep := true
		for _, d := range drops {
			if d.Match(bytes.TrimRight(l, "\n")) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, l...)
		}
	}
	return out
}

// GenerateFrom runs probes against the given include roots. preamble, if
// not empty, opens the header (Preamble for out-of-tree builds).
func GenerateFrom(roots []string, probes []Probe, preamble string) ([]byte, error) {
	if len(roots) == 0 {
		return nil, ErrNoHeaders
	}
	var b bytes.Buffer
	b.WriteString("/* SPDX-License-Identifier: GPL-2.0 */\n")
	b.WriteString("/* Generated by wgbuild from probes of the target's headers. Do not edit. */\n")
	b.WriteString("#ifndef _WG_COMPAT_H\n#define _WG_COMPAT_H\n\n")
	if preamble != "" {
		b.WriteString(preamble + "\n\n")
	}
	for _, p := range probes {
		if p.Stub != "" {
			continue
		}
		found, err := probe(roots, p)
		if err != nil {
			return nil, err
		}
		switch {
		case found:
			fmt.Fprintf(&b, "/* %s: present */\n\n", p.Name)
		case p.Fallback == "":
			fmt.Fprintf(&b, "/* %s: missing; lines dropped from the sources */\n\n", p.Name)
		default:
			// The header comes first: a macro named like a function
			// the header declares must not rewrite the declaration.
			fmt.Fprintf(&b, "/* %s: missing */\n#include <%s>\n\n%s\n\n", p.Name, p.Header, p.Fallback)
		}
	}
	b.WriteString("#endif /* _WG_COMPAT_H */\n")
	return b.Bytes(), nil
}

func probe(roots []string, p Probe) (bool, error) {
	var read bool
	for _, r := range roots {
		data, err := os.ReadFile(filepath.Join(r, p.Header))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("compat: probe %s: %w", p.Name, err)
		}
		read = true
		if p.Pattern.Match(data) {
			return true, nil
		}
	}
	if !read && p.Optional {
		return true, nil
	}
	if !read {
		return false, fmt.Errorf("compat: probe %s: %s not found under %s: %w",
			p.Name, p.Header, strings.Join(roots, ", "), ErrNoHeaders)
	}
	return false, nil
}
