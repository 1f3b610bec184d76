/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The device's UDP sockets.
 */

#ifndef _WG_SOCKET_H
#define _WG_SOCKET_H

#include <linux/ipv6.h>
#include <linux/netdevice.h>
#include <linux/types.h>
#include <linux/udp.h>

struct sk_buff;
struct wg_endpoint;

/*
 * A message may go into another wireguard device's tunnel (onion routing),
 * but not deeper than this: routes that lead from one device into another
 * and back are a loop that seals the same packet again and again.
 */
#define WG_MAX_NESTING 4

/* Room for the outer headers udp_tunnel pushes in front of a message. */
#define WG_OUTER_HEADROOM \
	(MAX_HEADER + sizeof(struct ipv6hdr) + sizeof(struct udphdr))

/*
 * Room a data message wants in front of its inner packet: its own header,
 * the outer IPv6 (the larger) and UDP headers, and an Ethernet header as
 * the stack reserves it. It is the device's needed_headroom, so packets
 * the stack makes for the device arrive with it and are sealed where they
 * are; the output path makes room for a deeper link header itself.
 */
#define WG_DATA_HEADROOM \
	(MESSAGE_DATA_HEADER_LEN + sizeof(struct ipv6hdr) + \
	 sizeof(struct udphdr) + HH_DATA_ALIGN(ETH_HLEN))

struct wg_device;
struct wg_peer;

int wg_socket_init(struct wg_device *wg, u16 port);
void wg_socket_uninit(struct wg_device *wg);
int wg_socket_send_skb_to_peer(struct wg_peer *peer, struct sk_buff *skb,
			       u8 ds);
int wg_socket_send_buffer_to_endpoint(struct wg_device *wg,
				      const struct wg_endpoint *to,
				      const void *buffer, size_t len);
void wg_endpoint_of_skb(struct sk_buff *skb, struct wg_endpoint *endpoint);
int wg_socket_send_buffer_to_peer(struct wg_peer *peer, const void *buffer,
				  size_t len);
u8 wg_socket_nesting(void);

#endif /* _WG_SOCKET_H */
