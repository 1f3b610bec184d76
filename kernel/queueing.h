/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The multicore packet pipeline: packets are sealed and opened by workers
 * on every online CPU, and leave each peer's queue in the order they
 * entered it.
 */

#ifndef _WG_QUEUEING_H
#define _WG_QUEUEING_H

#include <linux/atomic.h>
#include <linux/ptr_ring.h>
#include <linux/skbuff.h>
#include <linux/workqueue.h>

struct noise_keypair;
struct wg_device;
struct wg_peer;

/**
 * enum wg_packet_state - where a packet is in the pipeline
 * @WG_PACKET_PENDING: queued for sealing or opening
 * @WG_PACKET_DONE: sealed or opened; may leave the peer's queue
 * @WG_PACKET_DEAD: failed; dropped when it reaches the queue's head
 */
enum wg_packet_state {
	WG_PACKET_PENDING,
	WG_PACKET_DONE,
	WG_PACKET_DEAD,
};

/**
 * struct wg_packet_cb - a packet's pipeline state, in skb->cb
 * @nonce: the message counter
 * @keypair: the session, with a reference held
 * @peer: the peer, with a reference held
 * @state: see enum wg_packet_state; set with release semantics
 * @mtu: on transmit, the MTU of the inner packet's route, which padding
 *	must not exceed; set by the device's transmit before anything else
 * @ds: the outer DS field: on transmit, the inner packet's ECN bits to
 *	copy out; on receive, the outer header's, for a congestion mark to
 *	copy in
 * @nesting: on transmit, how many messages of wireguard devices the
 *	packet already is inside: 0 for a packet from the stack (see
 *	wg_socket_nesting())
 */
struct wg_packet_cb {
	u64 nonce;
	struct noise_keypair *keypair;
	struct wg_peer *peer;
	atomic_t state;
	u32 mtu;
	u8 ds;
	u8 nesting;
};

#define WG_PACKET_CB(skb) ((struct wg_packet_cb *)((skb)->cb))

/*
 * Packets one run of a crypt worker handles before it queues itself again:
 * traffic that never stops must not keep a run going forever, since peer
 * removal flushes the crypt workqueue (under RTNL) and waits for runs that
 * began before it.
 */
#define WG_CRYPT_BUDGET 256

#if IS_ENABLED(CONFIG_WIREGUARD_DEBUG) && IS_ENABLED(CONFIG_FAULT_INJECTION)
bool wg_crypt_run_deferred(void);
void wg_fault_init(void);
void wg_fault_uninit(void);
#else
static inline bool wg_crypt_run_deferred(void)
{
	return false;
}

static inline void wg_fault_init(void) {}
static inline void wg_fault_uninit(void) {}
#endif

/* Handshake messages one run of the device's handshake worker handles. */
#define WG_HANDSHAKE_BUDGET 64

/**
 * struct wg_crypt_queue - packets waiting for any CPU to seal or open them
 * @ring: the packets
 * @workers: one work item per CPU, each draining @ring
 * @last_cpu: where the last batch went, for round robin
 */
struct wg_crypt_queue {
	struct ptr_ring ring;
	struct wg_crypt_worker __percpu *workers;
	int last_cpu;
};

/**
 * struct wg_crypt_worker - one CPU's worker on a crypt queue
 * @queue: the queue
 * @wg: the device
 * @work: runs the worker function on its CPU
 */
struct wg_crypt_worker {
	struct wg_crypt_queue *queue;
	struct wg_device *wg;
	struct work_struct work;
};

int wg_crypt_queue_init(struct wg_crypt_queue *queue, struct wg_device *wg,
			work_func_t fn, unsigned int len);
void wg_crypt_queue_free(struct wg_crypt_queue *queue);
bool wg_crypt_queue_enqueue(struct wg_device *wg, struct wg_crypt_queue *queue,
			    struct sk_buff_head *peer_queue, unsigned int limit,
			    struct sk_buff *skb);
void wg_packet_release(struct sk_buff *skb);

/*
 * A peer's ordered queue is a list of the packets themselves, not a ring:
 * a peer costs no array, however many there are. Producers append and the
 * one consumer (transmit work, NAPI) takes from the head, under the list's
 * lock; at most MAX_QUEUED_PACKETS (transmit) or MAX_QUEUED_RX_PACKETS
 * (receive) wait.
 */
void wg_peer_queue_init(struct sk_buff_head *queue);
struct sk_buff *wg_peer_queue_take_done(struct sk_buff_head *queue,
					enum wg_packet_state *state);
bool wg_peer_queue_pending(struct sk_buff_head *queue);
void wg_peer_queue_purge(struct sk_buff_head *queue);

#endif /* _WG_QUEUEING_H */
