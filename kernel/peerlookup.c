// SPDX-License-Identifier: GPL-2.0
/*
 * Peers by public key, for configuration and for handshake responders.
 */

#include "peerlookup.h"
#include "peer.h"

#include <linux/random.h>
#include <linux/slab.h>

static struct hlist_head *bucket_of(struct wg_pubkey_hashtable *table,
				    const u8 pubkey[NOISE_PUBLIC_KEY_LEN])
{
	u64 hash = siphash(pubkey, NOISE_PUBLIC_KEY_LEN, &table->key);

	return &table->buckets[hash & (HASH_SIZE(table->buckets) - 1)];
}

struct wg_pubkey_hashtable *wg_pubkey_hashtable_alloc(void)
{
	struct wg_pubkey_hashtable *table = kvmalloc(sizeof(*table),
						      GFP_KERNEL);

	if (!table)
		return NULL;
	hash_init(table->buckets);
	get_random_bytes(&table->key, sizeof(table->key));
	return table;
}

void wg_pubkey_hashtable_add(struct wg_pubkey_hashtable *table,
			     struct wg_peer *peer)
{
	lockdep_assert_held(&peer->device->device_update_lock);
	hlist_add_head_rcu(&peer->pubkey_hash,
			   bucket_of(table, peer->handshake.remote_static));
}

void wg_pubkey_hashtable_remove(struct wg_pubkey_hashtable *table,
				struct wg_peer *peer)
{
	lockdep_assert_held(&peer->device->device_update_lock);
	hlist_del_init_rcu(&peer->pubkey_hash);
}

/**
 * wg_pubkey_hashtable_lookup - find a peer by public key
 * @table: the device's table
 * @pubkey: the key
 *
 * Return: a reference to the peer, or NULL.
 */
struct wg_peer *
wg_pubkey_hashtable_lookup(struct wg_pubkey_hashtable *table,
			   const u8 pubkey[NOISE_PUBLIC_KEY_LEN])
{
	struct wg_peer *iter, *found = NULL;

	rcu_read_lock_bh();
	hlist_for_each_entry_rcu(iter, bucket_of(table, pubkey), pubkey_hash,
				 rcu_read_lock_bh_held()) {
		if (!memcmp(pubkey, iter->handshake.remote_static,
			    NOISE_PUBLIC_KEY_LEN)) {
			found = iter;
			break;
		}
	}
	found = wg_peer_get_maybe_zero(found);
	rcu_read_unlock_bh();
	return found;
}
