// SPDX-License-Identifier: GPL-2.0
/*
 * Peer lifetime. A peer is created and removed with the device's update
 * lock held; the device's list holds one reference, and packet paths that
 * find the peer through the allowed IPs or the public key table take their
 * own with wg_peer_get_maybe_zero() under RCU.
 */

#include "peer.h"
#include "allowedips.h"
#include "peerlookup.h"
#include "send.h"
#include "timers.h"

#include <linux/slab.h>

/**
 * wg_peer_create - add a peer to a device
 * @wg: the device, with its update lock held
 * @public_key: the peer's public key, not yet used by another peer
 * @preshared_key: optional preshared key, or NULL
 *
 * Return: the peer, owned by the device's list, or an ERR_PTR: -E2BIG when
 * the device has MAX_PEERS_PER_DEVICE peers, -ENOMEM.
 */
struct wg_peer *wg_peer_create(struct wg_device *wg,
			       const u8 public_key[NOISE_PUBLIC_KEY_LEN],
			       const u8 preshared_key[NOISE_SYMMETRIC_KEY_LEN])
{
	struct wg_peer *peer;

	lockdep_assert_held(&wg->device_update_lock);

	if (wg->num_peers >= MAX_PEERS_PER_DEVICE)
		return ERR_PTR(-E2BIG);

	peer = kzalloc(sizeof(*peer), GFP_KERNEL_ACCOUNT);
	if (unlikely(!peer))
		return ERR_PTR(-ENOMEM);

	peer->device = wg;
	wg_noise_handshake_init(&peer->handshake, &wg->static_identity, peer,
				public_key, preshared_key);
	wg_noise_keypairs_init(&peer->keypairs);
	wg_cookie_init(&peer->cookie, public_key);
	INIT_WORK(&peer->transmit_handshake_work,
		  wg_send_handshake_initiation_work);
	skb_queue_head_init(&peer->staged_packets);
	wg_timers_init(peer);
	rwlock_init(&peer->endpoint_lock);
	peer->endpoint.addr.sa_family = AF_UNSPEC;
	INIT_LIST_HEAD(&peer->allowedips_list);
	kref_init(&peer->refcount);

	list_add_tail(&peer->peer_list, &wg->peer_list);
	wg_pubkey_hashtable_add(wg->peer_hashtable, peer);
	++wg->num_peers;
	return peer;
}

/**
 * wg_peer_get_maybe_zero - take a reference to a peer found under RCU
 * @peer: the peer, or NULL
 *
 * Return: @peer, or NULL when it is NULL or its last reference is gone.
 */
struct wg_peer *wg_peer_get_maybe_zero(struct wg_peer *peer)
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

	/* The peer held key material: wipe it with the memory. */
	kfree_sensitive(peer);
}

static void peer_release(struct kref *refcount)
{
	struct wg_peer *peer = container_of(refcount, struct wg_peer,
					    refcount);

	call_rcu(&peer->rcu, peer_free_rcu);
}

void wg_peer_put(struct wg_peer *peer)
{
	if (unlikely(!peer))
		return;
	kref_put(&peer->refcount, peer_release);
}

/**
 * wg_peer_remove - take a peer out of its device
 * @peer: the peer, whose device's update lock is held
 *
 * Afterwards no lookup finds the peer; holders of references may still use
 * it until they drop them. The list's reference is dropped here.
 */
void wg_peer_remove(struct wg_peer *peer)
{
	struct wg_device *wg = peer->device;

	lockdep_assert_held(&wg->device_update_lock);
	if (WARN_ON(peer->is_dead))
		return;

	WRITE_ONCE(peer->is_dead, true);
	/* A queued initiation holds a reference of its own. */
	if (cancel_work_sync(&peer->transmit_handshake_work))
		wg_peer_put(peer);
	wg_timers_stop(peer);
	wg_allowedips_remove_by_peer(&wg->peer_allowedips, peer,
				     &wg->device_update_lock);
	wg_pubkey_hashtable_remove(wg->peer_hashtable, peer);
	list_del_init(&peer->peer_list);
	--wg->num_peers;
	wg_noise_handshake_clear(wg, &peer->handshake);
	wg_noise_keypairs_clear(wg, &peer->keypairs);
	skb_queue_purge(&peer->staged_packets);
	wg_peer_put(peer);
}

void wg_peer_remove_all(struct wg_device *wg)
{
	struct wg_peer *peer, *tmp;

	lockdep_assert_held(&wg->device_update_lock);
	list_for_each_entry_safe(peer, tmp, &wg->peer_list, peer_list) {
		wg_peer_remove(peer);
		cond_resched();
	}
}

/**
 * wg_peer_set_endpoint - set where the peer's packets go
 * @peer: the peer
 * @addr: an AF_INET or AF_INET6 address, checked by the caller
 */
void wg_peer_set_endpoint(struct wg_peer *peer, const struct sockaddr *addr)
{
	write_lock_bh(&peer->endpoint_lock);
	if (addr->sa_family == AF_INET)
		peer->endpoint.addr4 = *(const struct sockaddr_in *)addr;
	else
		peer->endpoint.addr6 = *(const struct sockaddr_in6 *)addr;
	write_unlock_bh(&peer->endpoint_lock);
}

void wg_peer_get_endpoint(struct wg_peer *peer, struct wg_endpoint *out)
{
	read_lock_bh(&peer->endpoint_lock);
	*out = peer->endpoint;
	read_unlock_bh(&peer->endpoint_lock);
}
