// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of the handshake MACs and cookies against known answers
 * (tests/kat.h): mac1 of both handshake messages, the cookie of a source,
 * a cookie reply opened and the mac2 it leads to. Included at the end of
 * cookie.c.
 */

#include <kunit/test.h>

#include "kat.h"

#define INITIATION_LEN sizeof(struct wg_msg_initiation)
#define RESPONSE_LEN sizeof(struct wg_msg_response)

static void public_of(struct kunit *test, u8 public[NOISE_PUBLIC_KEY_LEN],
		      const u8 *private)
{
	KUNIT_ASSERT_TRUE(test, curve25519_generate_public(public, private));
}

/* A sender's MACs: mac1 as known, mac2 zeros without a cookie. */
static void cookie_test_add_mac1(struct kunit *test)
{
	u8 msg[INITIATION_LEN], pub[NOISE_PUBLIC_KEY_LEN];
	struct wg_cookie cookie;

	public_of(test, pub, wg_kat.responder_private);
	wg_cookie_init(&cookie, pub);
	memcpy(msg, wg_kat.initiation, sizeof(msg));
	memset(msg + sizeof(msg) - 2 * WG_MAC_LEN, 0xaa, 2 * WG_MAC_LEN);
	wg_cookie_add_macs(&cookie, msg, sizeof(msg));
	KUNIT_EXPECT_MEMEQ(test, msg, wg_kat.initiation, sizeof(msg));

	public_of(test, pub, wg_kat.initiator_private);
	wg_cookie_init(&cookie, pub);
	memcpy(msg, wg_kat.response, RESPONSE_LEN);
	memset(msg + RESPONSE_LEN - 2 * WG_MAC_LEN, 0xaa, 2 * WG_MAC_LEN);
	wg_cookie_add_macs(&cookie, msg, RESPONSE_LEN);
	KUNIT_EXPECT_MEMEQ(test, msg, wg_kat.response, RESPONSE_LEN);
}

/* A receiver's check of mac1: the known one passes, any change fails. */
static void cookie_test_check_mac1(struct kunit *test)
{
	struct noise_static_identity id;
	struct wg_cookie_checker checker;
	u8 private[NOISE_PUBLIC_KEY_LEN], msg[INITIATION_LEN];
	bool ok;

	wg_noise_static_identity_init(&id);
	memcpy(private, wg_kat.responder_private, sizeof(private));
	ok = wg_noise_set_static_identity_private_key(&id, private);
	KUNIT_ASSERT_TRUE(test, ok);
	wg_cookie_checker_init(&checker);
	wg_cookie_checker_precompute(&checker, &id);

	memcpy(msg, wg_kat.initiation, sizeof(msg));
	KUNIT_EXPECT_TRUE(test, wg_cookie_mac1_valid(&checker, msg,
						     sizeof(msg)));
	msg[8] ^= 1;
	KUNIT_EXPECT_FALSE(test, wg_cookie_mac1_valid(&checker, msg,
						      sizeof(msg)));
	msg[8] ^= 1;
	msg[sizeof(msg) - 2 * WG_MAC_LEN] ^= 1;
	KUNIT_EXPECT_FALSE(test, wg_cookie_mac1_valid(&checker, msg,
						      sizeof(msg)));
	/* mac2 is not covered by mac1. */
	msg[sizeof(msg) - 2 * WG_MAC_LEN] ^= 1;
	msg[sizeof(msg) - 1] ^= 1;
	KUNIT_EXPECT_TRUE(test, wg_cookie_mac1_valid(&checker, msg,
						     sizeof(msg)));
	memzero_explicit(private, sizeof(private));
}

/* A UDP datagram's headers, as the receive path sees them. */
static struct sk_buff *cookie_test_skb(struct kunit *test, const u8 *saddr,
				       u16 sport)
{
	struct sk_buff *skb;
	struct udphdr *udp;
	struct iphdr *ip;

	skb = alloc_skb(sizeof(*ip) + sizeof(*udp), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, skb);
	skb_reset_network_header(skb);
	ip = skb_put_zero(skb, sizeof(*ip));
	ip->version = 4;
	ip->ihl = 5;
	memcpy(&ip->saddr, saddr, sizeof(ip->saddr));
	skb_set_transport_header(skb, sizeof(*ip));
	udp = skb_put_zero(skb, sizeof(*udp));
	udp->source = htons(sport);
	return skb;
}

/* The responder's cookie of a source, and the mac2 made with it. */
static void cookie_test_check_mac2(struct kunit *test)
{
	struct wg_cookie_checker checker;
	u8 msg[INITIATION_LEN], cookie[WG_MAC_LEN];
	struct sk_buff *skb;

	wg_cookie_checker_init(&checker);
	memcpy(checker.secret, wg_kat.cookie_secret, NOISE_HASH_LEN);
	checker.secret_birth = ktime_get_coarse_boottime_ns();
	skb = cookie_test_skb(test, wg_kat.source_addr, wg_kat.source_port);
	make_cookie(&checker, skb, cookie);
	KUNIT_EXPECT_MEMEQ(test, cookie, wg_kat.cookie, WG_MAC_LEN);

	memcpy(msg, wg_kat.initiation, sizeof(msg));
	memcpy(msg + sizeof(msg) - WG_MAC_LEN, wg_kat.mac2, WG_MAC_LEN);
	KUNIT_EXPECT_TRUE(test, wg_cookie_mac2_valid(&checker, skb, msg,
						     sizeof(msg)));
	/* Another source port: another cookie. */
	udp_hdr(skb)->source = htons(wg_kat.source_port + 1);
	KUNIT_EXPECT_FALSE(test, wg_cookie_mac2_valid(&checker, skb, msg,
						      sizeof(msg)));
	kfree_skb(skb);
}

/*
 * The initiator opens the known cookie reply to its initiation, once, then
 * sends the known mac2; a reply bound to another mac1 does not open.
 */
static void cookie_test_reply(struct kunit *test)
{
	const struct wg_msg_cookie_reply *reply =
		(const void *)wg_kat.cookie_reply;
	u8 pub[NOISE_PUBLIC_KEY_LEN], msg[INITIATION_LEN];
	struct wg_cookie cookie;

	public_of(test, pub, wg_kat.responder_private);
	wg_cookie_init(&cookie, pub);
	memcpy(msg, wg_kat.initiation, sizeof(msg));
	wg_cookie_add_macs(&cookie, msg, sizeof(msg));
	KUNIT_ASSERT_TRUE(test, open_reply(&cookie, reply));
	KUNIT_EXPECT_MEMEQ(test, cookie.cookie, wg_kat.cookie, WG_MAC_LEN);
	KUNIT_EXPECT_FALSE_MSG(test, open_reply(&cookie, reply),
			       "one message's cookie reply was taken twice");

	wg_cookie_add_macs(&cookie, msg, sizeof(msg));
	KUNIT_EXPECT_MEMEQ(test, msg + sizeof(msg) - WG_MAC_LEN, wg_kat.mac2,
			   WG_MAC_LEN);

	cookie.last_mac1[0] ^= 1;
	KUNIT_EXPECT_FALSE(test, open_reply(&cookie, reply));
}

static struct kunit_case cookie_test_cases[] = {
	KUNIT_CASE(cookie_test_add_mac1),
	KUNIT_CASE(cookie_test_check_mac1),
	KUNIT_CASE(cookie_test_check_mac2),
	KUNIT_CASE(cookie_test_reply),
	{}
};

static struct kunit_suite cookie_test_suite = {
	.name = "wireguard-cookie",
	.test_cases = cookie_test_cases,
};

kunit_test_suite(cookie_test_suite);
