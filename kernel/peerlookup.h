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
#include <linux/spinlock.h>

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

/**
 * enum wg_index_kind - what a receiver index names
 * @WG_INDEX_HANDSHAKE: a handshake this side started or answered
 * @WG_INDEX_KEYPAIR: a session's keys
 */
enum wg_index_kind {
	WG_INDEX_HANDSHAKE = 1U << 0,
	WG_INDEX_KEYPAIR = 1U << 1,
};

/**
 * struct wg_index_entry - a local index that remote messages address
 * @node: entry in the table's bucket
 * @peer: the peer the index belongs to
 * @index: the random index, as sent on the wire
 * @kind: what the entry is embedded in
 */
struct wg_index_entry {
	struct hlist_node node;
	struct wg_peer *peer;
	__le32 index;
	enum wg_index_kind kind;
};

/**
 * struct wg_index_hashtable - the device's local indices
 * @buckets: hash buckets; indices are random, so no keyed hash is needed
 * @lock: serialises writers; readers use RCU
 */
struct wg_index_hashtable {
	DECLARE_HASHTABLE(buckets, 13);
	spinlock_t lock; /* see above */
};

struct wg_index_hashtable *wg_index_hashtable_alloc(void);
__le32 wg_index_hashtable_insert(struct wg_index_hashtable *table,
				 struct wg_index_entry *entry);
bool wg_index_hashtable_replace(struct wg_index_hashtable *table,
				struct wg_index_entry *old,
				struct wg_index_entry *new);
void wg_index_hashtable_remove(struct wg_index_hashtable *table,
			       struct wg_index_entry *entry);
struct wg_index_entry *
wg_index_hashtable_lookup_rcu(struct wg_index_hashtable *table,
			      unsigned int kinds, __le32 index);
struct wg_index_entry *
wg_index_hashtable_lookup(struct wg_index_hashtable *table,
			  unsigned int kinds, __le32 index,
			  struct wg_peer **peer);

#endif /* _WG_PEERLOOKUP_H */
