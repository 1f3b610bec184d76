/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a device receives on its UDP sockets.
 */

#ifndef _WG_RECEIVE_H
#define _WG_RECEIVE_H

struct napi_struct;
struct sk_buff;
struct sock;
struct work_struct;

int wg_receive(struct sock *sk, struct sk_buff *skb);
void wg_decrypt_worker(struct work_struct *work);
int wg_packet_rx_poll(struct napi_struct *napi, int budget);
void wg_handshake_worker(struct work_struct *work);

#endif /* _WG_RECEIVE_H */
