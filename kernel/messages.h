/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The WireGuard protocol on the wire: message layouts, sizes and the
 * protocol's time and counter limits.
 */

#ifndef _WG_MESSAGES_H
#define _WG_MESSAGES_H

#include <crypto/blake2s.h>
#include <crypto/chacha20poly1305.h>
#include <crypto/curve25519.h>
#include <linux/bits.h>
#include <linux/build_bug.h>
#include <linux/kernel.h>

enum noise_lengths {
	NOISE_PUBLIC_KEY_LEN = CURVE25519_KEY_SIZE,
	NOISE_SYMMETRIC_KEY_LEN = CHACHA20POLY1305_KEY_SIZE,
	NOISE_AUTHTAG_LEN = CHACHA20POLY1305_AUTHTAG_SIZE,
	NOISE_HASH_LEN = BLAKE2S_HASH_SIZE,
	/* TAI64N: seconds as a big-endian u64, then nanoseconds as a u32. */
	NOISE_TIMESTAMP_LEN = 12,
};

/* Length of an AEAD ciphertext of @plain bytes. */
#define WG_SEALED(plain) ((plain) + NOISE_AUTHTAG_LEN)

/* Protocol timings, in seconds, and counter limits. */
enum wg_protocol_limits {
	WG_REKEY_AFTER_TIME = 120,
	WG_REJECT_AFTER_TIME = 180,
	WG_REKEY_TIMEOUT = 5,
	WG_KEEPALIVE_TIMEOUT = 10,
	WG_REKEY_ATTEMPT_TIME = 90,
	WG_COOKIE_SECRET_MAX_AGE = 120,
	/* A cookie is not used this close to its expiry. */
	WG_COOKIE_SECRET_LATENCY = 5,
	/* An initiation is not consumed more often than this, per peer. */
	WG_INITIATIONS_PER_SECOND = 50,
};

#define WG_REKEY_AFTER_MESSAGES BIT_ULL(60)
#define WG_REJECT_AFTER_MESSAGES (U64_MAX - (1ULL << 13))

enum limits {
	MAX_PEERS_PER_DEVICE = 1U << 20,
	/* Handshake messages waiting for the handshake worker, per device. */
	MAX_QUEUED_HANDSHAKES = 4096,
	/* Packets waiting for a session, per peer. */
	MAX_STAGED_PACKETS = 128,
	/* Packets in the transmit pipeline, per peer. */
	MAX_QUEUED_PACKETS = 1024,
	/*
	 * Packets in the receive pipeline, per peer. Fewer: nothing upstream
	 * of it slows a sender that outruns the opening, so a deep queue here
	 * is only delay (TCP fills whatever queue is at its bottleneck).
	 */
	MAX_QUEUED_RX_PACKETS = 256,
	/* Packets waiting for a CPU, per device and direction. */
	MAX_CRYPT_QUEUE = 4096,
};

enum wg_message_type {
	WG_MSG_INITIATION = 1,
	WG_MSG_RESPONSE = 2,
	WG_MSG_COOKIE_REPLY = 3,
	WG_MSG_DATA = 4,
};

#define WG_MAC_LEN 16
#define WG_COOKIE_NONCE_LEN XCHACHA20POLY1305_NONCE_SIZE

/*
 * Every message starts with a little-endian u32 whose low byte is the
 * message type and whose upper three bytes are zero.
 */
struct wg_msg_initiation {
	__le32 type;
	__le32 sender;
	u8 ephemeral[NOISE_PUBLIC_KEY_LEN];
	u8 sealed_static[WG_SEALED(NOISE_PUBLIC_KEY_LEN)];
	u8 sealed_timestamp[WG_SEALED(NOISE_TIMESTAMP_LEN)];
	u8 mac1[WG_MAC_LEN];
	u8 mac2[WG_MAC_LEN];
};

struct wg_msg_response {
	__le32 type;
	__le32 sender;
	__le32 receiver;
	u8 ephemeral[NOISE_PUBLIC_KEY_LEN];
	u8 sealed_empty[WG_SEALED(0)];
	u8 mac1[WG_MAC_LEN];
	u8 mac2[WG_MAC_LEN];
};

struct wg_msg_cookie_reply {
	__le32 type;
	__le32 receiver;
	u8 nonce[WG_COOKIE_NONCE_LEN];
	u8 sealed_cookie[WG_SEALED(WG_MAC_LEN)];
};

struct wg_msg_data {
	__le32 type;
	__le32 receiver;
	__le64 counter;
	u8 sealed_packet[];
};

static_assert(sizeof(struct wg_msg_initiation) == 148);
static_assert(sizeof(struct wg_msg_response) == 92);
static_assert(sizeof(struct wg_msg_cookie_reply) == 64);
static_assert(sizeof(struct wg_msg_data) == 16);

#define MESSAGE_DATA_HEADER_LEN sizeof(struct wg_msg_data)
/* Inner packets are padded to a multiple of this before sealing. */
#define MESSAGE_PADDING_MULTIPLE 16

/* Outer IPv4 or IPv6 header, UDP header, data header and tag. */
#define DATA_PACKET_OVERHEAD(iphdr_len) \
	((iphdr_len) + 8 + MESSAGE_DATA_HEADER_LEN + NOISE_AUTHTAG_LEN)

#endif /* _WG_MESSAGES_H */
