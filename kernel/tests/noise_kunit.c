// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of the Noise handshake and the replay window. Known answers
 * first: a handshake between fixed keys, made by an independent
 * implementation (tests/kat.h), must be consumed to the same transcript
 * and session keys, and made again from the same ephemeral keys and
 * timestamp, byte for byte. Then handshakes between two devices' worth of state
 * in memory: both ends must derive matching session keys, and a replayed,
 * tampered or wrongly keyed message must be refused. Included at the end
 * of noise.c.
 */

#include <kunit/test.h>
#include <linux/etherdevice.h>

#include "kat.h"

/* One end of a handshake: a device that is never registered. */
struct noise_test_end {
	struct wg_device wg;
	struct wg_peer *peer;	/* the other end, as this end knows it */
	bool used;		/* end_init() ran: end_free() has work */
};

static void end_init(struct kunit *test, struct noise_test_end *end,
		     const u8 *private_key)
{
	struct noise_static_identity *id = &end->wg.static_identity;
	u8 private[NOISE_PUBLIC_KEY_LEN];
	bool ok;

	end->used = true;
	mutex_init(&end->wg.device_update_lock);
	INIT_LIST_HEAD(&end->wg.peer_list);
	wg_noise_static_identity_init(id);
	/* Peers hang their NAPI contexts on a net_device; it stays down. */
	end->wg.dev = alloc_netdev(0, "wgtest%d", NET_NAME_UNKNOWN,
				   ether_setup);
	KUNIT_ASSERT_NOT_NULL(test, end->wg.dev);
	end->wg.packet_crypt_wq = alloc_workqueue("wgtest", WQ_PERCPU, 0);
	KUNIT_ASSERT_NOT_NULL(test, end->wg.packet_crypt_wq);
	end->wg.peer_hashtable = wg_pubkey_hashtable_alloc();
	KUNIT_ASSERT_NOT_NULL(test, end->wg.peer_hashtable);
	end->wg.index_hashtable = wg_index_hashtable_alloc();
	KUNIT_ASSERT_NOT_NULL(test, end->wg.index_hashtable);
	if (private_key)
		memcpy(private, private_key, sizeof(private));
	else
		curve25519_generate_secret(private);
	ok = wg_noise_set_static_identity_private_key(id, private);
	memzero_explicit(private, sizeof(private));
	KUNIT_ASSERT_TRUE(test, ok);
}

static void end_add_peer(struct kunit *test, struct noise_test_end *end,
			 const u8 *public_key, const u8 *psk)
{
	mutex_lock(&end->wg.device_update_lock);
	end->peer = wg_peer_create(&end->wg, public_key, psk);
	mutex_unlock(&end->wg.device_update_lock);
	KUNIT_ASSERT_FALSE(test, IS_ERR(end->peer));
}

static void end_free(struct noise_test_end *end)
{
	if (!end->used)
		return;
	if (end->wg.peer_hashtable && end->wg.index_hashtable) {
		mutex_lock(&end->wg.device_update_lock);
		wg_peer_remove_all(&end->wg);
		mutex_unlock(&end->wg.device_update_lock);
	}
	rcu_barrier();
	kvfree(end->wg.peer_hashtable);
	kvfree(end->wg.index_hashtable);
	if (end->wg.packet_crypt_wq)
		destroy_workqueue(end->wg.packet_crypt_wq);
	if (end->wg.dev)
		free_netdev(end->wg.dev);
	mutex_destroy(&end->wg.device_update_lock);
}

/* Two ends, not yet keyed: each test gives them their keys and peers. */
struct noise_test {
	struct noise_test_end a, b;
};

static int noise_test_init(struct kunit *test)
{
	test->priv = kunit_kzalloc(test, sizeof(struct noise_test),
				   GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, test->priv);
	return 0;
}

static void noise_test_exit(struct kunit *test)
{
	struct noise_test *t = test->priv;

	end_free(&t->a);
	end_free(&t->b);
}

static struct noise_keypair *keypair_in(struct wg_peer *peer, bool next)
{
	return rcu_dereference_protected(next ? peer->keypairs.next_keypair :
					 peer->keypairs.current_keypair, true);
}

static void public_of(struct kunit *test, u8 public[NOISE_PUBLIC_KEY_LEN],
		      const u8 *private)
{
	KUNIT_ASSERT_TRUE(test, curve25519_generate_public(public, private));
}

/* C and H after the protocol name and identifier. */
static void noise_test_kat_initial(struct kunit *test)
{
	KUNIT_EXPECT_MEMEQ(test, initial_chaining_key,
			   wg_kat.initial_chaining_key, NOISE_HASH_LEN);
	KUNIT_EXPECT_MEMEQ(test, initial_hash, wg_kat.initial_hash,
			   NOISE_HASH_LEN);
}

/* The responder reads the known initiation to the known transcript. */
static void noise_test_kat_initiation(struct kunit *test)
{
	struct noise_test_end *b = &((struct noise_test *)test->priv)->b;
	const struct wg_msg_initiation *msg = (const void *)wg_kat.initiation;
	u8 initiator[NOISE_PUBLIC_KEY_LEN], ephemeral[NOISE_PUBLIC_KEY_LEN];
	struct noise_handshake *hs;
	struct wg_peer *peer;

	public_of(test, initiator, wg_kat.initiator_private);
	public_of(test, ephemeral, wg_kat.initiator_ephemeral);
	end_init(test, b, wg_kat.responder_private);
	end_add_peer(test, b, initiator, wg_kat.preshared_key);

	peer = wg_noise_consume_initiation(&b->wg, msg);
	KUNIT_ASSERT_PTR_EQ_MSG(test, peer, b->peer,
				"the known initiation was not accepted");
	wg_peer_put(peer);
	hs = &b->peer->handshake;
	KUNIT_EXPECT_EQ(test, hs->state, WG_HS_GOT_INITIATION);
	KUNIT_EXPECT_MEMEQ(test, hs->chaining_key,
			   wg_kat.initiation_chaining_key, NOISE_HASH_LEN);
	KUNIT_EXPECT_MEMEQ(test, hs->hash, wg_kat.initiation_hash,
			   NOISE_HASH_LEN);
	KUNIT_EXPECT_MEMEQ(test, hs->remote_ephemeral, ephemeral,
			   NOISE_PUBLIC_KEY_LEN);
	KUNIT_EXPECT_MEMEQ(test, hs->latest_timestamp, wg_kat.timestamp,
			   NOISE_TIMESTAMP_LEN);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(hs->remote_index),
			wg_kat.initiator_index);

	/* The same message again is a replay: its timestamp is not newer. */
	hs->last_initiation = 0;
	peer = wg_noise_consume_initiation(&b->wg, msg);
	KUNIT_EXPECT_NULL_MSG(test, peer, "a replayed initiation was accepted");
	wg_peer_put(peer);
}

/*
 * The initiator, in the state the known initiation left it in, reads the
 * known response and derives the known session keys.
 */
static void noise_test_kat_response(struct kunit *test)
{
	struct noise_test_end *a = &((struct noise_test *)test->priv)->a;
	struct wg_msg_initiation ignored;
	struct wg_msg_response resp;
	u8 responder[NOISE_PUBLIC_KEY_LEN];
	struct noise_handshake *hs;
	struct noise_keypair *kp;
	struct wg_peer *peer;

	public_of(test, responder, wg_kat.responder_private);
	end_init(test, a, wg_kat.initiator_private);
	end_add_peer(test, a, responder, wg_kat.preshared_key);
	hs = &a->peer->handshake;

	/*
	 * An initiation of our own puts the handshake in the index table;
	 * then it takes the state that the known initiation left.
	 */
	KUNIT_ASSERT_TRUE(test, wg_noise_create_initiation(&a->wg, a->peer,
							   &ignored));
	down_write(&hs->lock);
	memcpy(hs->ephemeral_private, wg_kat.initiator_ephemeral,
	       NOISE_PUBLIC_KEY_LEN);
	memcpy(hs->chaining_key, wg_kat.initiation_chaining_key,
	       NOISE_HASH_LEN);
	memcpy(hs->hash, wg_kat.initiation_hash, NOISE_HASH_LEN);
	up_write(&hs->lock);

	/* The receiver index is not authenticated: ours goes in its place. */
	memcpy(&resp, wg_kat.response, sizeof(resp));
	resp.receiver = hs->entry.index;
	peer = wg_noise_consume_response(&a->wg, &resp);
	KUNIT_ASSERT_PTR_EQ_MSG(test, peer, a->peer,
				"the known response was not accepted");
	wg_peer_put(peer);
	KUNIT_ASSERT_TRUE(test, wg_noise_begin_session(&a->wg, a->peer));
	kp = keypair_in(a->peer, false);
	KUNIT_ASSERT_NOT_NULL(test, kp);
	KUNIT_EXPECT_TRUE(test, kp->initiator);
	KUNIT_EXPECT_MEMEQ(test, kp->send_key, wg_kat.initiator_send,
			   NOISE_SYMMETRIC_KEY_LEN);
	KUNIT_EXPECT_MEMEQ(test, kp->recv_key, wg_kat.initiator_recv,
			   NOISE_SYMMETRIC_KEY_LEN);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(kp->remote_index),
			wg_kat.responder_index);
}

/* From the known ephemeral key and timestamp, the known initiation. */
static void noise_test_kat_create_initiation(struct kunit *test)
{
	struct noise_test_end *a = &((struct noise_test *)test->priv)->a;
	const struct wg_msg_initiation *want = (const void *)wg_kat.initiation;
	struct noise_static_identity *id = &a->wg.static_identity;
	struct wg_msg_initiation msg = {};
	u8 responder[NOISE_PUBLIC_KEY_LEN];
	struct noise_handshake *hs;
	bool ok;

	public_of(test, responder, wg_kat.responder_private);
	end_init(test, a, wg_kat.initiator_private);
	end_add_peer(test, a, responder, wg_kat.preshared_key);
	hs = &a->peer->handshake;

	down_read(&id->lock);
	down_write(&hs->lock);
	memcpy(hs->ephemeral_private, wg_kat.initiator_ephemeral,
	       NOISE_PUBLIC_KEY_LEN);
	ok = seal_initiation(id, hs, &msg, wg_kat.timestamp);
	up_write(&hs->lock);
	up_read(&id->lock);
	KUNIT_ASSERT_TRUE(test, ok);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(msg.type), WG_MSG_INITIATION);
	KUNIT_EXPECT_MEMEQ(test, msg.ephemeral, want->ephemeral,
			   sizeof(msg.ephemeral));
	KUNIT_EXPECT_MEMEQ(test, msg.sealed_static, want->sealed_static,
			   sizeof(msg.sealed_static));
	KUNIT_EXPECT_MEMEQ(test, msg.sealed_timestamp, want->sealed_timestamp,
			   sizeof(msg.sealed_timestamp));
	KUNIT_EXPECT_MEMEQ(test, hs->chaining_key,
			   wg_kat.initiation_chaining_key, NOISE_HASH_LEN);
	KUNIT_EXPECT_MEMEQ(test, hs->hash, wg_kat.initiation_hash,
			   NOISE_HASH_LEN);
}

/*
 * The responder answers the known initiation with its known ephemeral key:
 * the known response, and the known session from its side.
 */
static void noise_test_kat_create_response(struct kunit *test)
{
	struct noise_test_end *b = &((struct noise_test *)test->priv)->b;
	const struct wg_msg_response *want = (const void *)wg_kat.response;
	u8 initiator[NOISE_PUBLIC_KEY_LEN];
	struct wg_msg_response msg = {};
	struct noise_handshake *hs;
	struct noise_keypair *kp;
	struct wg_peer *peer;
	bool ok;

	public_of(test, initiator, wg_kat.initiator_private);
	end_init(test, b, wg_kat.responder_private);
	end_add_peer(test, b, initiator, wg_kat.preshared_key);
	peer = wg_noise_consume_initiation(&b->wg,
					   (const void *)wg_kat.initiation);
	wg_peer_put(peer);
	KUNIT_ASSERT_PTR_EQ(test, peer, b->peer);
	hs = &b->peer->handshake;

	down_write(&hs->lock);
	memcpy(hs->ephemeral_private, wg_kat.responder_ephemeral,
	       NOISE_PUBLIC_KEY_LEN);
	ok = seal_response(hs, &msg);
	if (ok) {
		/* What wg_noise_create_response() does next. */
		wg_index_hashtable_insert(b->wg.index_hashtable, &hs->entry);
		hs->state = WG_HS_SENT_RESPONSE;
	}
	up_write(&hs->lock);
	KUNIT_ASSERT_TRUE(test, ok);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(msg.type), WG_MSG_RESPONSE);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(msg.receiver),
			wg_kat.initiator_index);
	KUNIT_EXPECT_MEMEQ(test, msg.ephemeral, want->ephemeral,
			   sizeof(msg.ephemeral));
	KUNIT_EXPECT_MEMEQ(test, msg.sealed_empty, want->sealed_empty,
			   sizeof(msg.sealed_empty));

	KUNIT_ASSERT_TRUE(test, wg_noise_begin_session(&b->wg, b->peer));
	kp = keypair_in(b->peer, true);
	KUNIT_ASSERT_NOT_NULL(test, kp);
	KUNIT_EXPECT_FALSE(test, kp->initiator);
	KUNIT_EXPECT_MEMEQ(test, kp->send_key, wg_kat.initiator_recv,
			   NOISE_SYMMETRIC_KEY_LEN);
	KUNIT_EXPECT_MEMEQ(test, kp->recv_key, wg_kat.initiator_send,
			   NOISE_SYMMETRIC_KEY_LEN);
}

/* Two ends with random keys, each the other's peer, sharing @psk. */
static void pair_init(struct kunit *test, const u8 *psk)
{
	struct noise_test *t = test->priv;

	end_init(test, &t->a, NULL);
	end_init(test, &t->b, NULL);
	end_add_peer(test, &t->a, t->b.wg.static_identity.static_public, psk);
	end_add_peer(test, &t->b, t->a.wg.static_identity.static_public, psk);
}

/* One full handshake, @a initiating; the sessions must agree. */
static void handshake_once(struct kunit *test, struct noise_test_end *a,
			   struct noise_test_end *b,
			   struct wg_msg_initiation *init)
{
	struct noise_keypair *ka, *kb;
	struct wg_msg_response resp;
	struct wg_peer *peer;

	KUNIT_ASSERT_TRUE(test, wg_noise_create_initiation(&a->wg, a->peer,
							   init));
	peer = wg_noise_consume_initiation(&b->wg, init);
	wg_peer_put(peer);
	KUNIT_ASSERT_PTR_EQ(test, peer, b->peer);
	KUNIT_ASSERT_TRUE(test, wg_noise_create_response(&b->wg, b->peer,
							 &resp));
	KUNIT_ASSERT_TRUE(test, wg_noise_begin_session(&b->wg, b->peer));
	peer = wg_noise_consume_response(&a->wg, &resp);
	wg_peer_put(peer);
	KUNIT_ASSERT_PTR_EQ(test, peer, a->peer);
	KUNIT_ASSERT_TRUE(test, wg_noise_begin_session(&a->wg, a->peer));

	ka = keypair_in(a->peer, false);
	kb = keypair_in(b->peer, true);
	KUNIT_ASSERT_NOT_NULL(test, ka);
	KUNIT_ASSERT_NOT_NULL(test, kb);
	KUNIT_EXPECT_TRUE(test, ka->initiator);
	KUNIT_EXPECT_FALSE(test, kb->initiator);
	KUNIT_EXPECT_MEMEQ(test, ka->send_key, kb->recv_key,
			   NOISE_SYMMETRIC_KEY_LEN);
	KUNIT_EXPECT_MEMEQ(test, ka->recv_key, kb->send_key,
			   NOISE_SYMMETRIC_KEY_LEN);
	KUNIT_EXPECT_MEMNEQ(test, ka->send_key, ka->recv_key,
			    NOISE_SYMMETRIC_KEY_LEN);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(ka->remote_index),
			le32_to_cpu(kb->entry.index));
	KUNIT_EXPECT_EQ(test, le32_to_cpu(kb->remote_index),
			le32_to_cpu(ka->entry.index));
}

/* Both ends initiate in turn; an initiation is consumed once only. */
static void noise_test_handshakes(struct kunit *test)
{
	struct noise_test *t = test->priv;
	struct wg_msg_initiation init;
	u8 psk[NOISE_SYMMETRIC_KEY_LEN];
	struct wg_peer *peer;

	get_random_bytes(psk, sizeof(psk));
	pair_init(test, psk);
	handshake_once(test, &t->a, &t->b, &init);
	peer = wg_noise_consume_initiation(&t->b.wg, &init);
	KUNIT_EXPECT_NULL_MSG(test, peer, "a replayed initiation was accepted");
	wg_peer_put(peer);

	/* Past the per-peer initiation rate limit, the roles swapped. */
	msleep(1000 / WG_INITIATIONS_PER_SECOND + 20);
	handshake_once(test, &t->b, &t->a, &init);
}

static void noise_test_tampered(struct kunit *test)
{
	struct noise_test *t = test->priv;
	struct wg_msg_initiation init;
	struct wg_peer *peer;

	pair_init(test, NULL);
	KUNIT_ASSERT_TRUE(test, wg_noise_create_initiation(&t->a.wg, t->a.peer,
							   &init));
	init.sealed_timestamp[3] ^= 1;
	peer = wg_noise_consume_initiation(&t->b.wg, &init);
	KUNIT_EXPECT_NULL_MSG(test, peer, "a tampered initiation was accepted");
	wg_peer_put(peer);
}

/* Different preshared keys: the response must not be accepted. */
static void noise_test_psk_mismatch(struct kunit *test)
{
	struct noise_test *t = test->priv;
	struct wg_msg_initiation init;
	struct wg_msg_response resp;
	u8 psk[NOISE_SYMMETRIC_KEY_LEN];
	struct wg_peer *peer;

	get_random_bytes(psk, sizeof(psk));
	pair_init(test, psk);
	psk[0] ^= 1;
	wg_noise_handshake_set_preshared_key(&t->b.peer->handshake, psk);
	KUNIT_ASSERT_TRUE(test, wg_noise_create_initiation(&t->a.wg, t->a.peer,
							   &init));
	peer = wg_noise_consume_initiation(&t->b.wg, &init);
	wg_peer_put(peer);
	KUNIT_ASSERT_PTR_EQ(test, peer, t->b.peer);
	KUNIT_ASSERT_TRUE(test, wg_noise_create_response(&t->b.wg, t->b.peer,
							 &resp));
	peer = wg_noise_consume_response(&t->a.wg, &resp);
	KUNIT_EXPECT_NULL_MSG(test, peer,
			      "a response under another preshared key was accepted");
	wg_peer_put(peer);
}

/*
 * Removal marks a peer dead, then clears its handshake (taking its entry out
 * of the index table) after a grace period; a handshake message being
 * handled meanwhile holds the peer. Whatever that message does after the
 * clearing must not put the entry back: nothing would take it out before
 * the peer is freed. A dead peer's initiation is refused, and so is a
 * response to an initiation consumed before it died.
 */
static void noise_test_dead_peer(struct kunit *test)
{
	struct noise_test *t = test->priv;
	struct wg_msg_initiation init;
	struct wg_msg_response resp;
	struct wg_peer *peer;

	pair_init(test, NULL);
	KUNIT_ASSERT_TRUE(test, wg_noise_create_initiation(&t->a.wg, t->a.peer,
							   &init));
	peer = wg_noise_consume_initiation(&t->b.wg, &init);
	wg_peer_put(peer);
	KUNIT_ASSERT_PTR_EQ(test, peer, t->b.peer);

	WRITE_ONCE(t->b.peer->is_dead, true);
	KUNIT_EXPECT_FALSE_MSG(test,
			       wg_noise_create_response(&t->b.wg, t->b.peer,
							&resp),
			       "a dead peer answered an initiation");
	KUNIT_EXPECT_TRUE_MSG(test,
			      hlist_unhashed(&t->b.peer->handshake.entry.node),
			      "a dead peer's handshake is in the index table");

	/* Past the per-peer initiation rate limit. */
	msleep(1000 / WG_INITIATIONS_PER_SECOND + 20);
	KUNIT_ASSERT_TRUE(test, wg_noise_create_initiation(&t->a.wg, t->a.peer,
							   &init));
	peer = wg_noise_consume_initiation(&t->b.wg, &init);
	KUNIT_EXPECT_NULL_MSG(test, peer,
			      "a dead peer's initiation was accepted");
	wg_peer_put(peer);
	KUNIT_EXPECT_FALSE_MSG(test,
			       wg_noise_create_initiation(&t->b.wg, t->b.peer,
							  &init),
			       "a dead peer initiated a handshake");
	KUNIT_EXPECT_TRUE(test,
			  hlist_unhashed(&t->b.peer->handshake.entry.node));
}

struct replay_step {
	u64 counter;
	bool accepted;
};

static void noise_test_replay_window(struct kunit *test)
{
	const u64 w = REPLAY_WINDOW;
	const struct replay_step steps[] = {
		{ 0, true }, { 0, false }, { 1, true }, { 1, false },
		{ 9, true }, { 8, true }, { 7, true }, { 7, false },
		{ w, true }, { w + 1, true }, { 2, true }, { 1, false },
		/* Counter 0 fell out of the window when w + 1 arrived. */
		{ w + 2, true }, { 3, true },
		{ 3 * w, true }, { 2 * w + 1, true }, { 2 * w, false },
		{ 3 * w - 1, true }, { 3 * w, false },
		{ 3 * w + 64 * 70, true }, { 3 * w + 64 * 70 - 1, true },
		{ 3 * w, false },
		{ WG_REJECT_AFTER_MESSAGES - 1, true },
		{ WG_REJECT_AFTER_MESSAGES, false },
		{ U64_MAX, false },
	};
	struct wg_replay *replay;
	unsigned int i;

	replay = kunit_kzalloc(test, sizeof(*replay), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, replay);
	spin_lock_init(&replay->lock);
	for (i = 0; i < ARRAY_SIZE(steps); ++i)
		KUNIT_EXPECT_EQ_MSG(test, wg_replay_accept(replay,
							   steps[i].counter),
				    steps[i].accepted, "step %u, counter %llu",
				    i, steps[i].counter);
}

static struct kunit_case noise_test_cases[] = {
	KUNIT_CASE(noise_test_kat_initial),
	KUNIT_CASE(noise_test_kat_initiation),
	KUNIT_CASE(noise_test_kat_response),
	KUNIT_CASE(noise_test_kat_create_initiation),
	KUNIT_CASE(noise_test_kat_create_response),
	KUNIT_CASE(noise_test_handshakes),
	KUNIT_CASE(noise_test_tampered),
	KUNIT_CASE(noise_test_psk_mismatch),
	KUNIT_CASE(noise_test_dead_peer),
	KUNIT_CASE(noise_test_replay_window),
	{}
};

static struct kunit_suite noise_test_suite = {
	.name = "wireguard-noise",
	.init = noise_test_init,
	.exit = noise_test_exit,
	.test_cases = noise_test_cases,
};

kunit_test_suite(noise_test_suite);
