// SPDX-License-Identifier: GPL-2.0
/*
 * Peers by public key, for configuration and for handshake responders, and
 * handshakes and sessions by the local index that the peer's messages carry.
 */

#include "peerlookup.h"
#include "peer.h"

#include <linux/hash.h>
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
	found = wg_peer_try_get(found);
	rcu_read_unlock_bh();
	return found;
}

struct wg_index_hashtable *wg_index_hashtable_alloc(void)
{
	struct wg_index_hashtable *table = kvmalloc(sizeof(*table),
						     GFP_KERNEL);

	if (!table)
		return NULL;
	hash_init(table->buckets);
	spin_lock_init(&table->lock);
	return table;
}

static struct hlist_head *index_bucket(struct wg_index_hashtable *table,
				       __le32 index)
{
	return &table->buckets[hash_32((__force u32)index,
				       HASH_BITS(table->buckets))];
}

static bool index_taken(struct wg_index_hashtable *table, __le32 index)
{
	struct wg_index_entry *iter;

	hlist_for_each_entry_rcu(iter, index_bucket(table, index), node,
				 lockdep_is_held(&table->lock)) {
		if (iter->index == index)
			return true;
	}
	return false;
}

/**
 * wg_index_hashtable_insert - give an entry a fresh random index
 * @table: the device's table
 * @entry: the entry, with its peer and kind set; removed first if listed
 *
 * Return: the index, also stored in @entry.
 */
__le32 wg_index_hashtable_insert(struct wg_index_hashtable *table,
				 struct wg_index_entry *entry)
{
	__le32 index;

	spin_lock_bh(&table->lock);
	hlist_del_init_rcu(&entry->node);
	/* With 2^32 values and at most a few per peer, this ends quickly. */
	do {
		index = (__force __le32)get_random_u32();
	} while (index_taken(table, index));
	entry->index = index;
	hlist_add_head_rcu(&entry->node, index_bucket(table, index));
	spin_unlock_bh(&table->lock);
	return index;
}

/**
 * wg_index_hashtable_replace - hand an index over to another entry
 * @table: the device's table
 * @old: the listed entry that gives up its index
 * @new: the entry that takes it
 *
 * A session takes over the index of the handshake it came from, which the
 * peer already knows.
 *
 * Return: false if @old was no longer listed.
 */
bool wg_index_hashtable_replace(struct wg_index_hashtable *table,
				struct wg_index_entry *old,
				struct wg_index_entry *new)
{
	bool listed;

	spin_lock_bh(&table->lock);
	listed = !hlist_unhashed(&old->node);
	if (listed) {
		new->index = old->index;
		hlist_replace_rcu(&old->node, &new->node);
		INIT_HLIST_NODE(&old->node);
	}
	spin_unlock_bh(&table->lock);
	return listed;
}

void wg_index_hashtable_remove(struct wg_index_hashtable *table,
			       struct wg_index_entry *entry)
{
	spin_lock_bh(&table->lock);
	hlist_del_init_rcu(&entry->node);
	spin_unlock_bh(&table->lock);
}

/**
 * wg_index_hashtable_lookup_rcu - find an entry, under rcu_read_lock_bh()
 * @table: the device's table
 * @kinds: the kinds of entry acceptable, a mask of enum wg_index_kind
 * @index: the index from the message
 *
 * Return: the entry, valid until the read side critical section ends.
 */
struct wg_index_entry *
wg_index_hashtable_lookup_rcu(struct wg_index_hashtable *table,
			      unsigned int kinds, __le32 index)
{
	struct wg_index_entry *iter;

	hlist_for_each_entry_rcu(iter, index_bucket(table, index), node,
				 rcu_read_lock_bh_held()) {
		if (iter->index == index && (iter->kind & kinds))
			return iter;
	}
	return NULL;
}

/**
 * wg_index_hashtable_lookup - find what a received index names
 * @table: the device's table
 * @kinds: the kinds of entry acceptable, a mask of enum wg_index_kind
 * @index: the index from the message
 * @peer: receives a reference to the entry's peer
 *
 * Return: the entry, valid while the reference is held, or NULL.
 */
struct wg_index_entry *
wg_index_hashtable_lookup(struct wg_index_hashtable *table,
			  unsigned int kinds, __le32 index,
			  struct wg_peer **peer)
{
	struct wg_index_entry *found;

	rcu_read_lock_bh();
	found = wg_index_hashtable_lookup_rcu(table, kinds, index);
	if (found) {
		*peer = wg_peer_try_get(found->peer);
		if (!*peer)
			found = NULL;
	}
	rcu_read_unlock_bh();
	return found;
}
