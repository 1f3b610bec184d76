// SPDX-License-Identifier: GPL-2.0
/*
 * Peer lifetime. A peer is created and removed with the device's update
 * lock held; the device's list holds one reference, and packet paths that
 * find the peer through the allowed IPs or the public key table take their
 * own with wg_peer_try_get() under RCU.
 */

#include "peer.h"
#include "allowedips.h"
#include "peerlookup.h"
#include "queueing.h"
#include "receive.h"
#include "send.h"
#include "timers.h"

#include <linux/slab.h>

/* Numbers peers for the lifetime messages (dynamic debug). */
static atomic64_t peer_ids = ATOMIC64_INIT(0);

/*
 * Peers come from a cache of their own: a peer is a little over 1 KiB,
 * which kmalloc would round up to 2 KiB.
 */
static struct kmem_cache *peer_cache;

int __init wg_peer_init(void)
{
	peer_cache = KMEM_CACHE(wg_peer, 0);
	return peer_cache ? 0 : -ENOMEM;
}

/* After the last peer's RCU callback (see wg_device_uninit()). */
void wg_peer_uninit(void)
{
	kmem_cache_destroy(peer_cache);
}

/**
 * wg_peer_create - add a peer to a device
 * @wg: the device, with its update lock held
 * @public_key: the peer's public key, not yet used by another peer
 * @preshared_key: optional preshared key, or NULL
 *
 * Return: the peer, owned by the device's list, or an ERR_PTR: -E2BIG when
 * the device has MAX_PEERS_PER_DEVICE peers, -ENOMEM.
 */
struct wg_peer *wg_peer_create(struct wg_device *wg, const u8 *public_key,
			       const u8 *preshared_key)
{
	struct wg_peer *peer;

	lockdep_assert_held(&wg->device_update_lock);

	if (wg->num_peers >= MAX_PEERS_PER_DEVICE)
		return ERR_PTR(-E2BIG);

	peer = kmem_cache_zalloc(peer_cache, GFP_KERNEL_ACCOUNT);
	if (unlikely(!peer))
		return ERR_PTR(-ENOMEM);
	if (unlikely(dst_cache_init(&peer->endpoint_cache, GFP_KERNEL))) {
		kmem_cache_free(peer_cache, peer);
		return ERR_PTR(-ENOMEM);
	}
	peer->device = wg;
	wg_noise_handshake_init(&peer->handshake, &wg->static_identity, peer,
				public_key, preshared_key);
	wg_noise_keypairs_init(&peer->keypairs);
	wg_cookie_init(&peer->cookie, public_key);
	INIT_WORK(&peer->transmit_handshake_work,
		  wg_send_handshake_initiation_work);
	skb_queue_head_init(&peer->staged_packets);
	wg_timers_init(peer);
	wg_peer_queue_init(&peer->tx_queue);
	wg_peer_queue_init(&peer->rx_queue);
	INIT_WORK(&peer->tx_work, wg_packet_tx_worker);
	netif_napi_add(wg->dev, &peer->napi, wg_packet_rx_poll);
	napi_enable(&peer->napi);
	rwlock_init(&peer->endpoint_lock);
	peer->endpoint.addr.sa_family = AF_UNSPEC;
	INIT_LIST_HEAD(&peer->allowedips_list);
	kref_init(&peer->refcount);

	list_add_tail(&peer->peer_list, &wg->peer_list);
	wg_pubkey_hashtable_add(wg->peer_hashtable, peer);
	++wg->num_peers;
	peer->internal_id = atomic64_inc_return(&peer_ids);
	pr_debug("%s: Peer %llu created\n", wg->dev->name, peer->internal_id);
	return peer;
}

/**
 * wg_peer_try_get - take a reference to a peer found under RCU
 * @peer: the peer, or NULL
 *
 * Return: @peer, or NULL when it is NULL or its last reference is gone.
 */
struct wg_peer *wg_peer_try_get(struct wg_peer *peer)
{
	RCU_LOCKDEP_WARN(!rcu_read_lock_bh_held(),
			 "taking peer reference without holding the RCU BH read lock");
	if (unlikely(!peer || !kref_get_unless_zero(&peer->refcount)))
		return NULL;
	return peer;
}

static void peer_free_rcu(struct rcu_head *rcu)
{
	struct wg_peer *peer = container_of(rcu, struct wg_peer, rcu);

	dst_cache_destroy(&peer->endpoint_cache);
	/* The peer held key material: wipe it with the memory. */
	memzero_explicit(peer, sizeof(*peer));
	kmem_cache_free(peer_cache, peer);
}

static void peer_release(struct kref *refcount)
{
	struct wg_peer *peer = container_of(refcount, struct wg_peer,
					    refcount);

	pr_debug("%s: Peer %llu destroyed\n", peer->device->dev->name,
		 peer->internal_id);
	call_rcu(&peer->rcu, peer_free_rcu);
}

void wg_peer_put(struct wg_peer *peer)
{
	if (unlikely(!peer))
		return;
	kref_put(&peer->refcount, peer_release);
}

/*
 * Removal has two halves. Unlink marks the peer dead and makes it
 * unreachable, so that no lookup finds it and no path that tests is_dead
 * under RCU (sending, staging, arming a timer, queueing an initiation)
 * starts to use it. After a grace period, every path that tested it before
 * is done, and once the crypt workers have sealed or opened every packet of
 * it (see drain_pipeline()), finish stops the timers and the work items,
 * wipes the keys and the handshake (taking their indices out of the
 * table), drops what is still queued and the list's reference. Removing
 * many peers shares one grace period and the flushes.
 */
static void peer_unlink(struct wg_peer *peer)
{
	struct wg_device *wg = peer->device;

	WRITE_ONCE(peer->is_dead, true);
	wg_allowedips_remove_by_peer(&wg->peer_allowedips, peer,
				     &wg->device_update_lock);
	wg_pubkey_hashtable_remove(wg->peer_hashtable, peer);
	list_del_init(&peer->peer_list);
	--wg->num_peers;
}

static void peer_finish(struct wg_peer *peer)
{
	struct wg_device *wg = peer->device;

	wg_timers_stop(peer);
	/* A queued initiation holds a reference of its own. */
	if (cancel_work_sync(&peer->transmit_handshake_work))
		wg_peer_put(peer);
	/*
	 * A handshake message being handled now may still hold the peer;
	 * it can install no session (wg_noise_begin_session() tests is_dead
	 * under the handshake's lock, which clearing takes after it).
	 */
	wg_noise_handshake_clear(wg, &peer->handshake);
	wg_noise_keypairs_clear(wg, &peer->keypairs);
	wg_peer_purge_staged(peer);
	cancel_work_sync(&peer->tx_work);
	napi_disable(&peer->napi);
	wg_peer_queue_purge(&peer->tx_queue);
	wg_peer_queue_purge(&peer->rx_queue);
	/*
	 * Not netif_napi_del(), which waits for a grace period per peer: the
	 * peer, and its NAPI context, are freed after one anyway.
	 */
	__netif_napi_del(&peer->napi);
	wg_peer_put(peer);
}

/*
 * Whether a packet of the peers still waits for a crypt worker. One that
 * used up its budget queues itself again, past a flush of the workqueue:
 * the device's crypt rings can still hold the peers' packets after one.
 */
static bool crypting(struct list_head *peers)
{
	struct wg_peer *peer;

	list_for_each_entry(peer, peers, peer_list) {
		if (wg_peer_queue_pending(&peer->tx_queue) ||
		    wg_peer_queue_pending(&peer->rx_queue))
			return true;
	}
	return false;
}

/*
 * No path that saw the peers alive is still running, and no crypt worker
 * holds a packet of theirs or is still touching them after one (it
 * schedules the peer's transmit work or NAPI after marking the packet):
 * flush until none of their packets is pending, then once more for the
 * runs that marked the last ones. Only then may their queues be purged.
 */
static void drain_pipeline(struct wg_device *wg, struct list_head *peers)
{
	synchronize_net();
	do {
		flush_workqueue(wg->packet_crypt_wq);
	} while (crypting(peers));
	flush_workqueue(wg->packet_crypt_wq);
}

/**
 * wg_peer_remove - take a peer out of its device
 * @peer: the peer, whose device's update lock is held
 *
 * Afterwards no lookup finds the peer and no packet of it is queued;
 * holders of references may still use it until they drop them. The list's
 * reference is dropped here.
 */
void wg_peer_remove(struct wg_peer *peer)
{
	struct wg_device *wg = peer->device;
	LIST_HEAD(dead);

	lockdep_assert_held(&wg->device_update_lock);
	if (WARN_ON(peer->is_dead))
		return;
	peer_unlink(peer);
	list_add(&peer->peer_list, &dead);
	drain_pipeline(wg, &dead);
	list_del_init(&peer->peer_list);
	peer_finish(peer);
}

void wg_peer_remove_all(struct wg_device *wg)
{
	struct wg_peer *peer, *tmp;
	LIST_HEAD(dead);

	lockdep_assert_held(&wg->device_update_lock);
	if (list_empty(&wg->peer_list))
		return;
	list_for_each_entry_safe(peer, tmp, &wg->peer_list, peer_list) {
		peer_unlink(peer);
		list_add_tail(&peer->peer_list, &dead);
		cond_resched();
	}
	drain_pipeline(wg, &dead);
	list_for_each_entry_safe(peer, tmp, &dead, peer_list) {
		list_del_init(&peer->peer_list);
		peer_finish(peer);
		cond_resched();
	}
}

/**
 * wg_peer_set_endpoint - set where the peer's packets go, and where from
 * @peer: the peer
 * @endpoint: an AF_INET or AF_INET6 address, checked by the caller, and
 *	the local source to use (zero: the route chooses)
 *
 * Every authenticated message sets it (roaming): an unchanged endpoint is
 * not written, so that the data path only reads.
 */
void wg_peer_set_endpoint(struct wg_peer *peer,
			  const struct wg_endpoint *endpoint)
{
	bool same;

	read_lock_bh(&peer->endpoint_lock);
	same = !memcmp(&peer->endpoint, endpoint, sizeof(*endpoint));
	read_unlock_bh(&peer->endpoint_lock);
	if (same)
		return;
	write_lock_bh(&peer->endpoint_lock);
	peer->endpoint = *endpoint;
	dst_cache_reset(&peer->endpoint_cache);
	write_unlock_bh(&peer->endpoint_lock);
}

/* Send from whatever address the route picks; the lock is held. */
static void clear_src(struct wg_peer *peer)
{
	memset(&peer->endpoint.src6, 0, sizeof(peer->endpoint.src6));
	peer->endpoint.src_if4 = 0;
	dst_cache_reset(&peer->endpoint_cache);
}

/**
 * wg_peer_cache_route - remember the route a send to the endpoint took
 * @peer: the peer
 * @used: the endpoint the route was looked up for
 * @dst: the route, from the current CPU's lookup
 * @saddr: the source address it was looked up with: a __be32 for an
 *	IPv4 endpoint, a struct in6_addr for IPv6
 *
 * Called with bottom halves off. Only while @used is still the peer's
 * endpoint: a change resets the cache under the lock, before or after
 * this, either way the route to the old endpoint is never used again.
 */
void wg_peer_cache_route(struct wg_peer *peer, const struct wg_endpoint *used,
			 struct dst_entry *dst, const void *saddr)
{
	read_lock(&peer->endpoint_lock);
	if (!memcmp(&peer->endpoint, used, sizeof(*used))) {
		if (used->addr.sa_family == AF_INET)
			dst_cache_set_ip4(&peer->endpoint_cache, dst,
					  *(const __be32 *)saddr);
#if IS_ENABLED(CONFIG_IPV6)
		else
			dst_cache_set_ip6(&peer->endpoint_cache, dst, saddr);
#endif
	}
	read_unlock(&peer->endpoint_lock);
}

/**
 * wg_peer_reset_routes - forget every peer's routes
 * @wg: the device, with its update lock held
 *
 * For what changes all of them: the sockets or the fwmark.
 */
void wg_peer_reset_routes(struct wg_device *wg)
{
	struct wg_peer *peer;

	lockdep_assert_held(&wg->device_update_lock);
	list_for_each_entry(peer, &wg->peer_list, peer_list)
		dst_cache_reset(&peer->endpoint_cache);
}

/**
 * wg_peer_forget_src - stop sending from a source address that went stale
 * @peer: the peer
 * @used: the endpoint a send used, its source already dropped
 *
 * Only if the endpoint is still the one used: roaming may have replaced it
 * meanwhile, with a source of its own.
 */
void wg_peer_forget_src(struct wg_peer *peer, const struct wg_endpoint *used)
{
	write_lock_bh(&peer->endpoint_lock);
	if (!memcmp(&peer->endpoint.addr6, &used->addr6, sizeof(used->addr6)))
		clear_src(peer);
	write_unlock_bh(&peer->endpoint_lock);
}

/**
 * wg_peer_clear_src - send from whatever address the route picks
 * @peer: the peer
 *
 * A handshake that goes unanswered may be sent from an address the peer
 * can no longer reach: each retry lets the route choose again.
 */
void wg_peer_clear_src(struct wg_peer *peer)
{
	write_lock_bh(&peer->endpoint_lock);
	clear_src(peer);
	write_unlock_bh(&peer->endpoint_lock);
}

/**
 * wg_peer_purge_staged - drop the packets that wait for a session
 * @peer: the peer
 *
 * Each counts as a tx_dropped of the device.
 */
void wg_peer_purge_staged(struct wg_peer *peer)
{
	struct sk_buff_head packets;
	unsigned int n;

	__skb_queue_head_init(&packets);
	spin_lock_bh(&peer->staged_packets.lock);
	skb_queue_splice_init(&peer->staged_packets, &packets);
	spin_unlock_bh(&peer->staged_packets.lock);
	n = skb_queue_len(&packets);
	if (!n)
		return;
	DEV_STATS_ADD(peer->device->dev, tx_dropped, n);
	__skb_queue_purge(&packets);
}

void wg_peer_get_endpoint(struct wg_peer *peer, struct wg_endpoint *out)
{
	read_lock_bh(&peer->endpoint_lock);
	*out = peer->endpoint;
	read_unlock_bh(&peer->endpoint_lock);
}

bool wg_peer_has_endpoint(struct wg_peer *peer)
{
	bool has;

	read_lock_bh(&peer->endpoint_lock);
	has = peer->endpoint.addr.sa_family != AF_UNSPEC;
	read_unlock_bh(&peer->endpoint_lock);
	return has;
}
