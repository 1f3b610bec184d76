// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of sealing a data message: the known message of tests/kat.h,
 * made by an independent implementation, byte for byte; and the padding,
 * to a multiple of 16 bytes but never past the MTU, opened again. Included
 * at the end of send.c.
 */

#include <kunit/test.h>

#include "kat.h"

/* A packet of @len bytes of @data, with the room sealing needs. */
static struct sk_buff *send_test_packet(const u8 *data, unsigned int len)
{
	struct sk_buff *skb;

	skb = alloc_skb(WG_DATA_HEADROOM + len + MESSAGE_PADDING_MULTIPLE +
			NOISE_AUTHTAG_LEN, GFP_KERNEL);
	if (skb) {
		skb_reserve(skb, WG_DATA_HEADROOM);
		skb_put_data(skb, data, len);
	}
	return skb;
}

/* The initiator's first packet of the known session: the known message. */
static void send_test_kat_data(struct kunit *test)
{
	struct noise_keypair *kp;
	struct sk_buff *skb;

	kp = kunit_kzalloc(test, sizeof(*kp), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, kp);
	memcpy(kp->send_key, wg_kat.initiator_send, NOISE_SYMMETRIC_KEY_LEN);
	kp->remote_index = cpu_to_le32(wg_kat.responder_index);
	skb = send_test_packet(wg_kat.data_packet, sizeof(wg_kat.data_packet));
	KUNIT_ASSERT_NOT_NULL(test, skb);

	KUNIT_EXPECT_TRUE(test, make_writable(skb));
	seal_packet(skb, kp, wg_kat.data_counter, 1420);
	KUNIT_EXPECT_EQ(test, skb->len, sizeof(wg_kat.data_message));
	if (skb->len == sizeof(wg_kat.data_message))
		KUNIT_EXPECT_MEMEQ(test, skb->data, wg_kat.data_message,
				   skb->len);
	kfree_skb(skb);
}

struct padding_case {
	unsigned int len, mtu, padded;
};

/* Padded to 16 bytes, up to the MTU and no further; it opens again. */
static void send_test_padding(struct kunit *test)
{
	static const struct padding_case cases[] = {
		{ 0, 1420, 0 },		/* a keepalive */
		{ 1, 1420, 16 },
		{ 16, 1420, 16 },
		{ 17, 1420, 32 },
		{ 1404, 1420, 1408 },
		{ 1409, 1420, 1420 },	/* 1424 would pass the MTU */
		{ 1420, 1420, 1420 },
		{ 1279, 1280, 1280 },
	};
	u8 key[NOISE_SYMMETRIC_KEY_LEN], *data;
	struct noise_keypair *kp;
	unsigned int i;

	kp = kunit_kzalloc(test, sizeof(*kp), GFP_KERNEL);
	data = kunit_kzalloc(test, 1420, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, kp);
	KUNIT_ASSERT_NOT_NULL(test, data);
	get_random_bytes(key, sizeof(key));
	memcpy(kp->send_key, key, sizeof(key));
	memset(data, 0xa5, 1420);

	for (i = 0; i < ARRAY_SIZE(cases); ++i) {
		const struct padding_case *c = &cases[i];
		unsigned int want = sizeof(struct wg_msg_data) + c->padded +
				    NOISE_AUTHTAG_LEN;
		struct wg_msg_data *msg;
		struct sk_buff *skb;
		bool opened;

		skb = send_test_packet(data, c->len);
		KUNIT_ASSERT_NOT_NULL(test, skb);
		seal_packet(skb, kp, i, c->mtu);
		KUNIT_EXPECT_EQ_MSG(test, skb->len, want,
				    "a packet of %u bytes, MTU %u", c->len,
				    c->mtu);
		if (skb->len != want) {
			kfree_skb(skb);
			continue;
		}
		msg = (struct wg_msg_data *)skb->data;
		KUNIT_EXPECT_EQ(test, le32_to_cpu(msg->type), WG_MSG_DATA);
		KUNIT_EXPECT_EQ(test, le64_to_cpu(msg->counter), (u64)i);
		opened = chacha20poly1305_decrypt(msg->sealed_packet,
						  msg->sealed_packet,
						  c->padded + NOISE_AUTHTAG_LEN,
						  NULL, 0, i, key);
		KUNIT_EXPECT_TRUE_MSG(test, opened, "a packet of %u bytes",
				      c->len);
		if (opened) {
			KUNIT_EXPECT_MEMEQ(test, msg->sealed_packet, data,
					   c->len);
			KUNIT_EXPECT_NULL_MSG(test,
					      memchr_inv(msg->sealed_packet +
							 c->len, 0,
							 c->padded - c->len),
					      "padding that is not zeros");
		}
		kfree_skb(skb);
	}
	memzero_explicit(key, sizeof(key));
}

static struct kunit_case send_test_cases[] = {
	KUNIT_CASE(send_test_kat_data),
	KUNIT_CASE(send_test_padding),
	{}
};

static struct kunit_suite send_test_suite = {
	.name = "wireguard-send",
	.test_cases = send_test_cases,
};

kunit_test_suite(send_test_suite);
