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
struct socket;
struct wg_index_hashtable;
struct wg_pubkey_hashtable;

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
 */
struct wg_device {
	struct net_device *dev;
	struct net *creating_net;
	struct socket __rcu *sock4, *sock6;
	struct noise_static_identity static_identity;
	struct wg_cookie_checker cookie_checker;
	struct sk_buff_head handshake_queue;
	struct work_struct handshake_work;
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
};

bool wg_is_device(const struct net_device *dev);
int wg_device_init(void);
void wg_device_uninit(void);

#endif /* _WG_DEVICE_H */
