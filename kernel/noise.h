/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s: the device's static identity, each
 * peer's handshake, and the sessions (keypairs) handshakes produce.
 */

#ifndef _WG_NOISE_H
#define _WG_NOISE_H

#include "messages.h"
#include "peerlookup.h"

#include <linux/atomic.h>
#include <linux/kref.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>

struct wg_device;
struct wg_peer;

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
 * enum wg_hs_state - where a peer's handshake stands
 * @WG_HS_IDLE: nothing in progress
 * @WG_HS_SENT_INITIATION: we initiated and wait for the response
 * @WG_HS_GOT_INITIATION: the peer initiated; a response is due
 * @WG_HS_SENT_RESPONSE: we responded; the keys can be derived
 * @WG_HS_GOT_RESPONSE: the peer responded; the keys can be derived
 */
enum wg_hs_state {
	WG_HS_IDLE,
	WG_HS_SENT_INITIATION,
	WG_HS_GOT_INITIATION,
	WG_HS_SENT_RESPONSE,
	WG_HS_GOT_RESPONSE,
};

/**
 * struct noise_handshake - one peer's handshake
 * @entry: the local index of the handshake in progress
 * @remote_static: the peer's public key; fixed for the peer's lifetime
 * @preshared_key: optional symmetric key mixed in, zeros when unset
 * @static_static: DH of our private key and @remote_static, computed when
 *	either changes; zeros without an identity
 * @ephemeral_private: our ephemeral key of the handshake in progress
 * @remote_ephemeral: the peer's ephemeral public key
 * @hash: the transcript hash H
 * @chaining_key: the chaining key C
 * @latest_timestamp: newest TAI64N of an accepted initiation, for replay
 * @last_initiation: jiffies when the last initiation was accepted
 * @remote_index: the peer's index for this handshake
 * @state: see enum wg_hs_state
 * @lock: everything above but @remote_static
 */
struct noise_handshake {
	struct wg_index_entry entry;
	u8 remote_static[NOISE_PUBLIC_KEY_LEN];
	u8 preshared_key[NOISE_SYMMETRIC_KEY_LEN];
	u8 static_static[NOISE_PUBLIC_KEY_LEN];
	u8 ephemeral_private[NOISE_PUBLIC_KEY_LEN];
	u8 remote_ephemeral[NOISE_PUBLIC_KEY_LEN];
	u8 hash[NOISE_HASH_LEN];
	u8 chaining_key[NOISE_HASH_LEN];
	u8 latest_timestamp[NOISE_TIMESTAMP_LEN];
	unsigned long last_initiation;
	__le32 remote_index;
	enum wg_hs_state state;
	struct rw_semaphore lock;
};

/* Bits of the receive replay window, a ring of BITS_PER_LONG blocks. */
#define WG_REPLAY_BITS 4096

/**
 * struct wg_replay - which counters of a session have been received
 * @next: one past the greatest counter accepted, 0 before the first
 * @bitmap: one bit per counter of the window, block (counter / BITS_PER_LONG)
 *	at index block modulo the ring size
 * @lock: receivers on several CPUs update it
 *
 * Counters within WG_REPLAY_BITS - BITS_PER_LONG of the greatest one are
 * accepted once each, in any order; older ones are refused.
 */
struct wg_replay {
	u64 next;
	unsigned long bitmap[WG_REPLAY_BITS / BITS_PER_LONG];
	spinlock_t lock; /* see above */
};

bool wg_replay_accept(struct wg_replay *replay, u64 counter);

/**
 * struct noise_keypair - the keys of one session
 * @entry: our index of the session, which the peer's data messages carry
 * @send_key: key of the messages we send
 * @recv_key: key of the messages we receive
 * @send_counter: nonce of the next message we send
 * @replay: counters received
 * @created: ktime_get_coarse_boottime_ns() when the keys were derived
 * @remote_index: the peer's index of the session
 * @initiator: whether we initiated the handshake behind it
 * @internal_id: numbers the keypair in lifetime messages (dynamic debug)
 * @refcount: the peer's slots hold one reference, senders more
 * @rcu: freeing waits for readers that found it without a reference
 */
struct noise_keypair {
	struct wg_index_entry entry;
	u8 send_key[NOISE_SYMMETRIC_KEY_LEN];
	u8 recv_key[NOISE_SYMMETRIC_KEY_LEN];
	atomic64_t send_counter;
	struct wg_replay replay;
	u64 created;
	__le32 remote_index;
	bool initiator;
	u64 internal_id;
	struct kref refcount;
	struct rcu_head rcu;
};

/**
 * struct noise_keypairs - a peer's sessions
 * @current_keypair: the session data is sent with
 * @previous_keypair: the one before it, still accepted on receive
 * @next_keypair: a responder's new session, until the initiator confirms it
 *	by sending data with it
 * @lock: writers rotate the slots; readers use RCU
 */
struct noise_keypairs {
	struct noise_keypair __rcu *current_keypair;
	struct noise_keypair __rcu *previous_keypair;
	struct noise_keypair __rcu *next_keypair;
	spinlock_t lock; /* see above */
};

void __init wg_noise_init(void);
void wg_noise_static_identity_init(struct noise_static_identity *identity);
bool wg_noise_static_identity_is(struct noise_static_identity *id,
				 const u8 *private_key);
bool wg_noise_set_static_identity_private_key(struct noise_static_identity *id,
					      const u8 *private_key);
void wg_noise_handshake_init(struct noise_handshake *handshake,
			     struct noise_static_identity *identity,
			     struct wg_peer *peer, const u8 *public_key,
			     const u8 *preshared_key);
void wg_noise_handshake_set_preshared_key(struct noise_handshake *handshake,
					  const u8 *key);
void wg_noise_precompute_static_static(struct noise_static_identity *identity,
				       struct noise_handshake *handshake);
void wg_noise_handshake_clear(struct wg_device *wg,
			      struct noise_handshake *handshake);
void wg_noise_handshake_reset(struct wg_device *wg,
			      struct noise_handshake *handshake);

bool wg_noise_create_initiation(struct wg_device *wg, struct wg_peer *peer,
				struct wg_msg_initiation *msg);
struct wg_peer *
wg_noise_consume_initiation(struct wg_device *wg,
			    const struct wg_msg_initiation *msg);
bool wg_noise_create_response(struct wg_device *wg, struct wg_peer *peer,
			      struct wg_msg_response *msg);
struct wg_peer *wg_noise_consume_response(struct wg_device *wg,
					  const struct wg_msg_response *msg);
bool wg_noise_begin_session(struct wg_device *wg, struct wg_peer *peer);

struct noise_keypair *wg_noise_keypair_lookup(struct wg_device *wg,
					      __le32 index,
					      struct wg_peer **peer);
bool wg_noise_keypair_confirm(struct wg_device *wg,
			      struct noise_keypairs *keypairs,
			      struct noise_keypair *keypair);
struct noise_keypair *wg_noise_keypair_current(struct noise_keypairs *keypairs);
void wg_noise_keypairs_init(struct noise_keypairs *keypairs);
void wg_noise_keypairs_clear(struct wg_device *wg,
			     struct noise_keypairs *keypairs);
void wg_noise_keypair_put(struct noise_keypair *keypair);

#endif /* _WG_NOISE_H */
