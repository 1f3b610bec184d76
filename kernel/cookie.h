/* SPDX-License-Identifier: GPL-2.0 */
/*
 * MACs and cookies of handshake messages: mac1 proves that the sender
 * knows our public key; under load, mac2 proves that it received a cookie
 * at its source address, which costs a round trip to forge.
 */

#ifndef _WG_COOKIE_H
#define _WG_COOKIE_H

#include "messages.h"

#include <linux/rwsem.h>
#include <linux/spinlock.h>

struct noise_static_identity;
struct sk_buff;
struct wg_device;
struct wg_peer;

/**
 * struct wg_cookie_checker - what the device checks received MACs with
 * @mac1_key: BLAKE2s("mac1----" || our public key)
 * @cookie_key: BLAKE2s("cookie--" || our public key), seals cookie replies
 * @secret: the secret cookies are MACs with; replaced every
 *	WG_COOKIE_SECRET_MAX_AGE
 * @secret_birth: when @secret was made, ktime_get_coarse_boottime_ns()
 * @lock: the keys change with the device's identity, the secret with time;
 *	a spinning lock, as the receive path checks mac1 in softirq context
 */
struct wg_cookie_checker {
	u8 mac1_key[NOISE_SYMMETRIC_KEY_LEN];
	u8 cookie_key[NOISE_SYMMETRIC_KEY_LEN];
	u8 secret[NOISE_HASH_LEN];
	u64 secret_birth;
	rwlock_t lock;
};

/**
 * struct wg_cookie - what we compute MACs to a peer with
 * @mac1_key: BLAKE2s("mac1----" || the peer's public key); fixed
 * @cookie_key: BLAKE2s("cookie--" || the peer's public key); fixed
 * @cookie: the last cookie the peer sent us
 * @cookie_birth: when it arrived; 0 for none
 * @last_mac1: the mac1 of our last handshake message to the peer, which a
 *	cookie reply must be bound to
 * @have_sent_mac1: @last_mac1 awaits a reply; one reply is taken per
 *	message, so that a replayed one cannot renew the cookie
 * @lock: all of the above but the fixed keys
 */
struct wg_cookie {
	u8 mac1_key[NOISE_SYMMETRIC_KEY_LEN];
	u8 cookie_key[NOISE_SYMMETRIC_KEY_LEN];
	u8 cookie[WG_MAC_LEN];
	u64 cookie_birth;
	u8 last_mac1[WG_MAC_LEN];
	bool have_sent_mac1;
	spinlock_t lock; /* see above */
};

void wg_cookie_checker_init(struct wg_cookie_checker *checker);
void wg_cookie_checker_precompute(struct wg_cookie_checker *checker,
				  struct noise_static_identity *identity);
void wg_cookie_init(struct wg_cookie *cookie, const u8 *public_key);

void wg_cookie_add_macs(struct wg_cookie *cookie, void *msg, size_t len);
bool wg_cookie_mac1_valid(struct wg_cookie_checker *checker, const void *msg,
			  size_t len);
bool wg_cookie_mac2_valid(struct wg_cookie_checker *checker,
			  struct sk_buff *skb, const void *msg, size_t len);
void wg_cookie_send_reply(struct wg_device *wg, struct sk_buff *skb,
			  const void *msg, size_t len);
bool wg_cookie_consume_reply(struct wg_device *wg,
			     const struct wg_msg_cookie_reply *reply);

#endif /* _WG_COOKIE_H */
