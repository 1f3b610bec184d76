// SPDX-License-Identifier: GPL-2.0
/*
 * Handshake messages and keepalives out. A handshake message costs
 * Curve25519 operations, so an initiation that the transmit path asks for
 * is made on the device's handshake workqueue; a response is made by the
 * handshake worker that consumed the initiation.
 */

#include "send.h"
#include "cookie.h"
#include "device.h"
#include "noise.h"
#include "peer.h"
#include "socket.h"

#include <linux/jiffies.h>
#include <linux/workqueue.h>

static void send_initiation(struct wg_peer *peer)
{
	struct wg_msg_initiation msg;

	WRITE_ONCE(peer->last_sent_handshake, jiffies);
	if (!wg_noise_create_initiation(peer->device, peer, &msg))
		return;
	wg_cookie_add_macs(&peer->cookie, &msg, sizeof(msg));
	if (!wg_socket_send_buffer_to_peer(peer, &msg, sizeof(msg)))
		peer->tx_bytes += sizeof(msg);
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
 *
 * At most one initiation per WG_REKEY_TIMEOUT is sent; callable from the
 * transmit path.
 */
void wg_send_queue_handshake_initiation(struct wg_peer *peer)
{
	unsigned long last = READ_ONCE(peer->last_sent_handshake);

	if (last && time_before(jiffies, last + WG_REKEY_TIMEOUT * HZ))
		return;
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
	wg_cookie_add_macs(&peer->cookie, &msg, sizeof(msg));
	if (!wg_socket_send_buffer_to_peer(peer, &msg, sizeof(msg)))
		peer->tx_bytes += sizeof(msg);
out:
	memzero_explicit(&msg, sizeof(msg));
}

/**
 * wg_send_keepalive - send an empty data message with the current session
 * @peer: the peer
 *
 * An initiator sends one as soon as its session exists, which confirms the
 * session to the responder. Without a session, a handshake is started.
 */
void wg_send_keepalive(struct wg_peer *peer)
{
	struct noise_keypair *keypair;
	struct {
		struct wg_msg_data header;
		u8 tag[NOISE_AUTHTAG_LEN];
	} __packed msg;
	u64 counter;

	keypair = wg_noise_keypair_current(&peer->keypairs);
	if (!keypair) {
		wg_send_queue_handshake_initiation(peer);
		return;
	}
	counter = atomic64_inc_return(&keypair->send_counter) - 1;
	if (counter < WG_REJECT_AFTER_MESSAGES) {
		msg.header.type = cpu_to_le32(WG_MSG_DATA);
		msg.header.receiver = keypair->remote_index;
		msg.header.counter = cpu_to_le64(counter);
		chacha20poly1305_encrypt(msg.tag, NULL, 0, NULL, 0, counter,
					 keypair->send_key);
		if (!wg_socket_send_buffer_to_peer(peer, &msg, sizeof(msg)))
			peer->tx_bytes += sizeof(msg);
	}
	wg_noise_keypair_put(keypair);
}
