// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of opening a data message: the known message of tests/kat.h,
 * made by an independent implementation, opens to the known packet and its
 * zero padding; every way it must not open, doesn't; a clone is opened
 * without changing what its sharers see, a message in fragments like a
 * linear one. And the inner packet's length, which takes the padding away.
 * Included at the end of receive.c.
 */

#include <kunit/test.h>

#include "kat.h"

/* Where the test puts the message: after an outer IPv4 and UDP header. */
#define RECV_TEST_OFFSET (sizeof(struct iphdr) + sizeof(struct udphdr))

/* The outer headers, then the first @len bytes of the known message. */
static void recv_test_fill(struct sk_buff *skb, size_t len)
{
	skb_reset_network_header(skb);
	skb_put_zero(skb, RECV_TEST_OFFSET);
	skb_set_transport_header(skb, sizeof(struct iphdr));
	skb_put_data(skb, wg_kat.data_message, len);
}

/* The known data message, as the UDP socket would hand it on. */
static struct sk_buff *recv_test_message(struct kunit *test)
{
	struct sk_buff *skb;

	skb = alloc_skb(RECV_TEST_OFFSET + sizeof(wg_kat.data_message),
			GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, skb);
	recv_test_fill(skb, sizeof(wg_kat.data_message));
	return skb;
}

/* The responder's side of the known session, made just now. */
static struct noise_keypair *recv_test_keypair(struct kunit *test)
{
	struct noise_keypair *kp;

	kp = kunit_kzalloc(test, sizeof(*kp), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, kp);
	memcpy(kp->recv_key, wg_kat.initiator_send, NOISE_SYMMETRIC_KEY_LEN);
	kp->created = ktime_get_coarse_boottime_ns();
	return kp;
}

/* Opened: the known packet, then zeros up to the padded length. */
static void recv_test_expect_plaintext(struct kunit *test, struct sk_buff *skb)
{
	const u8 *plain = skb->data + RECV_TEST_OFFSET +
			  sizeof(struct wg_msg_data);
	size_t padded = sizeof(wg_kat.data_message) -
			sizeof(struct wg_msg_data) - NOISE_AUTHTAG_LEN;

	KUNIT_ASSERT_EQ(test, skb->len,
			RECV_TEST_OFFSET + sizeof(wg_kat.data_message));
	KUNIT_EXPECT_MEMEQ(test, plain, wg_kat.data_packet,
			   sizeof(wg_kat.data_packet));
	KUNIT_EXPECT_NULL_MSG(test,
			      memchr_inv(plain + sizeof(wg_kat.data_packet), 0,
					 padded - sizeof(wg_kat.data_packet)),
			      "padding that is not zeros");
}

static void recv_test_kat_data(struct kunit *test)
{
	struct noise_keypair *kp = recv_test_keypair(test);
	struct sk_buff *skb = recv_test_message(test);

	KUNIT_EXPECT_TRUE(test, open_packet(skb, kp, wg_kat.data_counter));
	recv_test_expect_plaintext(test, skb);
	kfree_skb(skb);
}

struct recv_refusal {
	const char *what;
	int flip;		/* a byte of the message to change, or -1 */
	u64 nonce_delta;	/* added to the known counter */
	bool other_key;		/* the session's other direction's key */
	u64 age_ns;		/* how long ago the session was made */
	bool at_limit;		/* the counter REJECT_AFTER_MESSAGES */
};

/* Each way a message must not open; the last row opens, the control. */
static void recv_test_refusals(struct kunit *test)
{
	static const struct recv_refusal cases[] = {
		{ "a changed ciphertext byte", sizeof(struct wg_msg_data) },
		{ "a changed tag byte", sizeof(wg_kat.data_message) - 1 },
		{ "another counter", -1, 1 },
		{ "the other direction's key", -1, 0, true },
		{ "a session as old as REJECT_AFTER_TIME", -1, 0, false,
		  (u64)WG_REJECT_AFTER_TIME * NSEC_PER_SEC },
		{ "a counter at REJECT_AFTER_MESSAGES", -1, 0, false, 0,
		  true },
		{ "nothing wrong: a session a second short of the limit", -1,
		  0, false, (u64)(WG_REJECT_AFTER_TIME - 1) * NSEC_PER_SEC },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cases); ++i) {
		const struct recv_refusal *c = &cases[i];
		struct noise_keypair *kp = recv_test_keypair(test);
		struct sk_buff *skb = recv_test_message(test);
		bool last = i == ARRAY_SIZE(cases) - 1;
		u64 nonce = c->at_limit ? WG_REJECT_AFTER_MESSAGES :
			    wg_kat.data_counter + c->nonce_delta;
		bool opened;

		if (c->flip >= 0)
			skb->data[RECV_TEST_OFFSET + c->flip] ^= 0x01;
		if (c->other_key)
			memcpy(kp->recv_key, wg_kat.initiator_recv,
			       NOISE_SYMMETRIC_KEY_LEN);
		/* Modular, so also right in a kernel up for less than that. */
		kp->created -= c->age_ns;
		opened = open_packet(skb, kp, nonce);
		KUNIT_EXPECT_EQ_MSG(test, opened, last, "%s", c->what);
		kfree_skb(skb);
	}
}

/* A tap's clone still sees the sealed message; the opened copy is private. */
static void recv_test_clone(struct kunit *test)
{
	struct noise_keypair *kp = recv_test_keypair(test);
	struct sk_buff *skb = recv_test_message(test);
	struct sk_buff *tap = skb_clone(skb, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, tap);
	KUNIT_EXPECT_TRUE(test, open_packet(skb, kp, wg_kat.data_counter));
	recv_test_expect_plaintext(test, skb);
	KUNIT_EXPECT_MEMEQ(test, tap->data + RECV_TEST_OFFSET,
			   wg_kat.data_message, sizeof(wg_kat.data_message));
	kfree_skb(tap);
	kfree_skb(skb);
}

/* The message's second half in a page fragment, as GRO may leave it. */
static void recv_test_fragments(struct kunit *test)
{
	size_t head = sizeof(wg_kat.data_message) / 2;
	size_t tail = sizeof(wg_kat.data_message) - head;
	struct noise_keypair *kp = recv_test_keypair(test);
	struct sk_buff *skb;
	struct page *page;

	skb = alloc_skb(RECV_TEST_OFFSET + head, GFP_KERNEL);
	page = alloc_page(GFP_KERNEL);
	if (!skb || !page) {
		kfree_skb(skb);
		if (page)
			__free_page(page);
		KUNIT_FAIL(test, "out of memory");
		return;
	}
	recv_test_fill(skb, head);
	memcpy(page_address(page), wg_kat.data_message + head, tail);
	skb_add_rx_frag(skb, 0, page, 0, tail, PAGE_SIZE);
	KUNIT_EXPECT_TRUE(test, skb_is_nonlinear(skb));

	KUNIT_EXPECT_TRUE(test, open_packet(skb, kp, wg_kat.data_counter));
	recv_test_expect_plaintext(test, skb);
	kfree_skb(skb);
}

struct inner_len_case {
	const char *what;
	u8 first;		/* version and IHL, or version and class */
	u16 len_field;		/* IPv4 total length or IPv6 payload length */
	unsigned int skb_len;
	unsigned int want;
};

/* The inner packet's own header gives its length, or 0 when it can't. */
static void recv_test_inner_packet_len(struct kunit *test)
{
	static const struct inner_len_case cases[] = {
		{ "IPv4, padded", 0x45, 28, 32, 28 },
		{ "IPv4, exactly", 0x45, 32, 32, 32 },
		{ "IPv4, longer than what came", 0x45, 33, 32, 0 },
		{ "IPv4, shorter than its header", 0x46, 20, 32, 0 },
		{ "IPv4, shorter than an IPv4 header", 0x45, 16, 16, 0 },
		{ "IPv6, padded", 0x60, 8, 64, 48 },
		{ "IPv6, longer than what came", 0x60, 32, 64, 0 },
		{ "IPv6, shorter than an IPv6 header", 0x60, 0, 32, 0 },
		{ "neither IPv4 nor IPv6", 0x55, 20, 32, 0 },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cases); ++i) {
		const struct inner_len_case *c = &cases[i];
		u16 want_protocol;
		__be16 protocol = 0;
		struct sk_buff *skb;
		__be16 *len_field;

		skb = alloc_skb(c->skb_len, GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, skb);
		skb_put_zero(skb, c->skb_len);
		skb_reset_network_header(skb);
		skb->data[0] = c->first;
		len_field = (__be16 *)(skb->data + (c->first >> 4 == 6 ?
				       offsetof(struct ipv6hdr, payload_len) :
				       offsetof(struct iphdr, tot_len)));
		*len_field = htons(c->len_field);
		want_protocol = c->first >> 4 == 6 ? ETH_P_IPV6 : ETH_P_IP;

		KUNIT_EXPECT_EQ_MSG(test, inner_packet_len(skb, &protocol),
				    c->want, "%s", c->what);
		if (c->want)
			KUNIT_EXPECT_EQ_MSG(test, ntohs(protocol),
					    want_protocol, "%s", c->what);
		kfree_skb(skb);
	}
}

static struct kunit_case recv_test_cases[] = {
	KUNIT_CASE(recv_test_kat_data),
	KUNIT_CASE(recv_test_refusals),
	KUNIT_CASE(recv_test_clone),
	KUNIT_CASE(recv_test_fragments),
	KUNIT_CASE(recv_test_inner_packet_len),
	{}
};

static struct kunit_suite recv_test_suite = {
	.name = "wireguard-receive",
	.test_cases = recv_test_cases,
};

kunit_test_suite(recv_test_suite);
