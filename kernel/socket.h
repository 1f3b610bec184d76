/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The device's UDP sockets.
 */

#ifndef _WG_SOCKET_H
#define _WG_SOCKET_H

#include <linux/types.h>

struct wg_device;

int wg_socket_init(struct wg_device *wg, u16 port);
void wg_socket_uninit(struct wg_device *wg);

#endif /* _WG_SOCKET_H */
