// SPDX-License-Identifier: GPL-2.0
/*
 * Packets from the UDP sockets. The encapsulation handler runs in softirq
 * context: it checks a message's type and length, and queues handshake
 * messages, which cost Curve25519 operations, to a bounded queue that the
 * device's handshake worker drains. A full queue drops messages rather
 * than let a flood use memory without bound.
 *
 * Data messages are queued for opening by the crypt workers on every CPU,
 * then, in each peer's order, its NAPI context checks them against the
 * session's replay window and hands the inner packets to GRO if cryptokey
 * routing agrees that the peer may use their source address. An
 * authenticated message confirms a new session and moves the endpoint.
 */

#include "receive.h"
#include "cookie.h"
#include "device.h"
#include "messages.h"
#include "noise.h"
#include "peer.h"
#include "queueing.h"
#include "ratelimiter.h"
#include "send.h"
#include "socket.h"
#include "timers.h"

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <net/inet_ecn.h>
#include <net/ip_tunnels.h>
#include <net/sock.h>
#include <net/udp_tunnel.h>

/* Where the message starts: after the UDP header. */
static unsigned int message_offset(const struct sk_buff *skb)
{
	return skb_transport_offset(skb) + sizeof(struct udphdr);
}

/* The message after the UDP header, and its length. */
static void *message_of(struct sk_buff *skb, size_t *len)
{
	unsigned int offset = message_offset(skb);

	*len = skb->len - offset;
	return skb->data + offset;
}

static size_t expected_len(u32 type)
{
	switch (type) {
	case WG_MSG_INITIATION:
		return sizeof(struct wg_msg_initiation);
	case WG_MSG_RESPONSE:
		return sizeof(struct wg_msg_response);
	case WG_MSG_COOKIE_REPLY:
		return sizeof(struct wg_msg_cookie_reply);
	default:
		return 0;
	}
}

static void receive_data(struct wg_device *wg, struct sk_buff *skb);

/**
 * wg_receive - the UDP encapsulation handler of the device's sockets
 * @sk: the socket
 * @skb: a datagram, data at the UDP header
 *
 * Return: 0: the packet is consumed either way.
 */
int wg_receive(struct sock *sk, struct sk_buff *skb)
{
	struct wg_device *wg = rcu_dereference_sk_user_data(sk);
	unsigned int offset = message_offset(skb);
	size_t len;
	u32 type;

	if (unlikely(!wg))
		goto drop;
	if (unlikely(!pskb_may_pull(skb, offset + sizeof(__le32))))
		goto invalid;
	type = le32_to_cpup((__le32 *)message_of(skb, &len));

	if (type == WG_MSG_DATA) {
		if (len < sizeof(struct wg_msg_data) + NOISE_AUTHTAG_LEN)
			goto invalid;
		receive_data(wg, skb);
		return 0;
	}
	if (!expected_len(type) || len != expected_len(type))
		goto invalid;
	/*
	 * mac1 costs one BLAKE2s and proves the sender knows our public key:
	 * checked before queueing, junk never takes a place in the queue
	 * from a legitimate handshake. Cookie replies carry no mac1.
	 */
	if (type != WG_MSG_COOKIE_REPLY) {
		if (unlikely(!pskb_may_pull(skb, offset + len)))
			goto invalid;
		if (!wg_cookie_mac1_valid(&wg->cookie_checker,
					  message_of(skb, &len), len)) {
			DEV_STATS_INC(wg->dev, rx_errors);
			wg_count(wg, WG_CNT_RX_BAD_MAC1);
			goto drop;
		}
	}
	if (skb_queue_len_lockless(&wg->handshake_queue) >=
	    MAX_QUEUED_HANDSHAKES) {
		net_dbg_ratelimited("%s: handshake queue full, dropping\n",
				    wg->dev->name);
		DEV_STATS_INC(wg->dev, rx_dropped);
		wg_count(wg, WG_CNT_RX_HANDSHAKE_QUEUE_FULL);
		goto drop;
	}
	skb_queue_tail(&wg->handshake_queue, skb);
	queue_work(wg->handshake_wq, &wg->handshake_work);
	return 0;

invalid:
	DEV_STATS_INC(wg->dev, rx_errors);
	wg_count(wg, WG_CNT_RX_INVALID_MESSAGE);
drop:
	kfree_skb(skb);
	return 0;
}

/*
 * Received bytes are counted as WireGuard messages, handshakes, data and
 * keepalives alike, without the outer headers, for the peer and for the
 * device: what upstream counts, and what its selftest checks.
 */
static void count_rx(struct wg_peer *peer, size_t len)
{
	atomic64_add(len, &peer->rx_bytes);
	local_bh_disable();
	dev_sw_netstats_rx_add(peer->device->dev, len);
	local_bh_enable();
}

static void handshake_received(struct wg_peer *peer, struct sk_buff *skb,
			       size_t len)
{
	struct wg_endpoint endpoint;

	/* The endpoint follows the newest authenticated message. */
	wg_endpoint_of_skb(skb, &endpoint);
	wg_peer_set_endpoint(peer, &endpoint);
	count_rx(peer, len);
}

/*
 * The length of the inner packet at the start of @skb, from its own IP
 * header, so that the padding can go; 0 when it is not a well-formed
 * IPv4 or IPv6 packet that fits.
 */
static unsigned int inner_packet_len(struct sk_buff *skb, __be16 *protocol)
{
	unsigned int len;

	if (skb->len >= sizeof(struct iphdr) && ip_hdr(skb)->version == 4) {
		len = ntohs(ip_hdr(skb)->tot_len);
		if (len < ip_hdr(skb)->ihl * 4U)
			return 0;
		*protocol = htons(ETH_P_IP);
	} else if (skb->len >= sizeof(struct ipv6hdr) &&
		   ipv6_hdr(skb)->version == 6) {
		len = sizeof(struct ipv6hdr) +
		      ntohs(ipv6_hdr(skb)->payload_len);
		*protocol = htons(ETH_P_IPV6);
	} else {
		return 0;
	}
	return len <= skb->len ? len : 0;
}

/*
 * Hands an authenticated inner packet to the stack, if its source is one
 * the sending peer may use. Consumes @skb.
 */
static void deliver(struct wg_device *wg, struct wg_peer *peer,
		    struct sk_buff *skb, unsigned int offset)
{
	u8 outer_ds = WG_PACKET_CB(skb)->ds;
	struct net_device *dev = wg->dev;
	struct wg_peer *routed;
	unsigned int len;
	__be16 protocol;

	__skb_pull(skb, offset);
	skb_reset_network_header(skb);
	len = inner_packet_len(skb, &protocol);
	if (unlikely(!len)) {
		DEV_STATS_INC(dev, rx_errors);
		wg_count(wg, WG_CNT_RX_BAD_INNER_PACKET);
		goto drop;
	}
	if (pskb_trim(skb, len))
		goto drop;
	skb->protocol = protocol;

	routed = wg_allowedips_lookup_src(&wg->peer_allowedips, skb);
	wg_peer_put(routed);
	if (unlikely(routed != peer)) {
		net_dbg_ratelimited("%s: packet from a source the peer may not use\n",
				    dev->name);
		DEV_STATS_INC(dev, rx_errors);
		DEV_STATS_INC(dev, rx_frame_errors);
		wg_count(wg, WG_CNT_RX_BAD_SOURCE);
		goto drop;
	}

	/* A new packet of this device: nothing of the outer one applies. */
	skb_scrub_packet(skb, true);
	skb->dev = dev;
	skb->pkt_type = PACKET_HOST;
	skb_reset_mac_header(skb);
	skb_reset_transport_header(skb);
	/*
	 * Authenticated by the AEAD: corruption cannot go unnoticed. With
	 * rx-checksumming turned off the stack checks the inner checksums
	 * all the same.
	 */
	if (dev->features & NETIF_F_RXCSUM) {
		skb->ip_summed = CHECKSUM_UNNECESSARY;
		skb->csum_level = ~0;
	} else {
		skb->ip_summed = CHECKSUM_NONE;
	}
	/* Congestion met on the outside is congestion of the inner flow. */
	if (INET_ECN_is_ce(outer_ds)) {
		if (protocol == htons(ETH_P_IP))
			IP_ECN_set_ce(ip_hdr(skb));
		else
			IP6_ECN_set_ce(skb, ipv6_hdr(skb));
	}
	napi_gro_receive(&peer->napi, skb);
	return;
drop:
	kfree_skb(skb);
}

/*
 * Queues a data message for opening by any CPU, in its peer's order;
 * softirq context. Consumes @skb.
 */
static void receive_data(struct wg_device *wg, struct sk_buff *skb)
{
	struct noise_keypair *keypair;
	struct wg_packet_cb *cb;
	struct wg_msg_data *msg;
	struct wg_peer *peer;
	size_t len;

	/*
	 * Only the header here; the rest is made private where it is opened.
	 * The length was checked: only an allocation can fail.
	 */
	if (unlikely(!pskb_may_pull(skb, message_offset(skb) + sizeof(*msg)))) {
		DEV_STATS_INC(wg->dev, rx_dropped);
		goto drop;
	}
	msg = message_of(skb, &len);
	keypair = wg_noise_keypair_lookup(wg, msg->receiver, &peer);
	if (!keypair) {
		DEV_STATS_INC(wg->dev, rx_errors);
		wg_count(wg, WG_CNT_RX_UNKNOWN_SESSION);
		goto drop;
	}
	/* Checked in this RCU read side section: see peer removal. */
	if (unlikely(READ_ONCE(peer->is_dead)))
		goto release;
	cb = WG_PACKET_CB(skb);
	cb->nonce = le64_to_cpu(msg->counter);
	cb->keypair = keypair;
	cb->peer = peer;
	cb->ds = ip_tunnel_get_dsfield(ip_hdr(skb), skb);
	atomic_set(&cb->state, WG_PACKET_PENDING);
	if (likely(wg_crypt_queue_enqueue(wg, &wg->decrypt_queue,
					  &peer->rx_queue,
					  MAX_QUEUED_RX_PACKETS, skb)))
		return;
	DEV_STATS_INC(wg->dev, rx_dropped);
	wg_count(wg, WG_CNT_RX_QUEUE_FULL);
release:
	wg_noise_keypair_put(keypair);
	wg_peer_put(peer);
drop:
	kfree_skb(skb);
}

/*
 * Opens a data message in place, after making it linear and its own (a tap
 * holding a clone must not see the plaintext); refused under a key past its
 * message or time limit, and when it does not authenticate.
 */
static bool open_packet(struct sk_buff *skb,
			const struct noise_keypair *keypair, u64 nonce)
{
	struct wg_msg_data *msg;
	size_t len;

	if (unlikely(skb_linearize_cow(skb)))
		return false;
	msg = message_of(skb, &len);
	return nonce < WG_REJECT_AFTER_MESSAGES &&
	       ktime_get_coarse_boottime_ns() - keypair->created <
	       (u64)WG_REJECT_AFTER_TIME * NSEC_PER_SEC &&
	       chacha20poly1305_decrypt(msg->sealed_packet, msg->sealed_packet,
					len - sizeof(*msg), NULL, 0, nonce,
					keypair->recv_key);
}

/**
 * wg_decrypt_worker - open queued data messages; runs on every CPU
 * @work: this CPU's worker of the device's decrypt queue
 */
void wg_decrypt_worker(struct work_struct *work)
{
	struct wg_crypt_worker *worker =
		container_of(work, struct wg_crypt_worker, work);
	struct wg_packet_cb *cb;
	unsigned int budget = WG_CRYPT_BUDGET;
	struct wg_peer *peer;
	struct sk_buff *skb;
	bool opened;

	if (wg_crypt_run_deferred()) {
		queue_work(worker->wg->packet_crypt_wq, work);
		return;
	}
	while ((skb = ptr_ring_consume_bh(&worker->queue->ring))) {
		cb = WG_PACKET_CB(skb);
		peer = cb->peer;
		opened = open_packet(skb, cb->keypair, cb->nonce);
		/* After this the peer's NAPI may take and free @skb. */
		atomic_set_release(&cb->state, opened ? WG_PACKET_DONE :
							WG_PACKET_DEAD);
		local_bh_disable();
		napi_schedule(&peer->napi);
		local_bh_enable();
		if (!--budget) {
			queue_work(worker->wg->packet_crypt_wq, work);
			return;
		}
		cond_resched();
	}
}

/* What follows a message's opening, in the peer's order. Consumes @skb. */
static void receive_opened(struct wg_peer *peer, struct sk_buff *skb)
{
	struct noise_keypair *keypair = WG_PACKET_CB(skb)->keypair;
	unsigned int offset = message_offset(skb);
	struct wg_device *wg = peer->device;
	struct wg_endpoint endpoint;
	size_t len, sealed_len;

	message_of(skb, &len);
	sealed_len = len - sizeof(struct wg_msg_data);
	if (!wg_replay_accept(&keypair->replay, WG_PACKET_CB(skb)->nonce)) {
		net_dbg_ratelimited("%s: replayed or too old data message %llu\n",
				    wg->dev->name, WG_PACKET_CB(skb)->nonce);
		DEV_STATS_INC(wg->dev, rx_dropped);
		wg_count(wg, WG_CNT_RX_REPLAYED);
		goto drop;
	}
	if (wg_noise_keypair_confirm(wg, &peer->keypairs, keypair)) {
		ktime_get_real_ts64(&peer->walltime_last_handshake);
		wg_timers_handshake_complete(peer);
		wg_send_staged(peer);
	}
	wg_endpoint_of_skb(skb, &endpoint);
	wg_peer_set_endpoint(peer, &endpoint);
	count_rx(peer, len);
	wg_timers_authenticated_received(peer);

	/* An empty message is a keepalive. */
	if (sealed_len > NOISE_AUTHTAG_LEN) {
		wg_timers_data_received(peer);
		skb_trim(skb, skb->len - NOISE_AUTHTAG_LEN);
		deliver(wg, peer, skb, offset + sizeof(struct wg_msg_data));
		return;
	}
drop:
	kfree_skb(skb);
}

/**
 * wg_packet_rx_poll - deliver a peer's opened messages in their order
 * @napi: the peer's NAPI context
 * @budget: how many messages may be handled
 *
 * Return: how many were.
 */
int wg_packet_rx_poll(struct napi_struct *napi, int budget)
{
	struct wg_peer *peer = container_of(napi, struct wg_peer, napi);
	enum wg_packet_state state;
	struct noise_keypair *keypair;
	struct sk_buff *skb;
	int done = 0;

	/* NAPI runs one poll of a context at a time: the only consumer. */
	while (done < budget &&
	       (skb = wg_peer_queue_take_done(&peer->rx_queue, &state))) {
		keypair = WG_PACKET_CB(skb)->keypair;
		if (state == WG_PACKET_DONE) {
			receive_opened(peer, skb);
		} else {
			DEV_STATS_INC(peer->device->dev, rx_errors);
			wg_count(peer->device, WG_CNT_RX_OPEN_FAILED);
			kfree_skb(skb);
		}
		wg_noise_keypair_put(keypair);
		/* The list's reference remains: removal disables this NAPI. */
		wg_peer_put(peer);
		++done;
	}
	if (done < budget)
		napi_complete_done(napi, done);
	return done;
}

static void handle_handshake(struct wg_device *wg, struct sk_buff *skb)
{
	struct wg_peer *peer = NULL;
	bool under_load;
	size_t len;
	void *msg;

	if (skb_linearize(skb)) {
		DEV_STATS_INC(wg->dev, rx_dropped);
		return;
	}
	msg = message_of(skb, &len);
	if (le32_to_cpup(msg) == WG_MSG_COOKIE_REPLY) {
		if (!wg_cookie_consume_reply(wg, msg))
			goto refused;
		return;
	}

	under_load = skb_queue_len_lockless(&wg->handshake_queue) >=
		     MAX_QUEUED_HANDSHAKES / 8;
	/* A flood that pauses for a moment is still a flood. */
	if (under_load)
		WRITE_ONCE(wg->last_under_load, jiffies);
	else
		under_load = time_before(jiffies,
					 READ_ONCE(wg->last_under_load) + HZ);
	/* mac1 was checked before the message was queued. */
	if (under_load &&
	    !wg_cookie_mac2_valid(&wg->cookie_checker, skb, msg, len)) {
		/* Prove your address first: it costs a round trip. */
		wg_cookie_send_reply(wg, skb, msg, len);
		wg_count(wg, WG_CNT_RX_COOKIE_REPLY_SENT);
		return;
	}
	if (under_load && !wg_ratelimiter_allow(skb, dev_net(wg->dev))) {
		DEV_STATS_INC(wg->dev, rx_dropped);
		wg_count(wg, WG_CNT_RX_RATELIMITED);
		return;
	}

	switch (le32_to_cpup(msg)) {
	case WG_MSG_INITIATION:
		peer = wg_noise_consume_initiation(wg, msg);
		if (!peer)
			break;
		handshake_received(peer, skb, len);
		wg_timers_authenticated_received(peer);
		wg_send_handshake_response(peer);
		break;
	case WG_MSG_RESPONSE:
		peer = wg_noise_consume_response(wg, msg);
		if (!peer)
			break;
		handshake_received(peer, skb, len);
		wg_timers_authenticated_received(peer);
		if (wg_noise_begin_session(wg, peer)) {
			ktime_get_real_ts64(&peer->walltime_last_handshake);
			wg_timers_handshake_complete(peer);
			wg_timers_session_derived(peer);
			/* Either confirms the session to the responder. */
			if (!wg_send_staged(peer))
				wg_send_keepalive(peer);
		}
		break;
	}
	if (peer) {
		wg_peer_put(peer);
		return;
	}
refused:
	net_dbg_ratelimited("%s: handshake message not accepted\n",
			    wg->dev->name);
	DEV_STATS_INC(wg->dev, rx_errors);
	wg_count(wg, WG_CNT_RX_HANDSHAKE_REFUSED);
}

/**
 * wg_handshake_worker - process the queued handshake messages
 * @work: the device's handshake work
 *
 * A run handles at most %WG_HANDSHAKE_BUDGET messages, then queues the work
 * again: bringing the device down flushes the handshake workqueue under
 * RTNL, and must wait for one run only, not for a flood to end.
 */
void wg_handshake_worker(struct work_struct *work)
{
	struct wg_device *wg = container_of(work, struct wg_device,
					    handshake_work);
	unsigned int budget = WG_HANDSHAKE_BUDGET;
	struct sk_buff *skb;

	while ((skb = skb_dequeue(&wg->handshake_queue))) {
		handle_handshake(wg, skb);
		kfree_skb(skb);
		if (!--budget) {
			queue_work(wg->handshake_wq, work);
			return;
		}
		cond_resched();
	}
}

#ifdef CONFIG_WIREGUARD_KUNIT_TEST
#include "tests/receive_kunit.c"
#endif
