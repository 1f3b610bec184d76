// SPDX-License-Identifier: GPL-2.0
/*
 * The MACs that end every handshake message, and cookies.
 *
 * mac1 = MAC(BLAKE2s("mac1----" || receiver's public key), message before
 * mac1), always checked. Under load a responder also wants
 * mac2 = MAC(cookie, message before mac2), where the cookie is
 * MAC(secret, source address and port): a sender without one gets a cookie
 * reply instead of a handshake, sealed with XChaCha20-Poly1305 under
 * BLAKE2s("cookie--" || responder's public key) and bound to the mac1 it
 * answers, and must come back with it. The secret changes every two
 * minutes, so cookies expire.
 */

#include "cookie.h"
#include "device.h"
#include "noise.h"
#include "peer.h"
#include "peerlookup.h"
#include "socket.h"

#include <crypto/algapi.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/ktime.h>
#include <linux/random.h>
#include <linux/udp.h>

static const u8 mac1_label[8] = "mac1----";
static const u8 cookie_label[8] = "cookie--";

static void labelled_key(u8 key[NOISE_SYMMETRIC_KEY_LEN], const u8 label[8],
			 const u8 *public_key)
{
	struct blake2s_ctx state;

	blake2s_init(&state, NOISE_SYMMETRIC_KEY_LEN);
	blake2s_update(&state, label, 8);
	blake2s_update(&state, public_key, NOISE_PUBLIC_KEY_LEN);
	blake2s_final(&state, key);
}

/* MAC(key, data): BLAKE2s keyed with @key, 16 bytes out. */
static void mac(u8 out[WG_MAC_LEN], const u8 *key, size_t key_len,
		const void *data, size_t len)
{
	blake2s(key, key_len, data, len, out, WG_MAC_LEN);
}

static bool expired(u64 birth, u64 max_age_s)
{
	u64 age = ktime_get_coarse_boottime_ns() - birth;

	return !birth || age > max_age_s * NSEC_PER_SEC;
}

void wg_cookie_checker_init(struct wg_cookie_checker *checker)
{
	memset(checker, 0, sizeof(*checker));
	rwlock_init(&checker->lock);
}

/* Called whenever the device's key pair changes. */
void wg_cookie_checker_precompute(struct wg_cookie_checker *checker,
				  struct noise_static_identity *identity)
{
	u8 mac1_key[NOISE_SYMMETRIC_KEY_LEN] = {};
	u8 cookie_key[NOISE_SYMMETRIC_KEY_LEN] = {};

	down_read(&identity->lock);
	if (identity->has_identity) {
		labelled_key(mac1_key, mac1_label, identity->static_public);
		labelled_key(cookie_key, cookie_label, identity->static_public);
	}
	up_read(&identity->lock);

	/* The receive path checks mac1 in softirq context. */
	write_lock_bh(&checker->lock);
	memcpy(checker->mac1_key, mac1_key, NOISE_SYMMETRIC_KEY_LEN);
	memcpy(checker->cookie_key, cookie_key, NOISE_SYMMETRIC_KEY_LEN);
	write_unlock_bh(&checker->lock);
	memzero_explicit(mac1_key, sizeof(mac1_key));
	memzero_explicit(cookie_key, sizeof(cookie_key));
}

void wg_cookie_init(struct wg_cookie *cookie, const u8 *public_key)
{
	memset(cookie, 0, sizeof(*cookie));
	spin_lock_init(&cookie->lock);
	labelled_key(cookie->mac1_key, mac1_label, public_key);
	labelled_key(cookie->cookie_key, cookie_label, public_key);
}

/**
 * wg_cookie_add_macs - fill in the MACs that end a handshake message
 * @cookie: the receiving peer's MAC state
 * @msg: the message
 * @len: its length, the two MACs included
 *
 * mac2 is zeros unless the peer sent a cookie that is still fresh.
 */
void wg_cookie_add_macs(struct wg_cookie *cookie, void *msg, size_t len)
{
	u8 *mac1 = (u8 *)msg + len - 2 * WG_MAC_LEN;
	u8 *mac2 = mac1 + WG_MAC_LEN;

	mac(mac1, cookie->mac1_key, NOISE_SYMMETRIC_KEY_LEN, msg,
	    len - 2 * WG_MAC_LEN);
	spin_lock_bh(&cookie->lock);
	memcpy(cookie->last_mac1, mac1, WG_MAC_LEN);
	cookie->have_sent_mac1 = true;
	if (!expired(cookie->cookie_birth,
		     WG_COOKIE_SECRET_MAX_AGE - WG_COOKIE_SECRET_LATENCY))
		mac(mac2, cookie->cookie, WG_MAC_LEN, msg, len - WG_MAC_LEN);
	else
		memset(mac2, 0, WG_MAC_LEN);
	spin_unlock_bh(&cookie->lock);
}

/* The cookie of the message's source: MAC(secret, address || port). */
static void make_cookie(struct wg_cookie_checker *checker,
			struct sk_buff *skb, u8 cookie[WG_MAC_LEN])
{
	struct blake2s_ctx state;

	if (expired(READ_ONCE(checker->secret_birth),
		    WG_COOKIE_SECRET_MAX_AGE)) {
		write_lock_bh(&checker->lock);
		if (expired(checker->secret_birth, WG_COOKIE_SECRET_MAX_AGE)) {
			get_random_bytes(checker->secret, NOISE_HASH_LEN);
			WRITE_ONCE(checker->secret_birth,
				   ktime_get_coarse_boottime_ns());
		}
		write_unlock_bh(&checker->lock);
	}

	read_lock_bh(&checker->lock);
	blake2s_init_key(&state, WG_MAC_LEN, checker->secret, NOISE_HASH_LEN);
	if (ip_hdr(skb)->version == 4)
		blake2s_update(&state, (u8 *)&ip_hdr(skb)->saddr,
			       sizeof(struct in_addr));
	else
		blake2s_update(&state, (u8 *)&ipv6_hdr(skb)->saddr,
			       sizeof(struct in6_addr));
	blake2s_update(&state, (u8 *)&udp_hdr(skb)->source, sizeof(__be16));
	blake2s_final(&state, cookie);
	read_unlock_bh(&checker->lock);
}

/**
 * wg_cookie_mac1_valid - check the mac1 of a received handshake message
 * @checker: the device's MAC state
 * @msg: the message, an initiation or a response
 * @len: its length, the two MACs included
 *
 * mac1 proves that the sender knows our public key. Compared in constant
 * time; cheap enough for softirq context.
 *
 * Return: whether mac1 is right.
 */
bool wg_cookie_mac1_valid(struct wg_cookie_checker *checker, const void *msg,
			  size_t len)
{
	const u8 *mac1 = (const u8 *)msg + len - 2 * WG_MAC_LEN;
	u8 computed[WG_MAC_LEN];
	bool valid;

	read_lock_bh(&checker->lock);
	mac(computed, checker->mac1_key, NOISE_SYMMETRIC_KEY_LEN, msg,
	    len - 2 * WG_MAC_LEN);
	read_unlock_bh(&checker->lock);
	valid = !crypto_memneq(computed, mac1, WG_MAC_LEN);
	memzero_explicit(computed, sizeof(computed));
	return valid;
}

/**
 * wg_cookie_mac2_valid - check the mac2 of a received handshake message
 * @checker: the device's MAC state
 * @skb: the message's packet, for its source
 * @msg: the message, its mac1 already checked
 * @len: its length, the two MACs included
 *
 * mac2 proves that the sender received a cookie for its source address
 * lately: asked for only under load.
 *
 * Return: whether mac2 is right.
 */
bool wg_cookie_mac2_valid(struct wg_cookie_checker *checker,
			  struct sk_buff *skb, const void *msg, size_t len)
{
	const u8 *mac2 = (const u8 *)msg + len - WG_MAC_LEN;
	u8 computed[WG_MAC_LEN], cookie[WG_MAC_LEN];
	bool valid;

	make_cookie(checker, skb, cookie);
	mac(computed, cookie, WG_MAC_LEN, msg, len - WG_MAC_LEN);
	valid = !crypto_memneq(computed, mac2, WG_MAC_LEN);
	memzero_explicit(cookie, sizeof(cookie));
	memzero_explicit(computed, sizeof(computed));
	return valid;
}

/**
 * wg_cookie_send_reply - answer a handshake message with a cookie
 * @wg: the device, under load
 * @skb: the message's packet; the reply goes to its source
 * @msg: the message, an initiation or a response
 * @len: its length
 */
void wg_cookie_send_reply(struct wg_device *wg, struct sk_buff *skb,
			  const void *msg, size_t len)
{
	const u8 *mac1 = (const u8 *)msg + len - 2 * WG_MAC_LEN;
	struct wg_msg_cookie_reply reply;
	struct wg_endpoint to;
	u8 cookie[WG_MAC_LEN];

	reply.type = cpu_to_le32(WG_MSG_COOKIE_REPLY);
	/* Both handshake messages carry their sender's index second. */
	reply.receiver = ((const __le32 *)msg)[1];
	get_random_bytes(reply.nonce, sizeof(reply.nonce));
	make_cookie(&wg->cookie_checker, skb, cookie);
	read_lock_bh(&wg->cookie_checker.lock);
	xchacha20poly1305_encrypt(reply.sealed_cookie, cookie, WG_MAC_LEN,
				  mac1, WG_MAC_LEN, reply.nonce,
				  wg->cookie_checker.cookie_key);
	read_unlock_bh(&wg->cookie_checker.lock);
	memzero_explicit(cookie, sizeof(cookie));

	wg_endpoint_of_skb(skb, &to);
	wg_socket_send_buffer_to_endpoint(wg, &to, &reply, sizeof(reply));
}

/*
 * Takes the cookie of a reply to the last message we sent to @theirs, once:
 * a reply to no message, or a second one, is refused.
 */
static bool open_reply(struct wg_cookie *theirs,
		       const struct wg_msg_cookie_reply *reply)
{
	u8 cookie[WG_MAC_LEN];
	bool opened;

	spin_lock_bh(&theirs->lock);
	opened = theirs->have_sent_mac1 &&
		 xchacha20poly1305_decrypt(cookie, reply->sealed_cookie,
					   sizeof(reply->sealed_cookie),
					   theirs->last_mac1, WG_MAC_LEN,
					   reply->nonce, theirs->cookie_key);
	if (opened) {
		memcpy(theirs->cookie, cookie, WG_MAC_LEN);
		theirs->cookie_birth = ktime_get_coarse_boottime_ns();
		theirs->have_sent_mac1 = false;
	}
	spin_unlock_bh(&theirs->lock);
	memzero_explicit(cookie, sizeof(cookie));
	return opened;
}

/**
 * wg_cookie_consume_reply - take the cookie a peer under load sent us
 * @wg: the device
 * @reply: the cookie reply
 *
 * Return: whether it was for a handshake or session of ours and opened.
 */
bool wg_cookie_consume_reply(struct wg_device *wg,
			     const struct wg_msg_cookie_reply *reply)
{
	struct wg_index_entry *entry;
	struct wg_peer *peer;
	bool opened;

	entry = wg_index_hashtable_lookup(wg->index_hashtable,
					  WG_INDEX_HANDSHAKE | WG_INDEX_KEYPAIR,
					  reply->receiver, &peer);
	if (!entry)
		return false;
	opened = open_reply(&peer->cookie, reply);
	if (!opened)
		net_dbg_ratelimited("%s: cookie reply that does not open\n",
				    wg->dev->name);
	wg_peer_put(peer);
	return opened;
}

#ifdef CONFIG_WIREGUARD_KUNIT_TEST
#include "tests/cookie_kunit.c"
#endif
