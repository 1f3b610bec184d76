// SPDX-License-Identifier: GPL-2.0
/*
 * The Noise_IKpsk2 handshake as WireGuard uses it, with Curve25519,
 * ChaCha20-Poly1305 and BLAKE2s from the kernel's crypto library.
 *
 * Notation follows the protocol description: H is the transcript hash, C
 * the chaining key, KDFn the HMAC-BLAKE2s based HKDF giving n outputs, and
 * every AEAD in the handshake uses a zero nonce with H as associated data,
 * each key being used once.
 */

#include "noise.h"
#include "device.h"
#include "peer.h"
#include "peerlookup.h"

#include <crypto/algapi.h>
#include <linux/bitops.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/string.h>

static const u8 construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const u8 identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

/* C and H after the protocol name and identifier: the same for all. */
static u8 initial_chaining_key[NOISE_HASH_LEN] __ro_after_init;
static u8 initial_hash[NOISE_HASH_LEN] __ro_after_init;

/* H := BLAKE2s(H || data) */
static void mix_hash(u8 hash[NOISE_HASH_LEN], const u8 *data, size_t len)
{
	struct blake2s_ctx state;

	blake2s_init(&state, NOISE_HASH_LEN);
	blake2s_update(&state, hash, NOISE_HASH_LEN);
	blake2s_update(&state, data, len);
	blake2s_final(&state, hash);
}

void __init wg_noise_init(void)
{
	blake2s(NULL, 0, construction, sizeof(construction) - 1,
		initial_chaining_key, NOISE_HASH_LEN);
	memcpy(initial_hash, initial_chaining_key, NOISE_HASH_LEN);
	mix_hash(initial_hash, identifier, sizeof(identifier) - 1);
}

/* HMAC (RFC 2104) over BLAKE2s, with keys of at most one block. */
static void hmac(u8 out[NOISE_HASH_LEN], const u8 *key, size_t key_len,
		 const u8 *in, size_t in_len)
{
	u8 pad[BLAKE2S_BLOCK_SIZE], inner[NOISE_HASH_LEN];
	struct blake2s_ctx state;
	int i;

	memset(pad, 0, sizeof(pad));
	memcpy(pad, key, key_len);
	for (i = 0; i < BLAKE2S_BLOCK_SIZE; ++i)
		pad[i] ^= 0x36;
	blake2s_init(&state, NOISE_HASH_LEN);
	blake2s_update(&state, pad, BLAKE2S_BLOCK_SIZE);
	blake2s_update(&state, in, in_len);
	blake2s_final(&state, inner);

	for (i = 0; i < BLAKE2S_BLOCK_SIZE; ++i)
		pad[i] ^= 0x36 ^ 0x5c;
	blake2s_init(&state, NOISE_HASH_LEN);
	blake2s_update(&state, pad, BLAKE2S_BLOCK_SIZE);
	blake2s_update(&state, inner, NOISE_HASH_LEN);
	blake2s_final(&state, out);

	memzero_explicit(pad, sizeof(pad));
	memzero_explicit(inner, sizeof(inner));
}

/*
 * HKDF with HMAC-BLAKE2s: T0 = HMAC(C, input), T1 = HMAC(T0, 0x1),
 * Ti = HMAC(T0, Ti-1 || i). The first output becomes the new chaining key;
 * @out2 and @out3 may be NULL when fewer outputs are needed.
 */
static void kdf(u8 ck[NOISE_HASH_LEN], u8 *out2, u8 *out3, const u8 *input,
		size_t input_len)
{
	u8 prk[NOISE_HASH_LEN], t[NOISE_HASH_LEN + 1];

	hmac(prk, ck, NOISE_HASH_LEN, input, input_len);

	t[0] = 1;
	hmac(t, prk, NOISE_HASH_LEN, t, 1);
	memcpy(ck, t, NOISE_HASH_LEN);
	if (out2) {
		t[NOISE_HASH_LEN] = 2;
		hmac(t, prk, NOISE_HASH_LEN, t, NOISE_HASH_LEN + 1);
		memcpy(out2, t, NOISE_HASH_LEN);
	}
	if (out3) {
		t[NOISE_HASH_LEN] = 3;
		hmac(t, prk, NOISE_HASH_LEN, t, NOISE_HASH_LEN + 1);
		memcpy(out3, t, NOISE_HASH_LEN);
	}
	memzero_explicit(prk, sizeof(prk));
	memzero_explicit(t, sizeof(t));
}

/* (C, k) := KDF2(C, DH(private, public)); false for a degenerate point. */
static bool mix_dh(u8 ck[NOISE_HASH_LEN], u8 key[NOISE_SYMMETRIC_KEY_LEN],
		   const u8 private[NOISE_PUBLIC_KEY_LEN],
		   const u8 public[NOISE_PUBLIC_KEY_LEN])
{
	u8 shared[NOISE_PUBLIC_KEY_LEN];

	if (unlikely(!curve25519(shared, private, public)))
		return false;
	kdf(ck, key, NULL, shared, NOISE_PUBLIC_KEY_LEN);
	memzero_explicit(shared, sizeof(shared));
	return true;
}

static void seal(u8 *dst, const u8 *src, size_t len,
		 const u8 key[NOISE_SYMMETRIC_KEY_LEN], u8 hash[NOISE_HASH_LEN])
{
	chacha20poly1305_encrypt(dst, src, len, hash, NOISE_HASH_LEN, 0, key);
	mix_hash(hash, dst, WG_SEALED(len));
}

static bool open_sealed(u8 *dst, const u8 *src, size_t len,
			const u8 key[NOISE_SYMMETRIC_KEY_LEN],
			u8 hash[NOISE_HASH_LEN])
{
	if (!chacha20poly1305_decrypt(dst, src, len, hash, NOISE_HASH_LEN, 0,
				      key))
		return false;
	mix_hash(hash, src, len);
	return true;
}

/* C := KDF1(C, E); H := H || E, for an ephemeral public key E. */
static void mix_ephemeral(u8 ck[NOISE_HASH_LEN], u8 hash[NOISE_HASH_LEN],
			  const u8 ephemeral[NOISE_PUBLIC_KEY_LEN])
{
	kdf(ck, NULL, NULL, ephemeral, NOISE_PUBLIC_KEY_LEN);
	mix_hash(hash, ephemeral, NOISE_PUBLIC_KEY_LEN);
}

/* The start of every handshake to or from the holder of @responder. */
static void handshake_start(u8 ck[NOISE_HASH_LEN], u8 hash[NOISE_HASH_LEN],
			    const u8 responder[NOISE_PUBLIC_KEY_LEN])
{
	memcpy(ck, initial_chaining_key, NOISE_HASH_LEN);
	memcpy(hash, initial_hash, NOISE_HASH_LEN);
	mix_hash(hash, responder, NOISE_PUBLIC_KEY_LEN);
}

/*
 * TAI64N of now. The nanoseconds are rounded down to a power of two below
 * the initiation rate limit: precise enough to order initiations, coarse
 * enough not to leak the clock.
 */
#define TIMESTAMP_GRAIN \
	rounddown_pow_of_two(NSEC_PER_SEC / WG_INITIATIONS_PER_SECOND)

static void tai64n_now(u8 out[NOISE_TIMESTAMP_LEN])
{
	struct timespec64 now;

	ktime_get_real_ts64(&now);
	now.tv_nsec = ALIGN_DOWN(now.tv_nsec, TIMESTAMP_GRAIN);
	put_unaligned_be64(0x400000000000000aULL + now.tv_sec, out);
	put_unaligned_be32(now.tv_nsec, out + sizeof(u64));
}

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

/**
 * wg_noise_static_identity_is - whether a private key is the device's
 * @id: the identity
 * @private_key: a private key as configuration gives it, not yet clamped
 *
 * Setting the same key again (a configuration applied twice) must leave
 * the sessions alone, so it is told apart from a new key. Compared in
 * constant time: the key is a secret.
 */
bool wg_noise_static_identity_is(struct noise_static_identity *id,
				 const u8 *private_key)
{
	u8 clamped[NOISE_PUBLIC_KEY_LEN];
	bool same;

	memcpy(clamped, private_key, sizeof(clamped));
	curve25519_clamp_secret(clamped);
	down_read(&id->lock);
	same = id->has_identity &&
	       !crypto_memneq(clamped, id->static_private, sizeof(clamped));
	up_read(&id->lock);
	memzero_explicit(clamped, sizeof(clamped));
	return same;
}

/**
 * wg_noise_precompute_static_static - DH of the two static keys
 * @identity: the device's identity
 * @handshake: the peer's handshake
 *
 * Done when the peer is added and whenever the device's key changes, so
 * that handshakes need one DH less. A pending handshake was keyed with the
 * old value and is dropped.
 */
void wg_noise_precompute_static_static(struct noise_static_identity *identity,
				       struct noise_handshake *handshake)
{
	/* Lock order: the identity, then a handshake. */
	down_read(&identity->lock);
	down_write(&handshake->lock);
	if (!identity->has_identity ||
	    !curve25519(handshake->static_static, identity->static_private,
			handshake->remote_static))
		memzero_explicit(handshake->static_static,
				 NOISE_PUBLIC_KEY_LEN);
	handshake->state = WG_HS_IDLE;
	up_write(&handshake->lock);
	up_read(&identity->lock);
}

void wg_noise_handshake_init(struct noise_handshake *handshake,
			     struct noise_static_identity *identity,
			     struct wg_peer *peer, const u8 *public_key,
			     const u8 *preshared_key)
{
	memset(handshake, 0, sizeof(*handshake));
	init_rwsem(&handshake->lock);
	INIT_HLIST_NODE(&handshake->entry.node);
	handshake->entry.kind = WG_INDEX_HANDSHAKE;
	handshake->entry.peer = peer;
	memcpy(handshake->remote_static, public_key, NOISE_PUBLIC_KEY_LEN);
	if (preshared_key)
		memcpy(handshake->preshared_key, preshared_key,
		       NOISE_SYMMETRIC_KEY_LEN);
	wg_noise_precompute_static_static(identity, handshake);
}

void wg_noise_handshake_set_preshared_key(struct noise_handshake *handshake,
					  const u8 *key)
{
	down_write(&handshake->lock);
	memcpy(handshake->preshared_key, key, NOISE_SYMMETRIC_KEY_LEN);
	up_write(&handshake->lock);
}

/* Forgets the handshake in progress; the caller holds the write lock. */
static void handshake_reset(struct wg_device *wg,
			    struct noise_handshake *handshake)
{
	wg_index_hashtable_remove(wg->index_hashtable, &handshake->entry);
	memzero_explicit(handshake->ephemeral_private, NOISE_PUBLIC_KEY_LEN);
	memzero_explicit(handshake->remote_ephemeral, NOISE_PUBLIC_KEY_LEN);
	memzero_explicit(handshake->hash, NOISE_HASH_LEN);
	memzero_explicit(handshake->chaining_key, NOISE_HASH_LEN);
	handshake->remote_index = 0;
	handshake->state = WG_HS_IDLE;
}

/**
 * wg_noise_handshake_reset - forget the handshake in progress
 * @wg: the device
 * @handshake: the peer's handshake
 */
void wg_noise_handshake_reset(struct wg_device *wg,
			      struct noise_handshake *handshake)
{
	down_write(&handshake->lock);
	handshake_reset(wg, handshake);
	up_write(&handshake->lock);
}

/**
 * wg_noise_handshake_clear - wipe the secrets of a removed peer
 * @wg: the device
 * @handshake: the peer's handshake; unusable afterwards
 */
void wg_noise_handshake_clear(struct wg_device *wg,
			      struct noise_handshake *handshake)
{
	down_write(&handshake->lock);
	handshake_reset(wg, handshake);
	memzero_explicit(handshake->preshared_key, NOISE_SYMMETRIC_KEY_LEN);
	memzero_explicit(handshake->static_static, NOISE_PUBLIC_KEY_LEN);
	up_write(&handshake->lock);
}

static bool has_static_static(const struct noise_handshake *handshake)
{
	static const u8 zero[NOISE_PUBLIC_KEY_LEN];

	return crypto_memneq(handshake->static_static, zero,
			     NOISE_PUBLIC_KEY_LEN);
}

/*
 * The initiation's Noise part, from the ephemeral key already in
 * @handshake and @timestamp; both locks are held. The KUnit tests give it
 * known inputs.
 */
static bool seal_initiation(struct noise_static_identity *identity,
			    struct noise_handshake *handshake,
			    struct wg_msg_initiation *msg,
			    const u8 timestamp[NOISE_TIMESTAMP_LEN])
{
	u8 key[NOISE_SYMMETRIC_KEY_LEN];
	bool ok = false;

	msg->type = cpu_to_le32(WG_MSG_INITIATION);
	handshake_start(handshake->chaining_key, handshake->hash,
			handshake->remote_static);
	if (!curve25519_generate_public(msg->ephemeral,
					handshake->ephemeral_private))
		goto out;
	mix_ephemeral(handshake->chaining_key, handshake->hash,
		      msg->ephemeral);

	/* es, then our static key sealed */
	if (!mix_dh(handshake->chaining_key, key, handshake->ephemeral_private,
		    handshake->remote_static))
		goto out;
	seal(msg->sealed_static, identity->static_public,
	     NOISE_PUBLIC_KEY_LEN, key, handshake->hash);

	/* ss, then the timestamp sealed */
	kdf(handshake->chaining_key, key, NULL, handshake->static_static,
	    NOISE_PUBLIC_KEY_LEN);
	seal(msg->sealed_timestamp, timestamp, NOISE_TIMESTAMP_LEN, key,
	     handshake->hash);
	ok = true;
out:
	memzero_explicit(key, sizeof(key));
	return ok;
}

/**
 * wg_noise_create_initiation - start a handshake with a peer
 * @wg: the device
 * @peer: the peer
 * @msg: receives the message, all but its MACs
 *
 * Return: false when the device has no identity or the peer is being
 * removed.
 */
bool wg_noise_create_initiation(struct wg_device *wg, struct wg_peer *peer,
				struct wg_msg_initiation *msg)
{
	struct noise_static_identity *identity = &wg->static_identity;
	struct noise_handshake *handshake = &peer->handshake;
	u8 timestamp[NOISE_TIMESTAMP_LEN];
	bool ok = false;

	down_read(&identity->lock);
	down_write(&handshake->lock);
	if (!identity->has_identity || !has_static_static(handshake) ||
	    READ_ONCE(peer->is_dead))
		goto out;

	curve25519_generate_secret(handshake->ephemeral_private);
	tai64n_now(timestamp);
	if (!seal_initiation(identity, handshake, msg, timestamp))
		goto out;

	msg->sender = wg_index_hashtable_insert(wg->index_hashtable,
						&handshake->entry);
	handshake->state = WG_HS_SENT_INITIATION;
	ok = true;
out:
	if (!ok)
		handshake_reset(wg, handshake);
	up_write(&handshake->lock);
	up_read(&identity->lock);
	return ok;
}

/* Records a consumed message's transcript; the write lock is held. */
static void handshake_advance(struct noise_handshake *handshake,
			      const u8 hash[NOISE_HASH_LEN],
			      const u8 ck[NOISE_HASH_LEN], __le32 remote_index,
			      enum wg_hs_state state)
{
	memcpy(handshake->hash, hash, NOISE_HASH_LEN);
	memcpy(handshake->chaining_key, ck, NOISE_HASH_LEN);
	handshake->remote_index = remote_index;
	handshake->state = state;
}

/**
 * wg_noise_consume_initiation - accept a peer's handshake initiation
 * @wg: the device
 * @msg: the message, its MACs already checked
 *
 * Replays (a timestamp not newer than the last accepted one) and
 * initiations faster than WG_INITIATIONS_PER_SECOND are refused.
 *
 * Return: a reference to the peer, whose handshake now awaits our
 * response, or NULL.
 */
struct wg_peer *
wg_noise_consume_initiation(struct wg_device *wg,
			    const struct wg_msg_initiation *msg)
{
	struct noise_static_identity *identity = &wg->static_identity;
	u8 ck[NOISE_HASH_LEN], hash[NOISE_HASH_LEN];
	u8 key[NOISE_SYMMETRIC_KEY_LEN], timestamp[NOISE_TIMESTAMP_LEN];
	u8 remote_static[NOISE_PUBLIC_KEY_LEN];
	struct noise_handshake *handshake;
	struct wg_peer *peer = NULL;
	bool replay, flood;

	down_read(&identity->lock);
	if (!identity->has_identity)
		goto out;

	handshake_start(ck, hash, identity->static_public);
	mix_ephemeral(ck, hash, msg->ephemeral);

	/* es: learn who is initiating */
	if (!mix_dh(ck, key, identity->static_private, msg->ephemeral) ||
	    !open_sealed(remote_static, msg->sealed_static,
			 sizeof(msg->sealed_static), key, hash))
		goto out;

	peer = wg_pubkey_hashtable_lookup(wg->peer_hashtable, remote_static);
	if (!peer)
		goto out;
	handshake = &peer->handshake;

	/* ss, then the timestamp */
	down_read(&handshake->lock);
	if (!has_static_static(handshake)) {
		up_read(&handshake->lock);
		goto fail;
	}
	kdf(ck, key, NULL, handshake->static_static, NOISE_PUBLIC_KEY_LEN);
	up_read(&handshake->lock);
	if (!open_sealed(timestamp, msg->sealed_timestamp,
			 sizeof(msg->sealed_timestamp), key, hash))
		goto fail;

	down_write(&handshake->lock);
	/* Big-endian TAI64N compares as bytes. */
	replay = memcmp(timestamp, handshake->latest_timestamp,
			NOISE_TIMESTAMP_LEN) <= 0;
	flood = handshake->last_initiation &&
		time_before(jiffies, handshake->last_initiation +
				     HZ / WG_INITIATIONS_PER_SECOND);
	/*
	 * Removal clears the handshake after marking the peer dead, under
	 * this lock: a peer cleared while its initiation was being opened
	 * must not get a handshake state again.
	 */
	if (replay || flood || READ_ONCE(peer->is_dead)) {
		up_write(&handshake->lock);
		goto fail;
	}
	memcpy(handshake->latest_timestamp, timestamp, NOISE_TIMESTAMP_LEN);
	handshake->last_initiation = jiffies;
	memcpy(handshake->remote_ephemeral, msg->ephemeral,
	       NOISE_PUBLIC_KEY_LEN);
	handshake_advance(handshake, hash, ck, msg->sender,
			  WG_HS_GOT_INITIATION);
	up_write(&handshake->lock);
	goto out;

fail:
	wg_peer_put(peer);
	peer = NULL;
out:
	up_read(&identity->lock);
	memzero_explicit(key, sizeof(key));
	memzero_explicit(hash, sizeof(hash));
	memzero_explicit(ck, sizeof(ck));
	return peer;
}

/* (C, tau, k) := KDF3(C, psk); H := H || tau */
static void mix_psk(u8 ck[NOISE_HASH_LEN], u8 hash[NOISE_HASH_LEN],
		    u8 key[NOISE_SYMMETRIC_KEY_LEN],
		    const u8 psk[NOISE_SYMMETRIC_KEY_LEN])
{
	u8 tau[NOISE_HASH_LEN];

	kdf(ck, tau, key, psk, NOISE_SYMMETRIC_KEY_LEN);
	mix_hash(hash, tau, NOISE_HASH_LEN);
	memzero_explicit(tau, sizeof(tau));
}

/*
 * The response's Noise part, from the ephemeral key already in
 * @handshake; its lock is held. The KUnit tests give it known inputs.
 */
static bool seal_response(struct noise_handshake *handshake,
			  struct wg_msg_response *msg)
{
	u8 key[NOISE_SYMMETRIC_KEY_LEN];
	bool ok = false;

	msg->type = cpu_to_le32(WG_MSG_RESPONSE);
	msg->receiver = handshake->remote_index;
	if (!curve25519_generate_public(msg->ephemeral,
					handshake->ephemeral_private))
		goto out;
	mix_ephemeral(handshake->chaining_key, handshake->hash,
		      msg->ephemeral);

	/* ee, se */
	if (!mix_dh(handshake->chaining_key, NULL,
		    handshake->ephemeral_private,
		    handshake->remote_ephemeral) ||
	    !mix_dh(handshake->chaining_key, NULL,
		    handshake->ephemeral_private, handshake->remote_static))
		goto out;

	mix_psk(handshake->chaining_key, handshake->hash, key,
		handshake->preshared_key);
	seal(msg->sealed_empty, NULL, 0, key, handshake->hash);
	ok = true;
out:
	memzero_explicit(key, sizeof(key));
	return ok;
}

/**
 * wg_noise_create_response - answer the initiation a peer sent
 * @wg: the device
 * @peer: the peer, whose initiation was consumed
 * @msg: receives the message, all but its MACs
 *
 * Return: false when no initiation awaits a response, or the peer is
 * being removed.
 */
bool wg_noise_create_response(struct wg_device *wg, struct wg_peer *peer,
			      struct wg_msg_response *msg)
{
	struct noise_handshake *handshake = &peer->handshake;
	bool ok = false;

	down_write(&handshake->lock);
	/*
	 * A dead peer's handshake entry must stay out of the index table:
	 * nothing would take it out before the peer is freed.
	 */
	if (handshake->state != WG_HS_GOT_INITIATION ||
	    READ_ONCE(peer->is_dead))
		goto out;

	curve25519_generate_secret(handshake->ephemeral_private);
	if (!seal_response(handshake, msg))
		goto out;

	msg->sender = wg_index_hashtable_insert(wg->index_hashtable,
						&handshake->entry);
	handshake->state = WG_HS_SENT_RESPONSE;
	ok = true;
out:
	if (!ok)
		handshake_reset(wg, handshake);
	up_write(&handshake->lock);
	return ok;
}

/**
 * wg_noise_consume_response - accept the answer to our initiation
 * @wg: the device
 * @msg: the message, its MACs already checked
 *
 * Return: a reference to the peer, whose handshake is complete, or NULL.
 */
struct wg_peer *wg_noise_consume_response(struct wg_device *wg,
					  const struct wg_msg_response *msg)
{
	struct noise_static_identity *identity = &wg->static_identity;
	u8 ck[NOISE_HASH_LEN], hash[NOISE_HASH_LEN];
	u8 key[NOISE_SYMMETRIC_KEY_LEN], psk[NOISE_SYMMETRIC_KEY_LEN];
	u8 ephemeral_private[NOISE_PUBLIC_KEY_LEN], empty[1];
	struct noise_handshake *handshake;
	struct wg_index_entry *entry;
	struct wg_peer *peer = NULL;
	enum wg_hs_state state;

	down_read(&identity->lock);
	if (!identity->has_identity)
		goto out;

	entry = wg_index_hashtable_lookup(wg->index_hashtable,
					  WG_INDEX_HANDSHAKE, msg->receiver,
					  &peer);
	if (!entry)
		goto out;
	handshake = &peer->handshake;

	down_read(&handshake->lock);
	state = handshake->state;
	memcpy(ck, handshake->chaining_key, NOISE_HASH_LEN);
	memcpy(hash, handshake->hash, NOISE_HASH_LEN);
	memcpy(ephemeral_private, handshake->ephemeral_private,
	       NOISE_PUBLIC_KEY_LEN);
	memcpy(psk, handshake->preshared_key, NOISE_SYMMETRIC_KEY_LEN);
	up_read(&handshake->lock);
	if (state != WG_HS_SENT_INITIATION)
		goto fail;

	mix_ephemeral(ck, hash, msg->ephemeral);
	/* ee, se */
	if (!mix_dh(ck, NULL, ephemeral_private, msg->ephemeral) ||
	    !mix_dh(ck, NULL, identity->static_private, msg->ephemeral))
		goto fail;
	mix_psk(ck, hash, key, psk);
	if (!open_sealed(empty, msg->sealed_empty, sizeof(msg->sealed_empty),
			 key, hash))
		goto fail;

	down_write(&handshake->lock);
	/* Another response or a new initiation may have come first. */
	if (handshake->state != WG_HS_SENT_INITIATION ||
	    handshake->entry.index != msg->receiver) {
		up_write(&handshake->lock);
		goto fail;
	}
	handshake_advance(handshake, hash, ck, msg->sender,
			  WG_HS_GOT_RESPONSE);
	up_write(&handshake->lock);
	goto out;

fail:
	wg_peer_put(peer);
	peer = NULL;
out:
	up_read(&identity->lock);
	memzero_explicit(key, sizeof(key));
	memzero_explicit(psk, sizeof(psk));
	memzero_explicit(ephemeral_private, sizeof(ephemeral_private));
	memzero_explicit(hash, sizeof(hash));
	memzero_explicit(ck, sizeof(ck));
	return peer;
}

/* Numbers keypairs for the lifetime messages (dynamic debug). */
static atomic64_t keypair_ids = ATOMIC64_INIT(0);

static void keypair_free_rcu(struct rcu_head *rcu)
{
	kfree_sensitive(container_of(rcu, struct noise_keypair, rcu));
}

static void keypair_release(struct kref *refcount)
{
	struct noise_keypair *keypair =
		container_of(refcount, struct noise_keypair, refcount);
	struct wg_peer *peer = keypair->entry.peer;

	/* Packets that hold the keypair hold its peer too, released after. */
	pr_debug("%s: Keypair %llu destroyed for peer %llu\n",
		 peer->device->dev->name, keypair->internal_id,
		 peer->internal_id);
	call_rcu(&keypair->rcu, keypair_free_rcu);
}

void wg_noise_keypair_put(struct noise_keypair *keypair)
{
	if (keypair)
		kref_put(&keypair->refcount, keypair_release);
}

void wg_noise_keypairs_init(struct noise_keypairs *keypairs)
{
	RCU_INIT_POINTER(keypairs->current_keypair, NULL);
	RCU_INIT_POINTER(keypairs->previous_keypair, NULL);
	RCU_INIT_POINTER(keypairs->next_keypair, NULL);
	spin_lock_init(&keypairs->lock);
}

/* Drops a keypair taken out of its slot: its index goes at once. */
static void keypair_retire(struct wg_device *wg, struct noise_keypair *keypair)
{
	if (!keypair)
		return;
	wg_index_hashtable_remove(wg->index_hashtable, &keypair->entry);
	wg_noise_keypair_put(keypair);
}

static struct noise_keypair *slot(struct noise_keypairs *keypairs,
				  struct noise_keypair __rcu **which)
{
	return rcu_dereference_protected(*which,
					 lockdep_is_held(&keypairs->lock));
}

/*
 * An initiator's new session is usable at once: it becomes current, and
 * the current one previous. A responder's waits in next until the
 * initiator's first data message shows it has the keys too.
 */
static void keypairs_install(struct wg_device *wg,
			     struct noise_keypairs *keypairs,
			     struct noise_keypair *new)
{
	struct noise_keypair *current_kp, *previous, *next;

	spin_lock_bh(&keypairs->lock);
	current_kp = slot(keypairs, &keypairs->current_keypair);
	previous = slot(keypairs, &keypairs->previous_keypair);
	next = slot(keypairs, &keypairs->next_keypair);

	if (new->initiator) {
		if (next) {
			/* An unconfirmed responder session is superseded. */
			RCU_INIT_POINTER(keypairs->next_keypair, NULL);
			rcu_assign_pointer(keypairs->previous_keypair, next);
			keypair_retire(wg, current_kp);
		} else {
			rcu_assign_pointer(keypairs->previous_keypair,
					   current_kp);
		}
		keypair_retire(wg, previous);
		rcu_assign_pointer(keypairs->current_keypair, new);
	} else {
		rcu_assign_pointer(keypairs->next_keypair, new);
		keypair_retire(wg, next);
	}
	spin_unlock_bh(&keypairs->lock);
}

/**
 * wg_noise_keypair_lookup - find the session a data message addresses
 * @wg: the device
 * @index: the receiver index of the message
 * @peer: receives a reference to the session's peer
 *
 * Return: a reference to the session, or NULL.
 */
struct noise_keypair *wg_noise_keypair_lookup(struct wg_device *wg,
					      __le32 index,
					      struct wg_peer **peer)
{
	struct noise_keypair *keypair = NULL;
	struct wg_index_entry *entry;

	rcu_read_lock_bh();
	entry = wg_index_hashtable_lookup_rcu(wg->index_hashtable,
					      WG_INDEX_KEYPAIR, index);
	if (entry) {
		keypair = container_of(entry, struct noise_keypair, entry);
		if (!kref_get_unless_zero(&keypair->refcount)) {
			keypair = NULL;
		} else {
			*peer = wg_peer_try_get(entry->peer);
			if (!*peer) {
				wg_noise_keypair_put(keypair);
				keypair = NULL;
			}
		}
	}
	rcu_read_unlock_bh();
	return keypair;
}

/**
 * wg_noise_keypair_current - the session to send with
 * @keypairs: the peer's sessions
 *
 * Return: a reference to the current session, or NULL.
 */
struct noise_keypair *wg_noise_keypair_current(struct noise_keypairs *keypairs)
{
	struct noise_keypair *keypair;

	rcu_read_lock_bh();
	keypair = rcu_dereference_bh(keypairs->current_keypair);
	if (keypair && !kref_get_unless_zero(&keypair->refcount))
		keypair = NULL;
	rcu_read_unlock_bh();
	return keypair;
}

/**
 * wg_noise_keypair_confirm - note that the peer used a session
 * @wg: the device
 * @keypairs: the peer's sessions
 * @keypair: the session an authenticated message came with
 *
 * A responder's session in the next slot becomes current: the initiator
 * has shown it holds the keys.
 *
 * Return: true if this confirmed a new session.
 */
bool wg_noise_keypair_confirm(struct wg_device *wg,
			      struct noise_keypairs *keypairs,
			      struct noise_keypair *keypair)
{
	struct noise_keypair *old_previous;
	bool confirmed = false;

	if (rcu_access_pointer(keypairs->next_keypair) != keypair)
		return false;
	spin_lock_bh(&keypairs->lock);
	if (slot(keypairs, &keypairs->next_keypair) == keypair) {
		old_previous = slot(keypairs, &keypairs->previous_keypair);
		rcu_assign_pointer(keypairs->previous_keypair,
				   slot(keypairs, &keypairs->current_keypair));
		rcu_assign_pointer(keypairs->current_keypair, keypair);
		RCU_INIT_POINTER(keypairs->next_keypair, NULL);
		keypair_retire(wg, old_previous);
		confirmed = true;
	}
	spin_unlock_bh(&keypairs->lock);
	return confirmed;
}

/**
 * wg_noise_keypairs_clear - end every session of a peer
 * @wg: the device
 * @keypairs: the peer's sessions
 */
void wg_noise_keypairs_clear(struct wg_device *wg,
			     struct noise_keypairs *keypairs)
{
	struct noise_keypair *old[3];
	int i;

	spin_lock_bh(&keypairs->lock);
	old[0] = slot(keypairs, &keypairs->current_keypair);
	old[1] = slot(keypairs, &keypairs->previous_keypair);
	old[2] = slot(keypairs, &keypairs->next_keypair);
	RCU_INIT_POINTER(keypairs->current_keypair, NULL);
	RCU_INIT_POINTER(keypairs->previous_keypair, NULL);
	RCU_INIT_POINTER(keypairs->next_keypair, NULL);
	for (i = 0; i < ARRAY_SIZE(old); ++i)
		keypair_retire(wg, old[i]);
	spin_unlock_bh(&keypairs->lock);
}

/**
 * wg_noise_begin_session - derive the session keys of a finished handshake
 * @wg: the device
 * @peer: the peer, whose handshake sent a response or received one
 *
 * The session takes over the handshake's local index, which the peer
 * already addresses, and the handshake's secrets are wiped.
 *
 * Return: false when the handshake is not at that point.
 */
bool wg_noise_begin_session(struct wg_device *wg, struct wg_peer *peer)
{
	struct noise_handshake *handshake = &peer->handshake;
	struct noise_keypair *keypair;
	bool ok = false;

	keypair = kzalloc_obj(*keypair, GFP_KERNEL);
	if (!keypair)
		return false;
	kref_init(&keypair->refcount);
	spin_lock_init(&keypair->replay.lock);
	INIT_HLIST_NODE(&keypair->entry.node);
	keypair->entry.kind = WG_INDEX_KEYPAIR;
	keypair->entry.peer = peer;

	down_write(&handshake->lock);
	/* A peer being removed gets no new session: see peer removal. */
	if (READ_ONCE(peer->is_dead) ||
	    (handshake->state != WG_HS_SENT_RESPONSE &&
	     handshake->state != WG_HS_GOT_RESPONSE))
		goto out;
	keypair->initiator = handshake->state == WG_HS_GOT_RESPONSE;
	/* (T_send, T_recv) := KDF2(C, empty) for the initiator. */
	if (keypair->initiator)
		kdf(handshake->chaining_key, keypair->recv_key, NULL, NULL, 0);
	else
		kdf(handshake->chaining_key, keypair->send_key, NULL, NULL, 0);
	memcpy(keypair->initiator ? keypair->send_key : keypair->recv_key,
	       handshake->chaining_key, NOISE_SYMMETRIC_KEY_LEN);
	keypair->remote_index = handshake->remote_index;
	keypair->created = ktime_get_coarse_boottime_ns();
	if (!wg_index_hashtable_replace(wg->index_hashtable, &handshake->entry,
					&keypair->entry))
		goto out;
	handshake_reset(wg, handshake);
	keypair->internal_id = atomic64_inc_return(&keypair_ids);
	pr_debug("%s: Keypair %llu created for peer %llu\n", wg->dev->name,
		 keypair->internal_id, peer->internal_id);
	keypairs_install(wg, &peer->keypairs, keypair);
	keypair = NULL;
	ok = true;
out:
	up_write(&handshake->lock);
	kfree_sensitive(keypair);
	return ok;
}

#define REPLAY_BLOCKS (WG_REPLAY_BITS / BITS_PER_LONG)
#define REPLAY_WINDOW (WG_REPLAY_BITS - BITS_PER_LONG)

/**
 * wg_replay_accept - accept a counter of an authenticated message once
 * @replay: the session's window
 * @counter: the message's counter
 *
 * When the counter moves past the window's end, the blocks it moves over
 * are cleared; the block before the window's start is kept whole, which is
 * why the window is one block shorter than the bitmap.
 *
 * Return: false for a counter seen before, too old or past the limit.
 */
bool wg_replay_accept(struct wg_replay *replay, u64 counter)
{
	u64 block = counter / BITS_PER_LONG, top, i, steps;
	bool fresh = false;

	if (counter >= WG_REJECT_AFTER_MESSAGES)
		return false;
	spin_lock_bh(&replay->lock);
	if (counter >= replay->next) {
		if (replay->next) {
			top = (replay->next - 1) / BITS_PER_LONG;
			steps = min_t(u64, block - top, REPLAY_BLOCKS);
			for (i = 1; i <= steps; ++i)
				replay->bitmap[(top + i) % REPLAY_BLOCKS] = 0;
		}
		replay->next = counter + 1;
	} else if (replay->next - 1 - counter >= REPLAY_WINDOW) {
		goto out;
	}
	fresh = !__test_and_set_bit(counter % BITS_PER_LONG,
				    &replay->bitmap[block % REPLAY_BLOCKS]);
out:
	spin_unlock_bh(&replay->lock);
	return fresh;
}

#ifdef CONFIG_WIREGUARD_KUNIT_TEST
#include "tests/noise_kunit.c"
#endif
