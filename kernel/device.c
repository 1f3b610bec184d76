// SPDX-License-Identifier: GPL-2.0
/*
 * The wireguard link kind: a point-to-point layer 3 device whose peers are
 * configured over generic netlink.
 *
 * Lifetime: ndo_init allocates what the device needs, the priv_destructor
 * frees it once the last reference to the net_device is gone (so no netlink
 * operation can still be running), and ndo_uninit takes the device off the
 * global list under RTNL. The UDP sockets exist only while the device is up.
 */

#include "device.h"
#include "messages.h"
#include "peer.h"
#include "peerlookup.h"
#include "queueing.h"
#include "receive.h"
#include "send.h"
#include "socket.h"
#include "timers.h"

#include <linux/ethtool.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/if_arp.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <net/icmp.h>
#include <net/addrconf.h>
#include <net/dst_metadata.h>
#include <net/gso.h>
#include <net/ip.h>
#include <net/rtnetlink.h>

/* All devices, for the namespace exit hook; under RTNL. */
static LIST_HEAD(wg_devices);

/*
 * No IPv6 link-local address: there are no neighbours on a point-to-point
 * tunnel to discover, and router solicitations would only go unanswered.
 */
static void no_link_local(struct net_device *dev)
{
#if IS_ENABLED(CONFIG_IPV6)
	struct inet6_dev *idev = __in6_dev_get(dev);

	if (idev)
		idev->cnf.addr_gen_mode = IN6_ADDR_GEN_MODE_NONE;
#endif
}

static int wg_open(struct net_device *dev)
{
	struct wg_device *wg = netdev_priv(dev);
	struct wg_peer *peer;
	int ret;

	no_link_local(dev);
	mutex_lock(&wg->device_update_lock);
	ret = wg_socket_init(wg, wg->incoming_port);
	if (!ret) {
		/* Persistent keepalives start with a handshake. */
		list_for_each_entry(peer, &wg->peer_list, peer_list) {
			if (peer->persistent_keepalive_interval)
				wg_send_keepalive(peer);
		}
	}
	mutex_unlock(&wg->device_update_lock);
	return ret;
}

/*
 * Down, a device forgets its sessions: the timers stop (netif_running() is
 * false by now, so none is armed again), and keys and staged packets go.
 * The sockets close first and the handshake messages already received are
 * handled or dropped, so that none of them begins a session after its
 * peer's keys were cleared.
 */
static int wg_stop(struct net_device *dev)
{
	struct wg_device *wg = netdev_priv(dev);
	struct wg_peer *peer;

	mutex_lock(&wg->device_update_lock);
	wg_socket_uninit(wg);
	mutex_unlock(&wg->device_update_lock);
	/*
	 * No receive path queues a message any more; a handshake worker that
	 * queued itself again is cancelled, not run by a flush.
	 */
	skb_queue_purge(&wg->handshake_queue);
	cancel_work_sync(&wg->handshake_work);
	flush_workqueue(wg->handshake_wq);

	mutex_lock(&wg->device_update_lock);
	list_for_each_entry(peer, &wg->peer_list, peer_list) {
		wg_timers_stop(peer);
		if (cancel_work_sync(&peer->transmit_handshake_work))
			wg_peer_put(peer);
		wg_noise_keypairs_clear(wg, &peer->keypairs);
		wg_noise_handshake_reset(wg, &peer->handshake);
		wg_peer_purge_staged(peer);
		WRITE_ONCE(peer->last_sent_handshake, 0);
	}
	mutex_unlock(&wg->device_update_lock);
	return 0;
}

static bool is_ip_packet(struct sk_buff *skb)
{
	if (skb->protocol == htons(ETH_P_IP))
		return pskb_network_may_pull(skb, sizeof(struct iphdr)) &&
		       ip_hdr(skb)->version == 4;
	if (skb->protocol == htons(ETH_P_IPV6))
		return pskb_network_may_pull(skb, sizeof(struct ipv6hdr)) &&
		       ipv6_hdr(skb)->version == 6;
	return false;
}

/*
 * Cryptokey routing picks the peer from the inner destination. A packet no
 * peer owns is answered with ICMP unreachable. The others are segmented if
 * GSO, then sealed and sent here, on the transmitting CPU, or wait for a
 * handshake.
 */
static netdev_tx_t wg_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct wg_device *wg = netdev_priv(dev);
	u8 nesting = wg_socket_nesting();
	struct sk_buff *segs, *next;
	struct wg_peer *peer;
	unsigned int mtu;
	int ret;

	/* A message of a device routed into devices again and again. */
	if (unlikely(nesting > WG_MAX_NESTING)) {
		net_dbg_ratelimited("%s: dropped a packet nested in %u tunnels: a routing loop\n",
				    dev->name, nesting);
		DEV_STATS_INC(dev, tx_errors);
		wg_count(wg, WG_CNT_TX_ROUTING_LOOP);
		goto out;
	}
	if (unlikely(!is_ip_packet(skb))) {
		DEV_STATS_INC(dev, tx_errors);
		wg_count(wg, WG_CNT_TX_NOT_IP);
		goto out;
	}

	peer = wg_allowedips_lookup_dst(&wg->peer_allowedips, skb);
	if (!peer) {
		ret = -ENOKEY;
		goto unreachable;
	}
	if (!wg_peer_has_endpoint(peer)) {
		/* Only the header of the packet's own version was pulled. */
		if (skb->protocol == htons(ETH_P_IP))
			net_dbg_ratelimited("%s: no endpoint for a peer of %pI4\n",
					    dev->name, &ip_hdr(skb)->daddr);
		else
			net_dbg_ratelimited("%s: no endpoint for a peer of %pI6c\n",
					    dev->name, &ipv6_hdr(skb)->daddr);
		wg_peer_put(peer);
		ret = -EDESTADDRREQ;
		goto unreachable;
	}
	/*
	 * Padding may fill a packet up to the MTU of its route, which can
	 * be less than the device's.
	 */
	mtu = skb_valid_dst(skb) ? dst_mtu(skb_dst(skb)) : READ_ONCE(dev->mtu);
	skb_dst_drop(skb);
	if (!skb_is_gso(skb)) {
		if (skb->ip_summed == CHECKSUM_PARTIAL &&
		    skb_checksum_help(skb)) {
			DEV_STATS_INC(dev, tx_errors);
			wg_count(wg, WG_CNT_TX_CHECKSUM);
			goto out_put;
		}
		WG_PACKET_CB(skb)->mtu = mtu;
		WG_PACKET_CB(skb)->nesting = nesting;
		wg_send_packet(peer, skb);
		goto done;
	}

	/*
	 * Each segment is sealed as its own message: segment first, in
	 * software, which also completes the checksums.
	 */
	segs = skb_gso_segment(skb, 0);
	if (IS_ERR_OR_NULL(segs)) {
		DEV_STATS_INC(dev, tx_errors);
		wg_count(wg, WG_CNT_TX_GSO);
		goto out_put;
	}
	consume_skb(skb);
	skb_list_walk_safe(segs, skb, next) {
		skb_mark_not_on_list(skb);
		WG_PACKET_CB(skb)->mtu = mtu;
		WG_PACKET_CB(skb)->nesting = nesting;
		wg_send_packet(peer, skb);
	}
done:
	wg_peer_put(peer);
	return NETDEV_TX_OK;
out_put:
	wg_peer_put(peer);
out:
	kfree_skb(skb);
	return NETDEV_TX_OK;

unreachable:
	if (skb->protocol == htons(ETH_P_IP))
		icmp_ndo_send(skb, ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, 0);
	else
		icmpv6_ndo_send(skb, ICMPV6_DEST_UNREACH, ICMPV6_ADDR_UNREACH,
				0);
	DEV_STATS_INC(dev, tx_errors);
	wg_count(wg, ret == -ENOKEY ? WG_CNT_TX_NO_PEER :
				      WG_CNT_TX_NO_ENDPOINT);
	kfree_skb(skb);
	/* The sender learns why at once: no key, or nowhere to send. */
	return ret;
}

/*
 * Frees what wg_init() allocated, in the reverse order; anything it did not
 * get to is still NULL in the zeroed private area.
 */
static void free_resources(struct wg_device *wg)
{
	/*
	 * First: a crypt worker that used up its budget, or that fault
	 * injection put off, queued itself again past the last flush, and
	 * destroying the workqueue runs it, on the queues it works on.
	 */
	if (wg->packet_crypt_wq)
		destroy_workqueue(wg->packet_crypt_wq);
	if (wg->decrypt_queue.workers)
		wg_crypt_queue_free(&wg->decrypt_queue);
	if (wg->encrypt_queue.workers)
		wg_crypt_queue_free(&wg->encrypt_queue);
	if (wg->handshake_wq)
		destroy_workqueue(wg->handshake_wq);
	kvfree(wg->index_hashtable);
	kvfree(wg->peer_hashtable);
}

static int wg_init(struct net_device *dev)
{
	static atomic64_t last_id = ATOMIC64_INIT(0);
	struct wg_device *wg = netdev_priv(dev);

	wg->id = atomic64_inc_return(&last_id);
	wg->peer_hashtable = wg_pubkey_hashtable_alloc();
	wg->index_hashtable = wg_index_hashtable_alloc();
	wg->handshake_wq = alloc_workqueue("wg-hs-%s",
					   WQ_UNBOUND | WQ_FREEZABLE, 0,
					   dev->name);
	wg->packet_crypt_wq = alloc_workqueue("wg-crypt-%s", WQ_PERCPU |
					      WQ_CPU_INTENSIVE | WQ_MEM_RECLAIM,
					      0, dev->name);
	if (!wg->peer_hashtable || !wg->index_hashtable ||
	    !wg->handshake_wq || !wg->packet_crypt_wq ||
	    wg_crypt_queue_init(&wg->encrypt_queue, wg, wg_encrypt_worker,
				MAX_CRYPT_QUEUE) ||
	    wg_crypt_queue_init(&wg->decrypt_queue, wg, wg_decrypt_worker,
				MAX_CRYPT_QUEUE)) {
		free_resources(wg);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Off the list, the namespace exit hook no longer sees the device, so the
 * creating namespace may go away while a netlink operation still holds a
 * reference to the device: forget it here.
 */
static void wg_uninit(struct net_device *dev)
{
	struct wg_device *wg = netdev_priv(dev);

	ASSERT_RTNL();
	list_del_init(&wg->device_list);
	mutex_lock(&wg->device_update_lock);
	wg->creating_net = NULL;
	mutex_unlock(&wg->device_update_lock);
}

static const char counter_names[WG_CNT_MAX][ETH_GSTRING_LEN] = {
	[WG_CNT_TX_NOT_IP] = "tx_not_ip",
	[WG_CNT_TX_CHECKSUM] = "tx_checksum_failed",
	[WG_CNT_TX_GSO] = "tx_gso_failed",
	[WG_CNT_TX_NO_PEER] = "tx_no_peer",
	[WG_CNT_TX_NO_ENDPOINT] = "tx_no_endpoint",
	[WG_CNT_TX_STAGED_OVERFLOW] = "tx_staged_overflow",
	[WG_CNT_TX_QUEUE_FULL] = "tx_queue_full",
	[WG_CNT_TX_SEAL_FAILED] = "tx_seal_failed",
	[WG_CNT_TX_SEND_FAILED] = "tx_send_failed",
	[WG_CNT_TX_ROUTING_LOOP] = "tx_routing_loop",
	[WG_CNT_RX_INVALID_MESSAGE] = "rx_invalid_message",
	[WG_CNT_RX_HANDSHAKE_QUEUE_FULL] = "rx_handshake_queue_full",
	[WG_CNT_RX_BAD_MAC1] = "rx_bad_mac1",
	[WG_CNT_RX_COOKIE_REPLY_SENT] = "rx_cookie_reply_sent",
	[WG_CNT_RX_RATELIMITED] = "rx_ratelimited",
	[WG_CNT_RX_HANDSHAKE_REFUSED] = "rx_handshake_refused",
	[WG_CNT_RX_UNKNOWN_SESSION] = "rx_unknown_session",
	[WG_CNT_RX_QUEUE_FULL] = "rx_queue_full",
	[WG_CNT_RX_OPEN_FAILED] = "rx_open_failed",
	[WG_CNT_RX_REPLAYED] = "rx_replayed",
	[WG_CNT_RX_BAD_INNER_PACKET] = "rx_bad_inner_packet",
	[WG_CNT_RX_BAD_SOURCE] = "rx_bad_source",
};

static int wg_get_sset_count(struct net_device *dev, int sset)
{
	return sset == ETH_SS_STATS ? WG_CNT_MAX : -EOPNOTSUPP;
}

static void wg_get_strings(struct net_device *dev, u32 sset, u8 *buf)
{
	if (sset == ETH_SS_STATS)
		memcpy(buf, counter_names, sizeof(counter_names));
}

static void wg_get_ethtool_stats(struct net_device *dev,
				 struct ethtool_stats *stats, u64 *data)
{
	struct wg_device *wg = netdev_priv(dev);
	int i;

	for (i = 0; i < WG_CNT_MAX; ++i)
		data[i] = atomic64_read(&wg->counters[i]);
}

static const struct ethtool_ops ethtool_ops = {
	.get_sset_count = wg_get_sset_count,
	.get_strings = wg_get_strings,
	.get_ethtool_stats = wg_get_ethtool_stats,
};

static const struct net_device_ops netdev_ops = {
	.ndo_init = wg_init,
	.ndo_uninit = wg_uninit,
	.ndo_open = wg_open,
	.ndo_stop = wg_stop,
	.ndo_start_xmit = wg_xmit,
	.ndo_get_stats64 = dev_get_tstats64,
};

static void wg_destruct(struct net_device *dev)
{
	struct wg_device *wg = netdev_priv(dev);

	/*
	 * Peers first: their timers and work items queue work on the
	 * handshake workqueue until removal stops them.
	 */
	mutex_lock(&wg->device_update_lock);
	wg_socket_uninit(wg);
	wg_peer_remove_all(wg);
	wg_allowedips_free(&wg->peer_allowedips, &wg->device_update_lock);
	mutex_unlock(&wg->device_update_lock);

	/*
	 * Runs what is still queued: with no socket and no peer, handshake
	 * messages find nobody and are dropped.
	 */
	destroy_workqueue(wg->handshake_wq);
	wg->handshake_wq = NULL;
	skb_queue_purge(&wg->handshake_queue);

	/*
	 * The peers' removal drained the crypt queues; readers of the tables
	 * ran under RCU.
	 */
	synchronize_net();
	free_resources(wg);
	memzero_explicit(&wg->static_identity, sizeof(wg->static_identity));
	mutex_destroy(&wg->device_update_lock);
}

/* Outer IPv4 total length is 16 bits: the largest inner packet must fit. */
#define WG_MAX_MTU (IP_MAX_MTU - DATA_PACKET_OVERHEAD(sizeof(struct iphdr)))

static void wg_setup(struct net_device *dev)
{
	struct wg_device *wg = netdev_priv(dev);

	dev->netdev_ops = &netdev_ops;
	dev->ethtool_ops = &ethtool_ops;
	dev->type = ARPHRD_NONE;
	dev->flags = IFF_POINTOPOINT | IFF_NOARP;
	dev->priv_flags |= IFF_NO_QUEUE;
	dev->hard_header_len = 0;
	dev->addr_len = 0;
	dev->needed_headroom = WG_DATA_HEADROOM;
	dev->needed_tailroom = MESSAGE_PADDING_MULTIPLE + NOISE_AUTHTAG_LEN;
	/* 1500 minus the overhead over IPv6, the larger outer header. */
	dev->mtu = ETH_DATA_LEN - DATA_PACKET_OVERHEAD(sizeof(struct ipv6hdr));
	dev->max_mtu = WG_MAX_MTU;
	/*
	 * The stack may hand over large GSO packets with checksums left to
	 * do: transmit segments them and completes checksums before sealing,
	 * which is far cheaper than the stack doing it per MTU-sized packet.
	 */
	dev->features |= NETIF_F_HW_CSUM | NETIF_F_RXCSUM | NETIF_F_SG |
			 NETIF_F_HIGHDMA | NETIF_F_GSO_SOFTWARE;
	dev->hw_features |= dev->features;
	dev->hw_enc_features |= dev->features;
	/*
	 * Transmit takes no queue lock: it is safe on every CPU at once, and
	 * packets to one peer keep the order of their nonces within the
	 * replay window the receiver allows.
	 */
	dev->lltx = true;
	dev->needs_free_netdev = true;
	dev->priv_destructor = wg_destruct;
	dev->pcpu_stat_type = NETDEV_PCPU_STAT_TSTATS;
	netif_keep_dst(dev);

	wg->dev = dev;
	INIT_LIST_HEAD(&wg->peer_list);
	INIT_LIST_HEAD(&wg->device_list);
	mutex_init(&wg->device_update_lock);
	/* Dumps compare generations, and the netlink core ignores zero. */
	wg->device_update_gen = 1;
	wg_noise_static_identity_init(&wg->static_identity);
	wg_cookie_checker_init(&wg->cookie_checker);
	wg_allowedips_init(&wg->peer_allowedips);
	skb_queue_head_init(&wg->handshake_queue);
	INIT_WORK(&wg->handshake_work, wg_handshake_worker);
	wg->last_under_load = jiffies - HZ;
}

static int wg_newlink(struct net_device *dev,
		      struct rtnl_newlink_params *params,
		      struct netlink_ext_ack *extack)
{
	struct wg_device *wg = netdev_priv(dev);
	int ret;

	wg->creating_net = params->src_net;
	ret = register_netdevice(dev);
	if (ret)
		return ret;
	list_add(&wg->device_list, &wg_devices);
	return 0;
}

static struct rtnl_link_ops link_ops __read_mostly = {
	.kind = "wireguard",
	.priv_size = sizeof(struct wg_device),
	.setup = wg_setup,
	.newlink = wg_newlink,
};

bool wg_is_device(const struct net_device *dev)
{
	return dev->rtnl_link_ops == &link_ops;
}

/*
 * The sockets of a device live in the namespace it was created in, which
 * may exit while the device lives on elsewhere: close them before the
 * namespace goes, and keep the device from opening new ones.
 *
 * The routes the peers cached are routes of that namespace, and hold its
 * devices: their unregistration would wait for the next send, which never
 * comes (with a device of the namespace itself, for ever). Release them
 * now: only a send on a socket uses the caches, and closing the sockets
 * waited for the sends in flight (publish() in socket.c).
 */
static void wg_netns_pre_exit(struct net *net)
{
	struct wg_device *wg;
	struct wg_peer *peer;

	rtnl_lock();
	list_for_each_entry(wg, &wg_devices, device_list) {
		if (wg->creating_net != net)
			continue;
		mutex_lock(&wg->device_update_lock);
		wg_socket_uninit(wg);
		wg->creating_net = NULL;
		list_for_each_entry(peer, &wg->peer_list, peer_list)
			dst_cache_reset_now(&peer->endpoint_cache);
		mutex_unlock(&wg->device_update_lock);
	}
	rtnl_unlock();
}

static struct pernet_operations pernet_ops = {
	.pre_exit = wg_netns_pre_exit,
};

int __init wg_device_init(void)
{
	int ret;

	ret = register_pernet_device(&pernet_ops);
	if (ret)
		return ret;
	ret = rtnl_link_register(&link_ops);
	if (ret)
		unregister_pernet_device(&pernet_ops);
	return ret;
}

void wg_device_uninit(void)
{
	rtnl_link_unregister(&link_ops);
	unregister_pernet_device(&pernet_ops);
	/* Peers are freed by RCU callbacks, which are this module's code. */
	rcu_barrier();
}
