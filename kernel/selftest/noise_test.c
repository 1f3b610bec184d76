// SPDX-License-Identifier: GPL-2.0
/*
 * Runs handshakes between two devices' worth of state in memory: both ends
 * must derive matching session keys, and a replayed, tampered or
 * wrongly keyed message must be refused. Interoperability with other
 * implementations is tested over the network by the VM suite.
 */

#ifdef CONFIG_WIREGUARD_DEBUG

#include <linux/etherdevice.h>

struct selftest_end {
	struct wg_device wg;
	struct wg_peer *peer;	/* the other end, as this end knows it */
};

static bool end_init(struct selftest_end *end)
{
	struct noise_static_identity *id = &end->wg.static_identity;
	u8 private[NOISE_PUBLIC_KEY_LEN];

	memset(end, 0, sizeof(*end));
	mutex_init(&end->wg.device_update_lock);
	/* Peers hang their NAPI contexts on a net_device; it stays down. */
	end->wg.dev = alloc_netdev(0, "wgtest%d", NET_NAME_UNKNOWN,
				   ether_setup);
	end->wg.packet_crypt_wq = alloc_workqueue("wgtest", WQ_PERCPU, 0);
	if (!end->wg.dev || !end->wg.packet_crypt_wq)
		return false;
	INIT_LIST_HEAD(&end->wg.peer_list);
	wg_noise_static_identity_init(&end->wg.static_identity);
	end->wg.peer_hashtable = wg_pubkey_hashtable_alloc();
	end->wg.index_hashtable = wg_index_hashtable_alloc();
	if (!end->wg.peer_hashtable || !end->wg.index_hashtable)
		return false;
	curve25519_generate_secret(private);
	return wg_noise_set_static_identity_private_key(id, private);
}

static bool end_add_peer(struct selftest_end *end, struct selftest_end *other,
			 const u8 *psk)
{
	mutex_lock(&end->wg.device_update_lock);
	end->peer = wg_peer_create(&end->wg,
				   other->wg.static_identity.static_public,
				   psk);
	mutex_unlock(&end->wg.device_update_lock);
	return !IS_ERR(end->peer);
}

static void end_free(struct selftest_end *end)
{
	mutex_lock(&end->wg.device_update_lock);
	wg_peer_remove_all(&end->wg);
	mutex_unlock(&end->wg.device_update_lock);
	rcu_barrier();
	kvfree(end->wg.peer_hashtable);
	kvfree(end->wg.index_hashtable);
	if (end->wg.packet_crypt_wq)
		destroy_workqueue(end->wg.packet_crypt_wq);
	if (end->wg.dev)
		free_netdev(end->wg.dev);
	mutex_destroy(&end->wg.device_update_lock);
}

static struct noise_keypair *keypair_in(struct wg_peer *peer, bool next)
{
	return rcu_dereference_protected(next ? peer->keypairs.next_keypair :
					 peer->keypairs.current_keypair, true);
}

/* One full handshake, @a initiating; checks the sessions agree. */
static bool handshake_once(struct selftest_end *a, struct selftest_end *b,
			   struct wg_msg_initiation *init)
{
	struct noise_keypair *ka, *kb;
	struct wg_msg_response resp;
	struct wg_peer *peer;
	bool ok;

	if (!wg_noise_create_initiation(&a->wg, a->peer, init))
		return false;
	peer = wg_noise_consume_initiation(&b->wg, init);
	if (peer != b->peer) {
		wg_peer_put(peer);
		return false;
	}
	wg_peer_put(peer);
	if (!wg_noise_create_response(&b->wg, b->peer, &resp) ||
	    !wg_noise_begin_session(&b->wg, b->peer))
		return false;
	peer = wg_noise_consume_response(&a->wg, &resp);
	if (peer != a->peer) {
		wg_peer_put(peer);
		return false;
	}
	wg_peer_put(peer);
	if (!wg_noise_begin_session(&a->wg, a->peer))
		return false;

	ka = keypair_in(a->peer, false);
	kb = keypair_in(b->peer, true);
	ok = ka && kb && ka->initiator && !kb->initiator &&
	     !memcmp(ka->send_key, kb->recv_key, NOISE_SYMMETRIC_KEY_LEN) &&
	     !memcmp(ka->recv_key, kb->send_key, NOISE_SYMMETRIC_KEY_LEN) &&
	     memcmp(ka->send_key, ka->recv_key, NOISE_SYMMETRIC_KEY_LEN) &&
	     ka->remote_index == kb->entry.index &&
	     kb->remote_index == ka->entry.index;
	return ok;
}

/**
 * wg_noise_selftest - run handshakes between two in-memory devices
 *
 * Return: true when every check passed.
 */
bool wg_noise_selftest(void)
{
	struct selftest_end *a, *b;
	struct wg_msg_initiation init, tampered;
	struct wg_msg_response resp;
	struct wg_peer *peer;
	u8 psk[NOISE_SYMMETRIC_KEY_LEN];
	const char *failed = NULL;

	a = kzalloc_obj(*a, GFP_KERNEL);
	b = kzalloc_obj(*b, GFP_KERNEL);
	if (!a || !b) {
		kfree(a);
		kfree(b);
		return false;
	}
	get_random_bytes(psk, sizeof(psk));
	if (!end_init(a) || !end_init(b) || !end_add_peer(a, b, psk) ||
	    !end_add_peer(b, a, psk)) {
		failed = "setup";
		goto out;
	}

	if (!handshake_once(a, b, &init)) {
		failed = "handshake with a as initiator";
		goto out;
	}
	peer = wg_noise_consume_initiation(&b->wg, &init);
	if (peer) {
		wg_peer_put(peer);
		failed = "replayed initiation accepted";
		goto out;
	}

	/* Past the per-peer initiation rate limit, the roles swapped. */
	msleep(1000 / WG_INITIATIONS_PER_SECOND + 20);
	if (!handshake_once(b, a, &init)) {
		failed = "handshake with b as initiator";
		goto out;
	}

	msleep(1000 / WG_INITIATIONS_PER_SECOND + 20);
	if (!wg_noise_create_initiation(&a->wg, a->peer, &tampered)) {
		failed = "initiation for the tamper test";
		goto out;
	}
	tampered.sealed_timestamp[3] ^= 1;
	peer = wg_noise_consume_initiation(&b->wg, &tampered);
	if (peer) {
		wg_peer_put(peer);
		failed = "tampered initiation accepted";
		goto out;
	}

	/* Different preshared keys: the response must not be accepted. */
	if (!wg_noise_create_initiation(&a->wg, a->peer, &init)) {
		failed = "initiation for the preshared key test";
		goto out;
	}
	psk[0] ^= 1;
	wg_noise_handshake_set_preshared_key(&b->peer->handshake, psk);
	peer = wg_noise_consume_initiation(&b->wg, &init);
	wg_peer_put(peer);
	if (!peer || !wg_noise_create_response(&b->wg, b->peer, &resp)) {
		failed = "initiation with a mismatched preshared key";
		goto out;
	}
	peer = wg_noise_consume_response(&a->wg, &resp);
	if (peer) {
		wg_peer_put(peer);
		failed = "response with the wrong preshared key accepted";
		goto out;
	}

out:
	end_free(a);
	end_free(b);
	kfree(a);
	kfree(b);
	if (failed) {
		pr_err("noise self-tests: FAIL: %s\n", failed);
		return false;
	}
	pr_info("noise self-tests: pass\n");
	return true;
}

#endif /* CONFIG_WIREGUARD_DEBUG */

#ifdef CONFIG_WIREGUARD_DEBUG

struct replay_step {
	u64 counter;
	bool accepted;
};

/**
 * wg_replay_selftest - check the replay window against known sequences
 *
 * Return: true when every check passed.
 */
bool wg_replay_selftest(void)
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
	bool ok = true;
	unsigned int i;

	replay = kzalloc_obj(*replay, GFP_KERNEL);
	if (!replay)
		return false;
	spin_lock_init(&replay->lock);
	for (i = 0; i < ARRAY_SIZE(steps); ++i) {
		if (wg_replay_accept(replay, steps[i].counter) !=
		    steps[i].accepted) {
			pr_err("replay self-test: step %u, counter %llu: want %s\n",
			       i, steps[i].counter,
			       steps[i].accepted ? "accepted" : "refused");
			ok = false;
		}
	}
	kfree(replay);
	if (ok)
		pr_info("replay self-tests: pass\n");
	return ok;
}

#endif /* CONFIG_WIREGUARD_DEBUG */
