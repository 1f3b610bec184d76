// SPDX-License-Identifier: GPL-2.0
/*
 * Checks the trie against a naive table: random prefixes are inserted into
 * both, random addresses looked up in both, then prefixes removed by peer
 * and one at a time and the lookups repeated. Runs at module load when
 * CONFIG_WIREGUARD_DEBUG is set.
 */

#ifdef CONFIG_WIREGUARD_DEBUG

#include <linux/inet.h>
#include <linux/random.h>

#define SELFTEST_PEERS 32
#define SELFTEST_PREFIXES 1500
#define SELFTEST_LOOKUPS 6000

struct naive_entry {
	u8 bits[16];
	u8 cidr;
	bool gone;
	struct wg_peer *peer;
};

struct naive_table {
	struct naive_entry *entries;
	unsigned int len;
	u8 addr_len;
};

static bool naive_contains(const struct naive_entry *e, const u8 *key)
{
	return common_bits(e->bits, key, e->cidr) == e->cidr;
}

static void naive_insert(struct naive_table *t, const u8 *addr, u8 cidr,
			 struct wg_peer *peer)
{
	struct naive_entry *e;
	u8 key[16];
	unsigned int i;

	copy_masked(key, addr, cidr);
	for (i = 0; i < t->len; ++i) {
		e = &t->entries[i];
		if (!e->gone && e->cidr == cidr && !memcmp(e->bits, key, 16)) {
			e->peer = peer;
			return;
		}
	}
	e = &t->entries[t->len++];
	memcpy(e->bits, key, 16);
	e->cidr = cidr;
	e->peer = peer;
	e->gone = false;
}

static struct wg_peer *naive_lookup(const struct naive_table *t, const u8 *key)
{
	const struct naive_entry *best = NULL;
	unsigned int i;

	for (i = 0; i < t->len; ++i) {
		const struct naive_entry *e = &t->entries[i];

		if (!e->gone && naive_contains(e, key) &&
		    (!best || e->cidr > best->cidr))
			best = e;
	}
	return best ? best->peer : NULL;
}

static void random_prefix(u8 *addr, u8 addr_len, u8 *cidr)
{
	get_random_bytes(addr, addr_len);
	/* Few distinct leading bytes, so that prefixes nest and collide. */
	addr[0] &= 0x07;
	*cidr = get_random_u32() % (addr_len * 8 + 1);
}

static bool compare_lookups(struct wg_aip_node __rcu **root,
			    const struct naive_table *t, const char *what)
{
	unsigned int i;
	u8 key[16];

	for (i = 0; i < SELFTEST_LOOKUPS; ++i) {
		struct wg_peer *want, *got;

		get_random_bytes(key, sizeof(key));
		key[0] &= 0x07;
		if (i % 2 && t->len) {
			/* An address inside a known prefix. */
			const struct naive_entry *e =
				&t->entries[get_random_u32() % t->len];
			u8 c = min_t(u8, e->cidr, t->addr_len * 8);

			memcpy(key, e->bits, c / 8);
			if (c % 8)
				key[c / 8] = (e->bits[c / 8] &
					      (0xff << (8 - c % 8))) |
					     (key[c / 8] & (0xff >> (c % 8)));
		}
		want = naive_lookup(t, key);
		rcu_read_lock_bh();
		got = lookup(root, key, t->addr_len * 8);
		rcu_read_unlock_bh();
		if (got != want) {
			pr_err("allowedips self-test %s: lookup %*phN: got peer %p, want %p\n",
			       what, t->addr_len, key, got, want);
			return false;
		}
	}
	return true;
}

static bool selftest_family(struct wg_allowedips *table,
			    struct wg_aip_node __rcu **root, u8 addr_len,
			    struct wg_peer **peers, struct mutex *lock)
{
	struct naive_table t = { .addr_len = addr_len };
	bool ok = false;
	unsigned int i;
	u8 addr[16], cidr;

	t.entries = kvcalloc(SELFTEST_PREFIXES, sizeof(*t.entries),
			     GFP_KERNEL);
	if (!t.entries)
		return false;

	mutex_lock(lock);
	for (i = 0; i < SELFTEST_PREFIXES; ++i) {
		struct wg_peer *peer = peers[get_random_u32() % SELFTEST_PEERS];

		random_prefix(addr, addr_len, &cidr);
		if (insert(root, addr, addr_len, cidr, peer, lock))
			goto out;
		naive_insert(&t, addr, cidr, peer);
	}
	mutex_unlock(lock);
	if (!compare_lookups(root, &t, "after insert"))
		goto out_unlocked;

	mutex_lock(lock);
	for (i = 0; i < SELFTEST_PEERS / 4; ++i) {
		unsigned int j;

		wg_allowedips_remove_by_peer(table, peers[i], lock);
		for (j = 0; j < t.len; ++j)
			if (t.entries[j].peer == peers[i])
				t.entries[j].gone = true;
	}
	for (i = 0; i < t.len; i += 3) {
		struct naive_entry *e = &t.entries[i];

		if (e->gone)
			continue;
		remove_exact(root, e->bits, addr_len, e->cidr, e->peer, lock);
		e->gone = true;
	}
	mutex_unlock(lock);
	if (!compare_lookups(root, &t, "after removal"))
		goto out_unlocked;

	mutex_lock(lock);
	for (i = 0; i < SELFTEST_PEERS; ++i)
		wg_allowedips_remove_by_peer(table, peers[i], lock);
	ok = !rcu_access_pointer(*root);
	if (!ok)
		pr_err("allowedips self-test: trie not empty after removing every peer\n");
out:
	mutex_unlock(lock);
out_unlocked:
	kvfree(t.entries);
	return ok;
}

struct fixed_case {
	const char *prefix;
	u8 cidr;
	int peer;
};

static bool selftest_fixed(struct wg_allowedips *table, struct wg_peer **peers,
			   struct mutex *lock)
{
	static const struct fixed_case inserts[] = {
		{ "10.0.0.0", 8, 0 }, { "10.1.0.0", 16, 1 },
		{ "10.1.2.3", 32, 2 }, { "0.0.0.0", 0, 3 },
		{ "10.1.128.0", 17, 4 }, { "10.1.0.0", 16, 5 },
	};
	static const struct fixed_case lookups[] = {
		{ "10.1.2.3", 32, 2 }, { "10.1.2.4", 32, 5 },
		{ "10.1.200.1", 32, 4 }, { "10.2.0.1", 32, 0 },
		{ "192.168.0.1", 32, 3 },
	};
	struct in_addr ip;
	unsigned int i;
	bool ok = true;

	mutex_lock(lock);
	for (i = 0; i < ARRAY_SIZE(inserts); ++i) {
		ip.s_addr = in_aton(inserts[i].prefix);
		if (wg_allowedips_insert_v4(table, &ip, inserts[i].cidr,
					    peers[inserts[i].peer], lock))
			ok = false;
	}
	mutex_unlock(lock);
	for (i = 0; i < ARRAY_SIZE(lookups); ++i) {
		struct wg_peer *got;

		ip.s_addr = in_aton(lookups[i].prefix);
		rcu_read_lock_bh();
		got = lookup(&table->root4, (const u8 *)&ip, 32);
		rcu_read_unlock_bh();
		if (got != peers[lookups[i].peer]) {
			pr_err("allowedips self-test: %s went to peer %p, want peer %d\n",
			       lookups[i].prefix, got, lookups[i].peer);
			ok = false;
		}
	}
	mutex_lock(lock);
	for (i = 0; i < SELFTEST_PEERS; ++i)
		wg_allowedips_remove_by_peer(table, peers[i], lock);
	mutex_unlock(lock);
	return ok;
}

/* Stands in for a device's update lock. */
static DEFINE_MUTEX(selftest_lock);

/**
 * wg_allowedips_selftest - check the trie against a naive reference
 *
 * Return: true when every check passed.
 */
bool wg_allowedips_selftest(void)
{
	struct wg_peer *peers[SELFTEST_PEERS] = { };
	struct wg_allowedips table;
	bool ok = false;
	unsigned int i;

	wg_allowedips_init(&table);
	for (i = 0; i < SELFTEST_PEERS; ++i) {
		peers[i] = kzalloc_obj(*peers[i], GFP_KERNEL);
		if (!peers[i])
			goto out;
		INIT_LIST_HEAD(&peers[i]->allowedips_list);
	}
	ok = selftest_fixed(&table, peers, &selftest_lock) &&
	     selftest_family(&table, &table.root4, 4, peers, &selftest_lock) &&
	     selftest_family(&table, &table.root6, 16, peers, &selftest_lock);
	mutex_lock(&selftest_lock);
	wg_allowedips_free(&table, &selftest_lock);
	mutex_unlock(&selftest_lock);
out:
	/* No reader can still be on a node: the lookups above have ended. */
	rcu_barrier();
	for (i = 0; i < SELFTEST_PEERS; ++i)
		kfree(peers[i]);
	if (ok)
		pr_info("allowedips self-tests: pass\n");
	else
		pr_err("allowedips self-tests: FAIL\n");
	return ok;
}

#endif /* CONFIG_WIREGUARD_DEBUG */
