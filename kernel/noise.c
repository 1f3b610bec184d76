// SPDX-License-Identifier: GPL-2.0
/*
 * Noise_IKpsk2 key material of the device and its peers.
 */

#include "noise.h"

#include <crypto/algapi.h>
#include <linux/string.h>

void wg_noise_static_identity_init(struct noise_static_identity *identity)
{
	memset(identity, 0, sizeof(*identity));
	init_rwsem(&identity->lock);
}

/**
 * wg_noise_set_static_identity_private_key - replace the device's key pair
 * @id: the identity
 * @private_key: the new private key; all zeros removes the identity
 *
 * The key is clamped as X25519 requires before the public key is derived,
 * so reading it back gives the clamped form, as every WireGuard
 * implementation reports it.
 *
 * Return: whether the device now has an identity.
 */
bool wg_noise_set_static_identity_private_key(struct noise_static_identity *id,
					      const u8 *private_key)
{
	static const u8 zero[NOISE_PUBLIC_KEY_LEN];
	u8 clamped[NOISE_PUBLIC_KEY_LEN];
	u8 public[NOISE_PUBLIC_KEY_LEN];
	bool has;

	memcpy(clamped, private_key, sizeof(clamped));
	curve25519_clamp_secret(clamped);
	/* A clamped key is never all zeros, so test the caller's key. */
	has = crypto_memneq(private_key, zero, NOISE_PUBLIC_KEY_LEN) &&
	      curve25519_generate_public(public, clamped);

	down_write(&id->lock);
	if (has) {
		memcpy(id->static_private, clamped, NOISE_PUBLIC_KEY_LEN);
		memcpy(id->static_public, public, NOISE_PUBLIC_KEY_LEN);
	} else {
		memzero_explicit(id->static_private, NOISE_PUBLIC_KEY_LEN);
		memzero_explicit(id->static_public, NOISE_PUBLIC_KEY_LEN);
	}
	id->has_identity = has;
	up_write(&id->lock);

	memzero_explicit(clamped, sizeof(clamped));
	return has;
}

void wg_noise_handshake_init(struct noise_handshake *handshake,
			     const u8 *public_key, const u8 *preshared_key)
{
	memset(handshake, 0, sizeof(*handshake));
	init_rwsem(&handshake->lock);
	memcpy(handshake->remote_static, public_key, NOISE_PUBLIC_KEY_LEN);
	if (preshared_key)
		memcpy(handshake->preshared_key, preshared_key,
		       NOISE_SYMMETRIC_KEY_LEN);
}

void wg_noise_handshake_set_preshared_key(struct noise_handshake *handshake,
					  const u8 *key)
{
	down_write(&handshake->lock);
	memcpy(handshake->preshared_key, key, NOISE_SYMMETRIC_KEY_LEN);
	up_write(&handshake->lock);
}

/* Wipes the secrets; the handshake cannot be used afterwards. */
void wg_noise_handshake_clear(struct noise_handshake *handshake)
{
	down_write(&handshake->lock);
	memzero_explicit(handshake->preshared_key, NOISE_SYMMETRIC_KEY_LEN);
	up_write(&handshake->lock);
}
