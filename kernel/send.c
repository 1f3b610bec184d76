// SPDX-License-Identifier: GPL-2.0
/*
 * Handshake messages, data and keepalives out. A handshake message costs
 * Curve25519 operations, so an initiation that the transmit path asks for
 * is made on the device's handshake workqueue; a response is made by the
 * handshake worker that consumed the initiation.
 */

#include "send.h"
#include "cookie.h"
#include "device.h"
#include "noise.h"
#include "peer.h"
#include "queueing.h"
#include "socket.h"
#include "timers.h"

#include <linux/jiffies.h>
#include <linux/workqueue.h>
#include <net/ip_tunnels.h>

static void send_initiation(struct wg_peer *peer)
{
	struct wg_msg_initiation msg;

	WRITE_ONCE(peer->last_sent_handshake, jiffies);
	if (!wg_noise_create_initiation(peer->device, peer, &msg))
		return;
	wg_cookie_add_macs(&peer->cookie, &msg, sizeof(msg));
	wg_timers_handshake_initiated(peer);
	if (!wg_socket_send_buffer_to_peer(peer, &msg, sizeof(msg)))
		wg_timers_authenticated_sent(peer);
	memzero_explicit(&msg, sizeof(msg));
}

void wg_send_handshake_initiation_work(struct work_struct *work)
{
	struct wg_peer *peer = container_of(work, struct wg_peer,
					    transmit_handshake_work);

	send_initiation(peer);
	wg_peer_put(peer);
}

/**
 * wg_send_queue_handshake_initiation - start a handshake soon
 * @peer: the peer
 * @retry: a retransmission, which the timer already spaced out
 *
 * Otherwise at most one initiation per WG_REKEY_TIMEOUT is sent, and the
 * retry count starts over. Callable from the transmit path.
 */
void wg_send_queue_handshake_initiation(struct wg_peer *peer, bool retry)
{
	unsigned long last = READ_ONCE(peer->last_sent_handshake);

	/*
	 * New traffic starts the retry count over, even when the initiation
	 * itself must wait: a peer that keeps sending never gives up.
	 */
	if (!retry) {
		peer->handshake_attempts = 0;
		if (last && time_before(jiffies, last + WG_REKEY_TIMEOUT * HZ))
			return;
	}
	if (READ_ONCE(peer->is_dead))
		return;
	wg_peer_get(peer);
	if (!queue_work(peer->device->handshake_wq,
			&peer->transmit_handshake_work))
		wg_peer_put(peer);
}

/**
 * wg_send_handshake_response - answer a consumed initiation
 * @peer: the peer, from the handshake worker
 *
 * The session the response completes waits for the initiator's first data
 * message before it is used.
 */
void wg_send_handshake_response(struct wg_peer *peer)
{
	struct wg_msg_response msg;

	WRITE_ONCE(peer->last_sent_handshake, jiffies);
	if (!wg_noise_create_response(peer->device, peer, &msg))
		return;
	if (!wg_noise_begin_session(peer->device, peer))
		goto out;
	wg_timers_session_derived(peer);
	wg_cookie_add_macs(&peer->cookie, &msg, sizeof(msg));
	if (!wg_socket_send_buffer_to_peer(peer, &msg, sizeof(msg)))
		wg_timers_authenticated_sent(peer);
out:
	memzero_explicit(&msg, sizeof(msg));
}

/*
 * Makes @skb linear and private, with room for the message header in front
 * of it and for padding and the tag behind: sealing works in place. Packets
 * of the stack are often clones (TCP keeps its own for retransmission) or
 * segments that point into pages. The skb stays the same one and stays
 * charged to its socket, so TCP's small queues still limit what one flow
 * has in the pipeline.
 */
static bool make_writable(struct sk_buff *skb)
{
	unsigned int tail = ALIGN(skb->len, MESSAGE_PADDING_MULTIPLE) -
			    skb->len + NOISE_AUTHTAG_LEN;
	unsigned int head = WG_DATA_HEADROOM;

	if (skb_cloned(skb) || skb_is_nonlinear(skb) ||
	    skb_headroom(skb) < head || skb_tailroom(skb) < tail) {
		head = head > skb_headroom(skb) ? head - skb_headroom(skb) : 0;
		if (pskb_expand_head(skb, head, tail + skb->data_len,
				     GFP_ATOMIC))
			return false;
	}
	/* Copies the pages into the room just made; allocates nothing. */
	return !skb_linearize(skb);
}

/* Pads @skb, seals it in place and puts the data header in front. */
static void seal_packet(struct sk_buff *skb, struct noise_keypair *keypair,
			u64 nonce, unsigned int mtu)
{
	unsigned int len = skb->len;
	unsigned int padded = ALIGN(len, MESSAGE_PADDING_MULTIPLE);
	struct wg_msg_data *header;

	/* Padding never makes a packet that fit the MTU exceed it. */
	if (padded > mtu)
		padded = max(len, mtu);
	skb_put_zero(skb, padded - len);
	skb_put(skb, NOISE_AUTHTAG_LEN);
	chacha20poly1305_encrypt(skb->data, skb->data, padded, NULL, 0, nonce,
				 keypair->send_key);
	header = skb_push(skb, sizeof(*header));
	header->type = cpu_to_le32(WG_MSG_DATA);
	header->receiver = keypair->remote_index;
	header->counter = cpu_to_le64(nonce);
}

static bool keypair_usable(struct noise_keypair *keypair)
{
	return ktime_get_coarse_boottime_ns() - keypair->created <
	       (u64)WG_REJECT_AFTER_TIME * NSEC_PER_SEC &&
	       atomic64_read(&keypair->send_counter) < WG_REJECT_AFTER_MESSAGES;
}

/* An initiator rekeys its session when it gets old or much used. */
static bool keypair_wants_rekey(struct noise_keypair *keypair)
{
	return keypair->initiator &&
	       (ktime_get_coarse_boottime_ns() - keypair->created >
		(u64)WG_REKEY_AFTER_TIME * NSEC_PER_SEC ||
		atomic64_read(&keypair->send_counter) >
		WG_REKEY_AFTER_MESSAGES);
}

/**
 * wg_encrypt_worker - seal queued packets; runs on every CPU
 * @work: this CPU's worker of the device's encrypt queue
 */
void wg_encrypt_worker(struct work_struct *work)
{
	struct wg_crypt_worker *worker =
		container_of(work, struct wg_crypt_worker, work);
	unsigned int budget = WG_CRYPT_BUDGET;
	enum wg_packet_state state;
	struct sk_buff *skb;

	if (wg_crypt_run_deferred()) {
		queue_work(worker->wg->packet_crypt_wq, work);
		return;
	}
	while ((skb = ptr_ring_consume_bh(&worker->queue->ring))) {
		struct wg_packet_cb *cb = WG_PACKET_CB(skb);
		struct wg_peer *peer = cb->peer;

		if (likely(make_writable(skb))) {
			seal_packet(skb, cb->keypair, cb->nonce, cb->mtu);
			state = WG_PACKET_DONE;
		} else {
			state = WG_PACKET_DEAD;
		}
		/* After this the serial stage may take and free @skb. */
		atomic_set_release(&cb->state, state);
		/* Work items never run concurrently with themselves. */
		queue_work(worker->wg->packet_crypt_wq, &peer->tx_work);
		if (!--budget) {
			queue_work(worker->wg->packet_crypt_wq, work);
			return;
		}
		cond_resched();
	}
}

/*
 * Messages one run of a peer's transmit work sends before it queues itself
 * again: traffic to one peer that never stops (a routing loop feeds its
 * own queue) must not keep bottom halves or RCU waiting on that CPU.
 */
#define TX_BUDGET 64

/**
 * wg_packet_tx_worker - send a peer's sealed packets in their order
 * @work: the peer's transmit work
 *
 * The work is the queue's only consumer (a work item never runs on two
 * CPUs at once), so the queue's lock is held to take a packet, not to
 * send it.
 */
void wg_packet_tx_worker(struct work_struct *work)
{
	struct wg_peer *peer = container_of(work, struct wg_peer, tx_work);
	struct net_device *dev = peer->device->dev;
	struct noise_keypair *keypair;
	enum wg_packet_state state;
	unsigned int budget = TX_BUDGET;
	struct sk_buff *skb;
	bool data;
	int ret;

	while ((skb = wg_peer_queue_take_done(&peer->tx_queue, &state))) {
		keypair = WG_PACKET_CB(skb)->keypair;
		if (state == WG_PACKET_DEAD) {
			DEV_STATS_INC(dev, tx_dropped);
			wg_count(peer->device, WG_CNT_TX_SEAL_FAILED);
			kfree_skb(skb);
		} else {
			data = skb->len > MESSAGE_DATA_HEADER_LEN +
					  NOISE_AUTHTAG_LEN;
			local_bh_disable();
			ret = wg_socket_send_skb_to_peer(peer, skb,
							 WG_PACKET_CB(skb)->ds);
			local_bh_enable();
			if (ret) {
				DEV_STATS_INC(dev, tx_errors);
				if (ret != -ELOOP)
					wg_count(peer->device,
						 WG_CNT_TX_SEND_FAILED);
			} else {
				if (data)
					wg_timers_data_sent(peer);
				wg_timers_authenticated_sent(peer);
			}
		}
		wg_noise_keypair_put(keypair);
		/* The list's reference remains: removal cancels this work. */
		wg_peer_put(peer);
		if (!--budget) {
			queue_work(peer->device->packet_crypt_wq, work);
			return;
		}
	}
}

/*
 * Packets wait here while a handshake runs; the oldest go first. A
 * handshake may take long or never come, so a waiting packet no longer
 * counts against its socket: a sender blocked on its send buffer would
 * never send the packet that starts the next attempt.
 */
static void stage_packet(struct wg_peer *peer, struct sk_buff *skb)
{
	struct sk_buff *old = NULL;

	skb_orphan(skb);
	spin_lock_bh(&peer->staged_packets.lock);
	if (skb_queue_len(&peer->staged_packets) >= MAX_STAGED_PACKETS)
		old = __skb_dequeue(&peer->staged_packets);
	__skb_queue_tail(&peer->staged_packets, skb);
	spin_unlock_bh(&peer->staged_packets.lock);
	if (old) {
		DEV_STATS_INC(peer->device->dev, tx_dropped);
		wg_count(peer->device, WG_CNT_TX_STAGED_OVERFLOW);
		kfree_skb(old);
	}
}

/**
 * wg_send_packet - send an inner packet to a peer
 * @peer: the peer cryptokey routing chose
 * @skb: an IPv4 or IPv6 packet, its cb's mtu set; consumed
 *
 * Called with bottom halves disabled. Without a usable session the packet
 * is staged and a handshake started; otherwise it joins the pipeline.
 */
void wg_send_packet(struct wg_peer *peer, struct sk_buff *skb)
{
	struct net_device *dev = peer->device->dev;
	struct noise_keypair *keypair;
	struct wg_packet_cb *cb;

	/* Checked in this RCU read side section: see peer removal. */
	if (unlikely(READ_ONCE(peer->is_dead)))
		goto drop;
	keypair = wg_noise_keypair_current(&peer->keypairs);
	if (!keypair || !keypair_usable(keypair)) {
		wg_noise_keypair_put(keypair);
		stage_packet(peer, skb);
		wg_send_queue_handshake_initiation(peer, false);
		return;
	}
	if (keypair_wants_rekey(keypair))
		wg_send_queue_handshake_initiation(peer, false);

	cb = WG_PACKET_CB(skb);
	cb->nonce = atomic64_inc_return(&keypair->send_counter) - 1;
	if (unlikely(cb->nonce >= WG_REJECT_AFTER_MESSAGES))
		goto drop_keypair;
	cb->keypair = keypair;
	cb->peer = wg_peer_get(peer);
	/*
	 * What of the inner packet the outer one keeps: its ECN bits, and
	 * its flow hash, so that a peer's flows still spread over queues.
	 * Nothing else: no offload state carries over to the message.
	 */
	cb->ds = skb->len ? ip_tunnel_ecn_encap(0, ip_hdr(skb), skb) : 0;
	if (skb->len)
		skb_get_hash(skb);
	skb->encapsulation = 0;
	skb->ip_summed = CHECKSUM_NONE;
	atomic_set(&cb->state, WG_PACKET_PENDING);
	if (likely(wg_crypt_queue_enqueue(peer->device,
					  &peer->device->encrypt_queue,
					  &peer->tx_queue, MAX_QUEUED_PACKETS,
					  skb)))
		return;
	wg_peer_put(peer);
drop_keypair:
	wg_noise_keypair_put(keypair);
drop:
	DEV_STATS_INC(dev, tx_dropped);
	wg_count(peer->device, WG_CNT_TX_QUEUE_FULL);
	kfree_skb(skb);
}

/**
 * wg_send_staged - send what waited for a session
 * @peer: the peer, which has a current session now
 *
 * Return: how many packets went out.
 */
unsigned int wg_send_staged(struct wg_peer *peer)
{
	struct noise_keypair *keypair;
	struct sk_buff_head packets;
	struct sk_buff *skb;
	unsigned int sent = 0;

	keypair = wg_noise_keypair_current(&peer->keypairs);
	if (!keypair)
		return 0;
	wg_noise_keypair_put(keypair);
	__skb_queue_head_init(&packets);
	spin_lock_bh(&peer->staged_packets.lock);
	skb_queue_splice_init(&peer->staged_packets, &packets);
	spin_unlock_bh(&peer->staged_packets.lock);
	local_bh_disable();
	while ((skb = __skb_dequeue(&packets))) {
		wg_send_packet(peer, skb);
		++sent;
	}
	local_bh_enable();
	return sent;
}

/**
 * wg_send_keepalive - send an empty data message with the current session
 * @peer: the peer
 *
 * An initiator sends one as soon as its session exists, unless packets
 * waited for it: either confirms the session to the responder.
 */
void wg_send_keepalive(struct wg_peer *peer)
{
	struct sk_buff *skb;

	skb = alloc_skb(WG_OUTER_HEADROOM + MESSAGE_DATA_HEADER_LEN +
			NOISE_AUTHTAG_LEN, GFP_ATOMIC);
	if (unlikely(!skb))
		return;
	skb_reserve(skb, WG_OUTER_HEADROOM + MESSAGE_DATA_HEADER_LEN);
	/* Nothing to pad: the cb is zeroed, so is the MTU it gives. */
	local_bh_disable();
	wg_send_packet(peer, skb);
	local_bh_enable();
}

#ifdef CONFIG_WIREGUARD_KUNIT_TEST
#include "tests/send_kunit.c"
#endif
