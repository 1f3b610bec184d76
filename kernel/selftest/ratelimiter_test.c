// SPDX-License-Identifier: GPL-2.0
/*
 * Checks the token buckets: a burst is allowed, then refused, then one
 * more after a token's worth of time; sources and namespaces are
 * independent; IPv6 sources share a bucket per /64.
 */

#ifdef CONFIG_WIREGUARD_DEBUG

#include <linux/delay.h>
#include <linux/skbuff.h>

static struct sk_buff *selftest_skb(bool v6, u8 last)
{
	struct sk_buff *skb = alloc_skb(sizeof(struct ipv6hdr), GFP_KERNEL);

	if (!skb)
		return NULL;
	skb_reset_network_header(skb);
	if (v6) {
		struct ipv6hdr *h = skb_put_zero(skb, sizeof(*h));

		h->version = 6;
		h->saddr.s6_addr[0] = 0x20;
		h->saddr.s6_addr[15] = last;	/* same /64 for any @last */
	} else {
		struct iphdr *h = skb_put_zero(skb, sizeof(*h));

		h->version = 4;
		h->saddr = htonl(0x0a000000 | last);
	}
	return skb;
}

static unsigned int allowed_in_a_row(struct sk_buff *skb, struct net *net,
				     unsigned int tries)
{
	unsigned int allowed = 0;

	while (tries--)
		allowed += wg_ratelimiter_allow(skb, net);
	return allowed;
}

/*
 * The most tokens a bucket can have got back since @start_ns: the buckets
 * read the coarse clock, which lags by up to a tick. On a slow kernel (a
 * debug config under emulation) a check can take longer than a token's
 * time, so the counts allow for what time really passed.
 */
static unsigned int refills_since(u64 start_ns)
{
	u64 ns = ktime_get_coarse_boottime_ns() - start_ns + TICK_NSEC;

	return min_t(u64, div_u64(ns, TOKEN_COST), WG_RATELIMIT_BURST);
}

/**
 * wg_ratelimiter_selftest - check the token buckets
 *
 * Return: true when every check passed.
 */
bool wg_ratelimiter_selftest(void)
{
	/* Only compared: a distinct address stands in for another netns. */
	struct net *other_net = (struct net *)&hash_key;
	struct sk_buff *a = selftest_skb(false, 1), *b = selftest_skb(false, 2);
	struct sk_buff *c = selftest_skb(true, 1), *d = selftest_skb(true, 2);
	const char *failed = NULL;
	unsigned int n;
	u64 burst, start;

	if (!a || !b || !c || !d) {
		failed = "allocation";
		goto out;
	}
	burst = ktime_get_coarse_boottime_ns();
	n = allowed_in_a_row(a, &init_net, 2 * WG_RATELIMIT_BURST);
	if (n < WG_RATELIMIT_BURST ||
	    n > WG_RATELIMIT_BURST + refills_since(burst))
		failed = "IPv4 burst";
	else if (allowed_in_a_row(b, &init_net, 1) != 1)
		failed = "a second IPv4 source";
	else if (allowed_in_a_row(a, other_net, 1) != 1)
		failed = "the same source in another namespace";
	if (failed)
		goto out;
	start = ktime_get_coarse_boottime_ns();
	if (allowed_in_a_row(c, &init_net, WG_RATELIMIT_BURST) !=
	    WG_RATELIMIT_BURST ||
	    allowed_in_a_row(d, &init_net, 1) > refills_since(start)) {
		failed = "IPv6 sources of one /64";
		goto out;
	}
	/*
	 * a's bucket emptied in its burst: a token's time gives one back, and
	 * no more than the time since then.
	 */
	msleep(TOKEN_COST / NSEC_PER_MSEC + 10);
	n = allowed_in_a_row(a, &init_net, WG_RATELIMIT_BURST + 1);
	if (n < 1 || n > refills_since(burst))
		failed = "refill after one token's time";
out:
	kfree_skb(a);
	kfree_skb(b);
	kfree_skb(c);
	kfree_skb(d);
	if (failed) {
		pr_err("ratelimiter self-test: FAIL: %s\n", failed);
		return false;
	}
	pr_info("ratelimiter self-tests: pass\n");
	return true;
}

#endif /* CONFIG_WIREGUARD_DEBUG */
