/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Finding a device's peer by its public key.
 */

#ifndef _WG_PEERLOOKUP_H
#define _WG_PEERLOOKUP_H

#include "messages.h"

#include <linux/hashtable.h>
#include <linux/mutex.h>
#include <linux/siphash.h>

struct wg_peer;

/**
 * struct wg_pubkey_hashtable - peers by public key
 * @buckets: hash buckets, keyed by a siphash of the key with @key
 * @key: random per device, so that remote parties cannot pick colliding keys
 *
 * Readers use RCU; writers hold the device's update lock.
 */
struct wg_pubkey_hashtable {
	DECLARE_HASHTABLE(buckets, 11);
	siphash_key_t key;
};

struct wg_pubkey_hashtable *wg_pubkey_hashtable_alloc(void);
void wg_pubkey_hashtable_add(struct wg_pubkey_hashtable *table,
			     struct wg_peer *peer);
void wg_pubkey_hashtable_remove(struct wg_pubkey_hashtable *table,
				struct wg_peer *peer);
struct wg_peer *
wg_pubkey_hashtable_lookup(struct wg_pubkey_hashtable *table,
			   const u8 pubkey[NOISE_PUBLIC_KEY_LEN]);

#endif /* _WG_PEERLOOKUP_H */
