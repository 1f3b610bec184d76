// SPDX-License-Identifier: GPL-2.0
/*
 * Per-peer timers, each armed and disarmed by events of the send and
 * receive paths:
 *
 * - retransmit: an initiation got no response in WG_REKEY_TIMEOUT (plus
 *   jitter); send another, for at most WG_REKEY_ATTEMPT_TIME.
 * - keepalive: data arrived and nothing went back for
 *   WG_KEEPALIVE_TIMEOUT; send a keepalive so the peer knows it arrived.
 * - new handshake: data went out and nothing authenticated came back for
 *   WG_KEEPALIVE_TIMEOUT + WG_REKEY_TIMEOUT; the session may be dead, so
 *   start a new one.
 * - zero keys: no new session for 3 * WG_REJECT_AFTER_TIME; wipe the
 *   sessions and the handshake.
 * - persistent keepalive: nothing authenticated went either way for the
 *   configured interval; send a keepalive to keep NAT mappings open.
 *
 * Timers run in softirq context; wiping keys takes the handshake's
 * semaphore, so it runs as work.
 */

#include "timers.h"
#include "device.h"
#include "peer.h"
#include "send.h"

#include <linux/jiffies.h>
#include <linux/random.h>

/*
 * Retries of an initiation before giving up: one per WG_REKEY_TIMEOUT for
 * WG_REKEY_ATTEMPT_TIME, and one more, so that the last retry goes out
 * after WG_REKEY_ATTEMPT_TIME has passed (20 initiations in all).
 */
#define MAX_HANDSHAKE_RETRIES (WG_REKEY_ATTEMPT_TIME / WG_REKEY_TIMEOUT + 1)
#define REKEY_JITTER_JIFFIES (HZ / 3)

/*
 * Timers are armed only while the peer exists and its device is up. The
 * test and the arming are one RCU read side section: removal marks the
 * peer dead and waits for a grace period before it stops the timers, so
 * no timer is armed again after they stopped.
 */
static void arm(struct wg_peer *peer, struct timer_list *timer,
		unsigned long delay)
{
	rcu_read_lock_bh();
	if (!READ_ONCE(peer->is_dead) && netif_running(peer->device->dev))
		mod_timer(timer, jiffies + delay);
	rcu_read_unlock_bh();
}

static void retransmit_expired(struct timer_list *timer)
{
	struct wg_peer *peer = timer_container_of(peer, timer,
						  timer_retransmit);

	if (peer->handshake_attempts >= MAX_HANDSHAKE_RETRIES) {
		/* Give up: drop what waited and let the keys expire. */
		timer_delete(&peer->timer_keepalive);
		wg_peer_purge_staged(peer);
		if (!timer_pending(&peer->timer_zero_keys))
			arm(peer, &peer->timer_zero_keys,
			    3 * WG_REJECT_AFTER_TIME * HZ);
		return;
	}
	++peer->handshake_attempts;
	/* The source address may be why nothing came back. */
	wg_peer_clear_src(peer);
	wg_send_queue_handshake_initiation(peer, true);
}

static void keepalive_expired(struct timer_list *timer)
{
	struct wg_peer *peer = timer_container_of(peer, timer,
						  timer_keepalive);

	wg_send_keepalive(peer);
}

static void new_handshake_expired(struct timer_list *timer)
{
	struct wg_peer *peer = timer_container_of(peer, timer,
						  timer_new_handshake);

	/* Data went out and nothing came back: as for a retransmit. */
	wg_peer_clear_src(peer);
	wg_send_queue_handshake_initiation(peer, false);
}

static void zero_keys_expired(struct timer_list *timer)
{
	struct wg_peer *peer = timer_container_of(peer, timer,
						  timer_zero_keys);

	wg_peer_get(peer);
	if (!queue_work(peer->device->handshake_wq, &peer->clear_work))
		wg_peer_put(peer);
}

static void persistent_keepalive_expired(struct timer_list *timer)
{
	struct wg_peer *peer = timer_container_of(peer, timer,
					  timer_persistent_keepalive);

	if (READ_ONCE(peer->persistent_keepalive_interval))
		wg_send_keepalive(peer);
}

static void clear_work(struct work_struct *work)
{
	struct wg_peer *peer = container_of(work, struct wg_peer, clear_work);

	wg_noise_keypairs_clear(peer->device, &peer->keypairs);
	wg_noise_handshake_reset(peer->device, &peer->handshake);
	wg_peer_put(peer);
}

void wg_timers_init(struct wg_peer *peer)
{
	timer_setup(&peer->timer_retransmit, retransmit_expired, 0);
	timer_setup(&peer->timer_keepalive, keepalive_expired, 0);
	timer_setup(&peer->timer_new_handshake, new_handshake_expired, 0);
	timer_setup(&peer->timer_zero_keys, zero_keys_expired, 0);
	timer_setup(&peer->timer_persistent_keepalive,
		    persistent_keepalive_expired, 0);
	INIT_WORK(&peer->clear_work, clear_work);
	peer->handshake_attempts = 0;
}

/**
 * wg_timers_stop - stop every timer of a peer
 * @peer: the peer, dead or on a device going down
 *
 * A timer that is running may arm another; the callers make arm() refuse
 * first: removal marks the peer dead and waits for a grace period, a
 * device going down is no longer running.
 */
void wg_timers_stop(struct wg_peer *peer)
{
	timer_delete_sync(&peer->timer_retransmit);
	timer_delete_sync(&peer->timer_keepalive);
	timer_delete_sync(&peer->timer_new_handshake);
	timer_delete_sync(&peer->timer_zero_keys);
	timer_delete_sync(&peer->timer_persistent_keepalive);
	if (cancel_work_sync(&peer->clear_work))
		wg_peer_put(peer);
	peer->handshake_attempts = 0;
}

/* An initiation went out. */
void wg_timers_handshake_initiated(struct wg_peer *peer)
{
	arm(peer, &peer->timer_retransmit,
	    WG_REKEY_TIMEOUT * HZ + get_random_u32_below(REKEY_JITTER_JIFFIES));
}

/* A session was confirmed: no more retries. */
void wg_timers_handshake_complete(struct wg_peer *peer)
{
	timer_delete(&peer->timer_retransmit);
	peer->handshake_attempts = 0;
}

/* New session keys: wipe them if no newer ones come in time. */
void wg_timers_session_derived(struct wg_peer *peer)
{
	arm(peer, &peer->timer_zero_keys, 3 * WG_REJECT_AFTER_TIME * HZ);
}

void wg_timers_data_sent(struct wg_peer *peer)
{
	if (!timer_pending(&peer->timer_new_handshake))
		arm(peer, &peer->timer_new_handshake,
		    (WG_KEEPALIVE_TIMEOUT + WG_REKEY_TIMEOUT) * HZ +
		    get_random_u32_below(REKEY_JITTER_JIFFIES));
}

void wg_timers_data_received(struct wg_peer *peer)
{
	if (!timer_pending(&peer->timer_keepalive))
		arm(peer, &peer->timer_keepalive, WG_KEEPALIVE_TIMEOUT * HZ);
}

static void traversal(struct wg_peer *peer)
{
	u16 interval = READ_ONCE(peer->persistent_keepalive_interval);

	if (interval)
		arm(peer, &peer->timer_persistent_keepalive, interval * HZ);
}

/* Any authenticated message (data, keepalive, handshake) went out. */
void wg_timers_authenticated_sent(struct wg_peer *peer)
{
	timer_delete(&peer->timer_keepalive);
	traversal(peer);
}

/* Any authenticated message came in. */
void wg_timers_authenticated_received(struct wg_peer *peer)
{
	timer_delete(&peer->timer_new_handshake);
	traversal(peer);
}
