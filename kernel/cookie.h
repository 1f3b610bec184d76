/* SPDX-License-Identifier: GPL-2.0 */
/*
 * MACs of handshake messages: mac1 proves the sender knows our public key;
 * mac2 (with cookies, under load) will prove it owns its source address.
 */

#ifndef _WG_COOKIE_H
#define _WG_COOKIE_H

#include "messages.h"

#include <linux/rwsem.h>

struct noise_static_identity;

/**
 * struct wg_cookie_checker - what the device checks received MACs with
 * @mac1_key: BLAKE2s("mac1----" || our public key)
 * @lock: the key changes with the device's identity
 */
struct wg_cookie_checker {
	u8 mac1_key[NOISE_SYMMETRIC_KEY_LEN];
	struct rw_semaphore lock;
};

/**
 * struct wg_cookie - what we compute MACs to a peer with
 * @mac1_key: BLAKE2s("mac1----" || the peer's public key); fixed
 */
struct wg_cookie {
	u8 mac1_key[NOISE_SYMMETRIC_KEY_LEN];
};

void wg_cookie_checker_init(struct wg_cookie_checker *checker);
void wg_cookie_checker_precompute(struct wg_cookie_checker *checker,
				  struct noise_static_identity *identity);
void wg_cookie_init(struct wg_cookie *cookie, const u8 *public_key);

void wg_cookie_add_macs(struct wg_cookie *cookie, void *msg, size_t len);
bool wg_cookie_mac1_valid(struct wg_cookie_checker *checker, const void *msg,
			  size_t len);

#endif /* _WG_COOKIE_H */
