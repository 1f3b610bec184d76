/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Peers: the remote ends a device talks to.
 */

#ifndef _WG_PEER_H
#define _WG_PEER_H

#include "cookie.h"
#include "device.h"
#include "noise.h"

#include <linux/in.h>
#include <linux/in6.h>
#include <linux/kref.h>
#include <linux/netdevice.h>
#include <linux/spinlock.h>
#include <linux/time64.h>
#include <linux/timer.h>
#include <linux/skbuff.h>
#include <linux/workqueue.h>
#include <net/dst_cache.h>

/**
 * struct wg_endpoint - where a peer's packets go, and where from
 * @addr: sa_family is AF_UNSPEC while no endpoint is known
 * @addr4: the IPv4 view of @addr
 * @addr6: the IPv6 view of @addr
 * @src4: the local address the peer's last message arrived at; zero lets
 *	the route choose
 * @src6: the same for IPv6
 * @src_if4: the interface that message arrived on, where replies from
 *	@src4 must leave; zero for none
 *
 * Always zeroed before it is filled in, so that two can be compared whole.
 */
struct wg_endpoint {
	union {
		struct sockaddr addr;
		struct sockaddr_in addr4;
		struct sockaddr_in6 addr6;
	};
	union {
		struct in_addr src4;
		struct in6_addr src6;
	};
	int src_if4;
};

/**
 * struct wg_peer - one remote end of a device
 * @device: the device the peer belongs to
 * @handshake: the peer's public key, preshared key and handshake state
 * @keypairs: the sessions handshakes produced
 * @cookie: keys of the MACs of the handshake messages we send it
 * @transmit_handshake_work: sends an initiation; holds a reference while
 *	queued
 * @last_sent_handshake: jiffies of the last handshake message sent
 * @staged_packets: packets waiting for a session, at most
 *	MAX_STAGED_PACKETS
 * @timer_retransmit: resends an unanswered initiation
 * @timer_keepalive: answers received data when nothing else goes back
 * @timer_new_handshake: starts a handshake when sent data gets no answer
 * @timer_zero_keys: wipes sessions that were not renewed
 * @timer_persistent_keepalive: the configured keepalive
 * @clear_work: does the wiping for @timer_zero_keys
 * @handshake_attempts: retries sent of the initiation in progress
 * @tx_queue: packets being sealed, in the order they are to leave
 * @rx_queue: packets being opened, in the order they arrived
 * @tx_work: sends the sealed packets at the head of @tx_queue
 * @napi: delivers the opened packets at the head of @rx_queue
 * @endpoint: its address; read under @endpoint_lock
 * @endpoint_lock: roaming writes the endpoint from receive context
 * @endpoint_cache: the route to @endpoint, per CPU; reset under
 *	@endpoint_lock whenever the endpoint changes
 * @walltime_last_handshake: when the last handshake completed, zero if never
 * @rx_bytes: bytes of authenticated packets received; added to from the
 *	handshake worker and the peer's NAPI context, hence atomic
 * @tx_bytes: bytes of packets sent, from the transmit work and handshakes
 * @persistent_keepalive_interval: seconds, 0 when off
 * @is_dead: set once removal has begun; no new users may appear after
 * @peer_list: entry on the device's list of peers, in creation order
 * @allowedips_list: the prefixes this peer owns
 * @pubkey_hash: entry in the device's public key table
 * @internal_id: numbers the peer in lifetime messages (dynamic debug)
 * @refcount: the device's list holds one reference, lookups take more
 * @rcu: freeing waits for readers that found the peer without a reference
 */
struct wg_peer {
	struct wg_device *device;
	struct noise_handshake handshake;
	struct noise_keypairs keypairs;
	struct wg_cookie cookie;
	struct work_struct transmit_handshake_work;
	unsigned long last_sent_handshake;
	struct sk_buff_head staged_packets;
	struct timer_list timer_retransmit;
	struct timer_list timer_keepalive;
	struct timer_list timer_new_handshake;
	struct timer_list timer_zero_keys;
	struct timer_list timer_persistent_keepalive;
	struct work_struct clear_work;
	unsigned int handshake_attempts;
	struct sk_buff_head tx_queue, rx_queue;
	struct work_struct tx_work;
	struct napi_struct napi;
	struct wg_endpoint endpoint;
	rwlock_t endpoint_lock;
	struct dst_cache endpoint_cache;
	struct timespec64 walltime_last_handshake;
	atomic64_t rx_bytes, tx_bytes;
	u16 persistent_keepalive_interval;
	bool is_dead;
	struct list_head peer_list;
	struct list_head allowedips_list;
	struct hlist_node pubkey_hash;
	u64 internal_id;
	struct kref refcount;
	struct rcu_head rcu;
};

int wg_peer_init(void);
void wg_peer_uninit(void);

/* Lifetime, under the device's update lock. */
struct wg_peer *wg_peer_create(struct wg_device *wg, const u8 *public_key,
			       const u8 *preshared_key);
void wg_peer_remove(struct wg_peer *peer);
void wg_peer_remove_all(struct wg_device *wg);

/* References: the device's list holds one; lookups take their own. */
static inline struct wg_peer *wg_peer_get(struct wg_peer *peer)
{
	kref_get(&peer->refcount);
	return peer;
}

struct wg_peer *__must_check wg_peer_try_get(struct wg_peer *peer);
void wg_peer_put(struct wg_peer *peer);

/* Where its packets go; roaming moves it. */
bool wg_peer_has_endpoint(struct wg_peer *peer);
void wg_peer_get_endpoint(struct wg_peer *peer, struct wg_endpoint *out);
void wg_peer_set_endpoint(struct wg_peer *peer,
			  const struct wg_endpoint *endpoint);
void wg_peer_forget_src(struct wg_peer *peer, const struct wg_endpoint *used);
void wg_peer_cache_route(struct wg_peer *peer, const struct wg_endpoint *used,
			 struct dst_entry *dst, const void *saddr);
void wg_peer_reset_routes(struct wg_device *wg);
void wg_peer_clear_src(struct wg_peer *peer);
void wg_peer_purge_staged(struct wg_peer *peer);

#endif /* _WG_PEER_H */
