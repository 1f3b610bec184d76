// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of cryptokey routing: fixed prefixes with known answers,
 * then the trie against a naive table: random prefixes are inserted into
 * both, random addresses looked up in both, then prefixes removed by peer
 * and one at a time and the lookups repeated. Included at the end of
 * allowedips.c, whose static functions they use.
 */

#include <kunit/test.h>
#include <linux/inet.h>
#include <linux/random.h>

#define AIP_TEST_PEERS 32
#define AIP_TEST_PREFIXES 1500
#define AIP_TEST_LOOKUPS 6000

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

static void compare_lookups(struct kunit *test, struct wg_aip_node __rcu **root,
			    const struct naive_table *t, const char *what)
{
	unsigned int i;
	u8 key[16];

	for (i = 0; i < AIP_TEST_LOOKUPS; ++i) {
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
		KUNIT_ASSERT_PTR_EQ_MSG(test, got, want, "%s: lookup of %*phN",
					what, t->addr_len, key);
	}
}

/* The table, its peers and the lock that stands in for a device's. */
struct aip_test {
	struct wg_allowedips table;
	struct wg_peer *peers[AIP_TEST_PEERS];
	struct mutex lock; /* the device's update lock */
};

static int aip_test_init(struct kunit *test)
{
	struct aip_test *t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);
	unsigned int i;

	KUNIT_ASSERT_NOT_NULL(test, t);
	mutex_init(&t->lock);
	wg_allowedips_init(&t->table);
	for (i = 0; i < AIP_TEST_PEERS; ++i) {
		t->peers[i] = kunit_kzalloc(test, sizeof(*t->peers[i]),
					    GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, t->peers[i]);
		INIT_LIST_HEAD(&t->peers[i]->allowedips_list);
	}
	test->priv = t;
	return 0;
}

static void aip_test_exit(struct kunit *test)
{
	struct aip_test *t = test->priv;

	mutex_lock(&t->lock);
	wg_allowedips_free(&t->table, &t->lock);
	mutex_unlock(&t->lock);
	/* Nodes go after a grace period; the peers they point to after us. */
	rcu_barrier();
	mutex_destroy(&t->lock);
}

static void aip_test_family(struct kunit *test, u8 addr_len)
{
	struct aip_test *a = test->priv;
	struct wg_aip_node __rcu **root = addr_len == 4 ? &a->table.root4 :
							   &a->table.root6;
	struct naive_table t = { .addr_len = addr_len };
	unsigned int i;
	u8 addr[16], cidr;
	int err = 0;

	t.entries = kunit_kcalloc(test, AIP_TEST_PREFIXES, sizeof(*t.entries),
				  GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, t.entries);

	mutex_lock(&a->lock);
	for (i = 0; i < AIP_TEST_PREFIXES; ++i) {
		struct wg_peer *peer = a->peers[get_random_u32() %
						AIP_TEST_PEERS];

		random_prefix(addr, addr_len, &cidr);
		err = insert(root, addr, addr_len, cidr, peer, &a->lock);
		if (err)
			break;
		naive_insert(&t, addr, cidr, peer);
	}
	mutex_unlock(&a->lock);
	KUNIT_ASSERT_EQ(test, err, 0);
	compare_lookups(test, root, &t, "after insert");

	mutex_lock(&a->lock);
	for (i = 0; i < AIP_TEST_PEERS / 4; ++i) {
		unsigned int j;

		wg_allowedips_remove_by_peer(&a->table, a->peers[i], &a->lock);
		for (j = 0; j < t.len; ++j)
			if (t.entries[j].peer == a->peers[i])
				t.entries[j].gone = true;
	}
	for (i = 0; i < t.len; i += 3) {
		struct naive_entry *e = &t.entries[i];

		if (e->gone)
			continue;
		remove_exact(root, e->bits, addr_len, e->cidr, e->peer,
			     &a->lock);
		e->gone = true;
	}
	mutex_unlock(&a->lock);
	compare_lookups(test, root, &t, "after removal");

	mutex_lock(&a->lock);
	for (i = 0; i < AIP_TEST_PEERS; ++i)
		wg_allowedips_remove_by_peer(&a->table, a->peers[i], &a->lock);
	mutex_unlock(&a->lock);
	KUNIT_EXPECT_NULL_MSG(test, rcu_access_pointer(*root),
			      "the trie is not empty after removing every peer");
}

static void aip_test_random_v4(struct kunit *test)
{
	aip_test_family(test, 4);
}

static void aip_test_random_v6(struct kunit *test)
{
	aip_test_family(test, 16);
}

struct fixed_case {
	const char *prefix;
	u8 cidr;
	int peer;
};

/* Longest prefix wins; a prefix inserted again moves to its new peer. */
static void aip_test_fixed(struct kunit *test)
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
	struct aip_test *t = test->priv;
	struct in_addr ip;
	unsigned int i;

	mutex_lock(&t->lock);
	for (i = 0; i < ARRAY_SIZE(inserts); ++i) {
		struct wg_peer *peer = t->peers[inserts[i].peer];

		ip.s_addr = in_aton(inserts[i].prefix);
		KUNIT_EXPECT_EQ(test,
				wg_allowedips_insert_v4(&t->table, &ip,
							inserts[i].cidr, peer,
							&t->lock), 0);
	}
	mutex_unlock(&t->lock);
	for (i = 0; i < ARRAY_SIZE(lookups); ++i) {
		struct wg_peer *got;

		ip.s_addr = in_aton(lookups[i].prefix);
		rcu_read_lock_bh();
		got = lookup(&t->table.root4, (const u8 *)&ip, 32);
		rcu_read_unlock_bh();
		KUNIT_EXPECT_PTR_EQ_MSG(test, got, t->peers[lookups[i].peer],
					"%s, want peer %d", lookups[i].prefix,
					lookups[i].peer);
	}
}

static struct kunit_case aip_test_cases[] = {
	KUNIT_CASE(aip_test_fixed),
	KUNIT_CASE(aip_test_random_v4),
	KUNIT_CASE(aip_test_random_v6),
	{}
};

static struct kunit_suite aip_test_suite = {
	.name = "wireguard-allowedips",
	.init = aip_test_init,
	.exit = aip_test_exit,
	.test_cases = aip_test_cases,
};

kunit_test_suite(aip_test_suite);
