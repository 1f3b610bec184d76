/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The device's UDP sockets.
 */

#ifndef _WG_SOCKET_H
#define _WG_SOCKET_H

#include <linux/types.h>

struct wg_device;
struct wg_peer;

int wg_socket_init(struct wg_device *wg, u16 port);
void wg_socket_uninit(struct wg_device *wg);
int wg_socket_send_buffer_to_peer(struct wg_peer *peer, const void *buffer,
				  size_t len);

#endif /* _WG_SOCKET_H */
