/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a device sends: handshake messages (and, later, data).
 */

#ifndef _WG_SEND_H
#define _WG_SEND_H

#include <linux/types.h>

struct sk_buff;
struct wg_peer;
struct work_struct;

void wg_send_handshake_initiation_work(struct work_struct *work);
void wg_send_queue_handshake_initiation(struct wg_peer *peer, bool retry);
void wg_send_handshake_response(struct wg_peer *peer);
void wg_send_keepalive(struct wg_peer *peer);
void wg_send_packet(struct wg_peer *peer, struct sk_buff *skb);
unsigned int wg_send_staged(struct wg_peer *peer);
void wg_encrypt_worker(struct work_struct *work);
void wg_packet_tx_worker(struct work_struct *work);

#endif /* _WG_SEND_H */
