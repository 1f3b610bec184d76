// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of the handshake ratelimiter's token buckets: a burst is
 * allowed, then refused, then one more after a token's worth of time;
 * sources and namespaces are independent; IPv6 sources share a bucket per
 * /64; a clock read before another CPU used the bucket refills nothing.
 * Included at the end of ratelimiter.c.
 */

#include <kunit/test.h>
#include <linux/delay.h>
#include <linux/skbuff.h>

static struct sk_buff *rl_test_skb(struct kunit *test, bool v6, u8 last)
{
	struct sk_buff *skb = alloc_skb(sizeof(struct ipv6hdr), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, skb);
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

static void rl_test_buckets(struct kunit *test)
{
	/* Only compared: a distinct address stands in for another netns. */
	struct net *other_net = (struct net *)&hash_key;
	struct sk_buff *a = rl_test_skb(test, false, 1);
	struct sk_buff *b = rl_test_skb(test, false, 2);
	struct sk_buff *c = rl_test_skb(test, true, 1);
	struct sk_buff *d = rl_test_skb(test, true, 2);
	unsigned int n;
	u64 burst, start;

	burst = ktime_get_coarse_boottime_ns();
	n = allowed_in_a_row(a, &init_net, 2 * WG_RATELIMIT_BURST);
	KUNIT_EXPECT_GE_MSG(test, n, WG_RATELIMIT_BURST, "IPv4 burst");
	KUNIT_EXPECT_LE_MSG(test, n, WG_RATELIMIT_BURST + refills_since(burst),
			    "IPv4 burst");
	KUNIT_EXPECT_EQ_MSG(test, allowed_in_a_row(b, &init_net, 1), 1,
			    "a second IPv4 source");
	KUNIT_EXPECT_EQ_MSG(test, allowed_in_a_row(a, other_net, 1), 1,
			    "the same source in another namespace");

	start = ktime_get_coarse_boottime_ns();
	KUNIT_EXPECT_EQ_MSG(test,
			    allowed_in_a_row(c, &init_net, WG_RATELIMIT_BURST),
			    WG_RATELIMIT_BURST, "an IPv6 source");
	KUNIT_EXPECT_LE_MSG(test, allowed_in_a_row(d, &init_net, 1),
			    refills_since(start),
			    "a second IPv6 source of the same /64");

	/*
	 * a's bucket emptied in its burst: a token's time gives one back, and
	 * no more than the time since then.
	 */
	msleep(TOKEN_COST / NSEC_PER_MSEC + 10);
	n = allowed_in_a_row(a, &init_net, WG_RATELIMIT_BURST + 1);
	KUNIT_EXPECT_GE_MSG(test, n, 1, "refill after one token's time");
	KUNIT_EXPECT_LE_MSG(test, n, refills_since(burst),
			    "refill after one token's time");

	kfree_skb(a);
	kfree_skb(b);
	kfree_skb(c);
	kfree_skb(d);
}

/*
 * A CPU that read the clock before another used the bucket takes its token
 * at an earlier time than the bucket was last used: no time has passed for
 * it, and an empty bucket stays empty.
 */
static void rl_test_clock_behind(struct kunit *test)
{
	const u64 t0 = 10ULL * NSEC_PER_SEC;
	struct bucket b = { .last_ns = t0, .tokens = 0 };

	spin_lock_init(&b.lock);
	KUNIT_EXPECT_FALSE_MSG(test, take_token(&b, t0 - 1),
			       "an empty bucket gave a token to an older clock");
	KUNIT_EXPECT_EQ(test, b.tokens, 0);
	KUNIT_EXPECT_EQ(test, b.last_ns, t0);
	/* Then time passes as usual. */
	KUNIT_EXPECT_FALSE(test, take_token(&b, t0 + TOKEN_COST - 1));
	KUNIT_EXPECT_TRUE(test, take_token(&b, t0 + TOKEN_COST));
}

static struct kunit_case rl_test_cases[] = {
	KUNIT_CASE(rl_test_buckets),
	KUNIT_CASE(rl_test_clock_behind),
	{}
};

static struct kunit_suite rl_test_suite = {
	.name = "wireguard-ratelimiter",
	.test_cases = rl_test_cases,
};

kunit_test_suite(rl_test_suite);
