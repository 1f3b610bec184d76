/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Sizes and limits of the WireGuard protocol that several parts share.
 */

#ifndef _WG_MESSAGES_H
#define _WG_MESSAGES_H

#include <crypto/curve25519.h>
#include <crypto/chacha20poly1305.h>
#include <linux/kernel.h>

enum noise_lengths {
	NOISE_PUBLIC_KEY_LEN = CURVE25519_KEY_SIZE,
	NOISE_SYMMETRIC_KEY_LEN = CHACHA20POLY1305_KEY_SIZE,
	NOISE_AUTHTAG_LEN = CHACHA20POLY1305_AUTHTAG_SIZE,
};

enum limits {
	MAX_PEERS_PER_DEVICE = 1U << 20,
};

/* Transport data header: type, receiver index and counter. */
#define MESSAGE_DATA_HEADER_LEN 16
#define MESSAGE_PADDING_MULTIPLE 16

/* Outer IPv4 or IPv6 header, UDP header, data header and tag. */
#define DATA_PACKET_OVERHEAD(iphdr_len) \
	((iphdr_len) + 8 + MESSAGE_DATA_HEADER_LEN + NOISE_AUTHTAG_LEN)

#endif /* _WG_MESSAGES_H */
