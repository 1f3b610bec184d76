/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The wireguard network device.
 */

#ifndef _WG_DEVICE_H
#define _WG_DEVICE_H

#include "allowedips.h"
#include "cookie.h"
#include "noise.h"

#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/skbuff.h>
#include <linux/workqueue.h>
#include "queueing.h"

struct net;
struct net_device;
struct sock;
struct wg_index_hashtable;
struct wg_pubkey_hashtable;

/*
 * Why packets were dropped, and other protocol events, each an entry of
 * ethtool -S under its name in device.c: the standard counters (rx_errors,
 * tx_dropped, ...) only say that something happened.
 */
enum wg_counter {
	WG_CNT_TX_NOT_IP,
	WG_CNT_TX_CHECKSUM,
	WG_CNT_TX_GSO,
	WG_CNT_TX_NO_PEER,
	WG_CNT_TX_NO_ENDPOINT,
	WG_CNT_TX_STAGED_OVERFLOW,
	WG_CNT_TX_QUEUE_FULL,
	WG_CNT_TX_SEAL_FAILED,
	WG_CNT_TX_SEND_FAILED,
	WG_CNT_TX_ROUTING_LOOP,
	WG_CNT_RX_INVALID_MESSAGE,
	WG_CNT_RX_HANDSHAKE_QUEUE_FULL,
	WG_CNT_RX_BAD_MAC1,
	WG_CNT_RX_COOKIE_REPLY_SENT,
	WG_CNT_RX_RATELIMITED,
	WG_CNT_RX_HANDSHAKE_REFUSED,
	WG_CNT_RX_UNKNOWN_SESSION,
	WG_CNT_RX_QUEUE_FULL,
	WG_CNT_RX_OPEN_FAILED,
	WG_CNT_RX_REPLAYED,
	WG_CNT_RX_BAD_INNER_PACKET,
	WG_CNT_RX_BAD_SOURCE,
	WG_CNT_MAX
};

/**
 * struct wg_device - private data of a wireguard net_device
 * @dev: the net_device
 * @creating_net: namespace the device was created in, where its UDP sockets
 *	live even after the device moves; NULL once that namespace exits or
 *	the device is unregistered; under RTNL and @device_update_lock
 * @sock4: IPv4 socket while the device is up, RCU protected
 * @sock6: IPv6 socket while the device is up and IPv6 is available
 * @static_identity: the device's key pair
 * @cookie_checker: keys of the MACs received handshake messages carry
 * @handshake_queue: received handshake messages, at most
 *	MAX_QUEUED_HANDSHAKES
 * @handshake_work: drains @handshake_queue
 * @last_under_load: jiffies when @handshake_queue last held an eighth of
 *	its limit; the device stays under load for a second after that
 * @handshake_wq: runs @handshake_work and the peers' initiations
 * @encrypt_queue: packets any CPU may seal
 * @decrypt_queue: packets any CPU may open
 * @packet_crypt_wq: runs the crypt workers, one per CPU, and the peers'
 *	transmit work
 * @peer_hashtable: peers by public key
 * @index_hashtable: handshakes and sessions by local index
 * @peer_allowedips: cryptokey routing table
 * @peer_list: peers in creation order, the order dumps report them in
 * @device_list: entry on the list of all devices, under RTNL
 * @device_update_lock: serialises configuration changes and dump parts;
 *	taken after RTNL where both are needed
 * @device_update_gen: bumped on every configuration change, so that a dump
 *	spanning several messages can flag an inconsistent view; never 0
 * @id: unique among all devices ever created, so that a dump can tell its
 *	device from a later one at the same address and index
 * @num_peers: length of @peer_list
 * @fwmark: mark of outgoing packets, 0 for none
 * @incoming_port: UDP port, host order; 0 until the first bind picks one
 * @counters: see enum wg_counter
 */
struct wg_device {
	struct net_device *dev;
	struct net *creating_net;
	struct sock __rcu *sock4, *sock6;
	struct noise_static_identity static_identity;
	struct wg_cookie_checker cookie_checker;
	struct sk_buff_head handshake_queue;
	struct work_struct handshake_work;
	unsigned long last_under_load;
	struct workqueue_struct *handshake_wq;
	struct wg_crypt_queue encrypt_queue, decrypt_queue;
	struct workqueue_struct *packet_crypt_wq;
	struct wg_pubkey_hashtable *peer_hashtable;
	struct wg_index_hashtable *index_hashtable;
	struct wg_allowedips peer_allowedips;
	struct list_head peer_list;
	struct list_head device_list;
	struct mutex device_update_lock; /* see above */
	unsigned int device_update_gen;
	u64 id;
	unsigned int num_peers;
	u32 fwmark;
	u16 incoming_port;
	atomic64_t counters[WG_CNT_MAX];
};

static inline void wg_count(struct wg_device *wg, enum wg_counter counter)
{
	atomic64_inc(&wg->counters[counter]);
}

bool wg_is_device(const struct net_device *dev);
int wg_device_init(void);
void wg_device_uninit(void);

#endif /* _WG_DEVICE_H */
