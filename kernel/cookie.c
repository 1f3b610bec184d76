// SPDX-License-Identifier: GPL-2.0
/*
 * The MACs that end every handshake message: mac1 over the message before
 * it, keyed by the receiver's public key, and mac2 over the message and
 * mac1, keyed by a cookie the receiver handed out. Until the cookie
 * mechanism is in place mac2 is sent as zeros, which receivers accept when
 * they are not under load.
 */

#include "cookie.h"
#include "noise.h"

#include <crypto/algapi.h>

static const u8 mac1_label[8] = "mac1----";

static void mac1_key(u8 key[NOISE_SYMMETRIC_KEY_LEN], const u8 *public_key)
{
	struct blake2s_state state;

	blake2s_init(&state, NOISE_SYMMETRIC_KEY_LEN);
	blake2s_update(&state, mac1_label, sizeof(mac1_label));
	blake2s_update(&state, public_key, NOISE_PUBLIC_KEY_LEN);
	blake2s_final(&state, key);
}

/* MAC(key, data): BLAKE2s keyed with @key, 16 bytes out. */
static void mac(u8 out[WG_MAC_LEN], const u8 key[NOISE_SYMMETRIC_KEY_LEN],
		const void *data, size_t len)
{
	blake2s(out, data, key, WG_MAC_LEN, len, NOISE_SYMMETRIC_KEY_LEN);
}

void wg_cookie_checker_init(struct wg_cookie_checker *checker)
{
	memset(checker, 0, sizeof(*checker));
	init_rwsem(&checker->lock);
}

/* Called whenever the device's key pair changes. */
void wg_cookie_checker_precompute(struct wg_cookie_checker *checker,
				  struct noise_static_identity *identity)
{
	down_write(&checker->lock);
	down_read(&identity->lock);
	if (identity->has_identity)
		mac1_key(checker->mac1_key, identity->static_public);
	else
		memzero_explicit(checker->mac1_key, NOISE_SYMMETRIC_KEY_LEN);
	up_read(&identity->lock);
	up_write(&checker->lock);
}

void wg_cookie_init(struct wg_cookie *cookie, const u8 *public_key)
{
	mac1_key(cookie->mac1_key, public_key);
}

/**
 * wg_cookie_add_macs - fill in the MACs that end a handshake message
 * @cookie: the receiving peer's MAC state
 * @msg: the message
 * @len: its length, the two MACs included
 */
void wg_cookie_add_macs(struct wg_cookie *cookie, void *msg, size_t len)
{
	u8 *mac1 = (u8 *)msg + len - 2 * WG_MAC_LEN;

	mac(mac1, cookie->mac1_key, msg, len - 2 * WG_MAC_LEN);
	memset(mac1 + WG_MAC_LEN, 0, WG_MAC_LEN);
}

/**
 * wg_cookie_mac1_valid - check the mac1 of a received handshake message
 * @checker: the device's MAC state
 * @msg: the message
 * @len: its length, the two MACs included
 *
 * Return: whether mac1 matches, compared in constant time.
 */
bool wg_cookie_mac1_valid(struct wg_cookie_checker *checker, const void *msg,
			  size_t len)
{
	const u8 *mac1 = (const u8 *)msg + len - 2 * WG_MAC_LEN;
	u8 computed[WG_MAC_LEN];
	bool valid;

	down_read(&checker->lock);
	mac(computed, checker->mac1_key, msg, len - 2 * WG_MAC_LEN);
	up_read(&checker->lock);
	valid = !crypto_memneq(computed, mac1, WG_MAC_LEN);
	memzero_explicit(computed, sizeof(computed));
	return valid;
}
