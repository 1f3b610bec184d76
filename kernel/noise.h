/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Noise_IKpsk2 state: the device's static identity and each peer's
 * handshake parameters.
 */

#ifndef _WG_NOISE_H
#define _WG_NOISE_H

#include "messages.h"

#include <linux/rwsem.h>

/**
 * struct noise_static_identity - the device's long-term key pair
 * @static_public: public key derived from @static_private
 * @static_private: clamped Curve25519 private key
 * @lock: writers replace the pair; handshakes read it
 * @has_identity: whether a private key is set
 */
struct noise_static_identity {
	u8 static_public[NOISE_PUBLIC_KEY_LEN];
	u8 static_private[NOISE_PUBLIC_KEY_LEN];
	struct rw_semaphore lock;
	bool has_identity;
};

/**
 * struct noise_handshake - what a peer's handshakes are keyed with
 * @remote_static: the peer's public key; fixed for the peer's lifetime
 * @preshared_key: optional symmetric key mixed in, zeros when unset
 * @lock: protects @preshared_key against handshakes in flight
 */
struct noise_handshake {
	u8 remote_static[NOISE_PUBLIC_KEY_LEN];
	u8 preshared_key[NOISE_SYMMETRIC_KEY_LEN];
	struct rw_semaphore lock;
};

void wg_noise_static_identity_init(struct noise_static_identity *identity);
bool wg_noise_set_static_identity_private_key(struct noise_static_identity *id,
					      const u8 *private_key);
void wg_noise_handshake_init(struct noise_handshake *handshake,
			     const u8 *public_key, const u8 *preshared_key);
void wg_noise_handshake_set_preshared_key(struct noise_handshake *handshake,
					  const u8 *key);
void wg_noise_handshake_clear(struct noise_handshake *handshake);

#endif /* _WG_NOISE_H */
