// SPDX-License-Identifier: GPL-2.0
/*
 * A packet enters two queues at once: its peer's, which keeps the order,
 * and the device's crypt queue, from which the worker on whichever CPU gets
 * to it first seals or opens it. Workers mark a packet done; the peer's
 * serial stage (transmit work, or receive NAPI) takes packets off the head
 * of the peer's queue only once they are done, so that a peer's packets
 * leave in the order they came while the crypto runs on every CPU.
 */

#include "queueing.h"
#include "device.h"
#include "noise.h"
#include "peer.h"

#include <linux/cpumask.h>
#include <linux/debugfs.h>
#include <linux/fault-inject.h>

int wg_crypt_queue_init(struct wg_crypt_queue *queue, struct wg_device *wg,
			work_func_t fn, unsigned int len)
{
	int cpu, ret;

	ret = ptr_ring_init(&queue->ring, len, GFP_KERNEL);
	if (ret)
		return ret;
	queue->workers = alloc_percpu(struct wg_crypt_worker);
	if (!queue->workers) {
		ptr_ring_cleanup(&queue->ring, NULL);
		return -ENOMEM;
	}
	for_each_possible_cpu(cpu) {
		struct wg_crypt_worker *w = per_cpu_ptr(queue->workers, cpu);

		w->queue = queue;
		w->wg = wg;
		INIT_WORK(&w->work, fn);
	}
	queue->last_cpu = -1;
	return 0;
}

/* The workqueue is flushed and the peers' queues purged before this. */
void wg_crypt_queue_free(struct wg_crypt_queue *queue)
{
	free_percpu(queue->workers);
	WARN_ON(!__ptr_ring_empty(&queue->ring));
	ptr_ring_cleanup(&queue->ring, NULL);
}

static int next_cpu(struct wg_crypt_queue *queue)
{
	int cpu = cpumask_next(READ_ONCE(queue->last_cpu), cpu_online_mask);

	if (cpu >= nr_cpu_ids)
		cpu = cpumask_first(cpu_online_mask);
	WRITE_ONCE(queue->last_cpu, cpu);
	return cpu;
}

/**
 * wg_crypt_queue_enqueue - queue a packet for sealing or opening
 * @wg: the device
 * @queue: the device's crypt queue
 * @peer_queue: the peer's ordered queue
 * @limit: how many packets @peer_queue may hold
 * @skb: the packet, its control block filled in, state pending
 *
 * Return: false if the peer's queue or the crypt queue is full: the caller
 * still owns @skb.
 */
bool wg_crypt_queue_enqueue(struct wg_device *wg, struct wg_crypt_queue *queue,
			    struct sk_buff_head *peer_queue, unsigned int limit,
			    struct sk_buff *skb)
{
	int cpu;

	spin_lock_bh(&peer_queue->lock);
	if (unlikely(skb_queue_len(peer_queue) >= limit)) {
		spin_unlock_bh(&peer_queue->lock);
		return false;
	}
	__skb_queue_tail(peer_queue, skb);
	spin_unlock_bh(&peer_queue->lock);
	if (unlikely(ptr_ring_produce_bh(&queue->ring, skb))) {
		/*
		 * Still pending, so the serial stage has not taken it; nor
		 * would anything run that stage for it.
		 */
		spin_lock_bh(&peer_queue->lock);
		__skb_unlink(skb, peer_queue);
		spin_unlock_bh(&peer_queue->lock);
		return false;
	}
	cpu = next_cpu(queue);
	queue_work_on(cpu, wg->packet_crypt_wq,
		      &per_cpu_ptr(queue->workers, cpu)->work);
	return true;
}

/* Drops the references a queued packet holds, and the packet. */
void wg_packet_release(struct sk_buff *skb)
{
	wg_noise_keypair_put(WG_PACKET_CB(skb)->keypair);
	wg_peer_put(WG_PACKET_CB(skb)->peer);
	kfree_skb(skb);
}

/*
 * The peer queues' lock has a lockdep class of its own, apart from the
 * other sk_buff_heads' (the staged packets', the handshake queue), which
 * it is never taken with.
 */
static struct lock_class_key peer_queue_key;

/**
 * wg_peer_queue_init - prepare a peer's ordered queue
 * @queue: the queue
 */
void wg_peer_queue_init(struct sk_buff_head *queue)
{
	__skb_queue_head_init(queue);
	spin_lock_init(&queue->lock);
	lockdep_set_class(&queue->lock, &peer_queue_key);
}

/**
 * wg_peer_queue_take_done - take the head of a peer's queue if it is done
 * @queue: the queue, of which the caller is the only consumer
 * @state: set to the packet's state, WG_PACKET_DONE or WG_PACKET_DEAD
 *
 * Return: the packet, or NULL if the queue is empty or its head is still
 * being sealed or opened.
 */
struct sk_buff *wg_peer_queue_take_done(struct sk_buff_head *queue,
					enum wg_packet_state *state)
{
	struct sk_buff *skb;

	spin_lock_bh(&queue->lock);
	skb = skb_peek(queue);
	if (skb) {
		*state = atomic_read_acquire(&WG_PACKET_CB(skb)->state);
		if (*state == WG_PACKET_PENDING)
			skb = NULL;
		else
			__skb_unlink(skb, queue);
	}
	spin_unlock_bh(&queue->lock);
	return skb;
}

/**
 * wg_peer_queue_pending - whether a packet of the queue awaits a worker
 * @queue: a peer's queue
 *
 * Return: true while a packet is still to be sealed or opened.
 */
bool wg_peer_queue_pending(struct sk_buff_head *queue)
{
	struct sk_buff *skb;
	bool pending = false;

	spin_lock_bh(&queue->lock);
	skb_queue_walk(queue, skb) {
		if (atomic_read_acquire(&WG_PACKET_CB(skb)->state) ==
		    WG_PACKET_PENDING) {
			pending = true;
			break;
		}
	}
	spin_unlock_bh(&queue->lock);
	return pending;
}

/* Empties a peer's queue of a dead peer, once no worker can touch it. */
void wg_peer_queue_purge(struct sk_buff_head *queue)
{
	struct sk_buff *skb;

	while ((skb = skb_dequeue(queue)))
		wg_packet_release(skb);
}

#if IS_ENABLED(CONFIG_WIREGUARD_DEBUG) && IS_ENABLED(CONFIG_FAULT_INJECTION)
/*
 * Fault injection for tests (debugfs fail_wireguard_crypt_run, see
 * Documentation/fault-injection/fault-injection.rst): a crypt worker's run
 * handles no packet and queues itself again, as one that used up its
 * budget does. A flush of the workqueue does not wait for the run so
 * queued, so packets pile up in the crypt rings and stay there past any
 * number of flushes while the knob is on: the window drain_pipeline() in
 * peer.c must close when a peer is removed, held open on demand.
 */
static DECLARE_FAULT_ATTR(wg_fail_crypt_run);
static struct dentry *wg_fault_dir;

/**
 * wg_crypt_run_deferred - whether a crypt worker's run is to be put off
 *
 * Return: true when fail_wireguard_crypt_run says so; the caller queues
 * its work again and returns.
 */
bool wg_crypt_run_deferred(void)
{
	return should_fail(&wg_fail_crypt_run, 1);
}

/* Without CONFIG_FAULT_INJECTION_DEBUG_FS there is no knob: never fails. */
void wg_fault_init(void)
{
	wg_fault_dir = fault_create_debugfs_attr("fail_wireguard_crypt_run",
						 NULL, &wg_fail_crypt_run);
	if (IS_ERR(wg_fault_dir))
		wg_fault_dir = NULL;
}

void wg_fault_uninit(void)
{
	debugfs_remove_recursive(wg_fault_dir);
}
#endif
