// SPDX-License-Identifier: GPL-2.0
/*
 * Under load, each source may have its handshake messages processed at
 * WG_RATELIMIT_PER_SECOND, with bursts of WG_RATELIMIT_BURST: a token
 * bucket per IPv4 address or IPv6 /64 (a host usually owns a whole /64),
 * per network namespace. Buckets live in a hash table shared by all devices;
 * a bucket left idle for a second is as good as full, so a periodic sweep
 * drops those, which bounds the table by the sources of the last second.
 */

#include "ratelimiter.h"

#include <linux/hashtable.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/siphash.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <net/net_namespace.h>

#define WG_RATELIMIT_PER_SECOND 20
#define WG_RATELIMIT_BURST 5
#define TOKEN_COST (NSEC_PER_SEC / WG_RATELIMIT_PER_SECOND)
#define TOKEN_MAX (TOKEN_COST * WG_RATELIMIT_BURST)
/* Past this many buckets, new sources are refused until the next sweep. */
#define MAX_BUCKETS 65536

struct bucket {
	struct hlist_node node;
	struct rcu_head rcu;
	const struct net *net;	/* compared, never dereferenced */
	__be64 ip[2];		/* IPv4 address, or IPv6 /64 and zero */
	u64 last_ns;
	u64 tokens;
	spinlock_t lock;	/* @last_ns and @tokens */
};

static DEFINE_HASHTABLE(buckets, 12);
static DEFINE_SPINLOCK(table_lock);	/* writers of @buckets */
static unsigned int bucket_count;
static siphash_key_t hash_key;
static struct kmem_cache *bucket_cache;
static struct delayed_work sweep_work;

static u32 bucket_hash(const struct net *net, const __be64 ip[2])
{
	return siphash_3u64((u64)(unsigned long)net, (__force u64)ip[0],
			    (__force u64)ip[1], &hash_key);
}

static void free_bucket(struct rcu_head *rcu)
{
	kmem_cache_free(bucket_cache, container_of(rcu, struct bucket, rcu));
}

static void sweep(struct work_struct *work)
{
	u64 now = ktime_get_coarse_boottime_ns();
	struct bucket *b;
	struct hlist_node *tmp;
	unsigned int i;

	spin_lock_bh(&table_lock);
	hash_for_each_safe(buckets, i, tmp, b, node) {
		/* Signed: a bucket may have been used after @now was read. */
		if ((s64)(now - READ_ONCE(b->last_ns)) > NSEC_PER_SEC) {
			hash_del_rcu(&b->node);
			--bucket_count;
			call_rcu(&b->rcu, free_bucket);
		}
	}
	spin_unlock_bh(&table_lock);
	queue_delayed_work(system_power_efficient_wq, &sweep_work, HZ);
}

/* Under rcu_read_lock_bh() or @table_lock (taken with bottom halves off). */
static struct bucket *find_bucket(const struct net *net, const __be64 ip[2],
				  u32 hash)
{
	struct bucket *b;

	hash_for_each_possible_rcu(buckets, b, node, hash) {
		if (b->net == net && b->ip[0] == ip[0] && b->ip[1] == ip[1])
			return b;
	}
	return NULL;
}

static bool source_of(struct sk_buff *skb, __be64 ip[2])
{
	ip[0] = 0;
	ip[1] = 0;
	if (ip_hdr(skb)->version == 4) {
		ip[0] = (__force __be64)(__force u32)ip_hdr(skb)->saddr;
		return true;
	}
	if (ip_hdr(skb)->version == 6) {
		memcpy(&ip[0], &ipv6_hdr(skb)->saddr, sizeof(ip[0]));
		/* Mark IPv6 so that no IPv4 address collides with it. */
		ip[1] = cpu_to_be64(1);
		return true;
	}
	return false;
}

/*
 * Refills @b for the time since it was last used, then takes a token. @now
 * was read before the lock: another CPU may have used the bucket at a later
 * time already, and then no time has passed.
 */
static bool take_token(struct bucket *b, u64 now)
{
	bool allowed = false;
	u64 tokens;

	spin_lock(&b->lock);
	tokens = b->tokens;
	if (now > b->last_ns) {
		tokens = min_t(u64, TOKEN_MAX, tokens + (now - b->last_ns));
		WRITE_ONCE(b->last_ns, now);
	}
	if (tokens >= TOKEN_COST) {
		tokens -= TOKEN_COST;
		allowed = true;
	}
	b->tokens = tokens;
	spin_unlock(&b->lock);
	return allowed;
}

/**
 * wg_ratelimiter_allow - whether a handshake message may be processed
 * @skb: the message, with its outer IP header
 * @net: the namespace of the socket it arrived on
 *
 * Return: true while its source has tokens left.
 */
bool wg_ratelimiter_allow(struct sk_buff *skb, struct net *net)
{
	u64 now = ktime_get_coarse_boottime_ns();
	struct bucket *b, *existing;
	__be64 ip[2];
	u32 hash;

	if (!source_of(skb, ip))
		return false;
	hash = bucket_hash(net, ip);

	rcu_read_lock_bh();
	b = find_bucket(net, ip, hash);
	if (b) {
		bool allowed = take_token(b, now);

		rcu_read_unlock_bh();
		return allowed;
	}
	rcu_read_unlock_bh();

	/* A new source starts with a full bucket, less this message. */
	b = kmem_cache_alloc(bucket_cache, GFP_ATOMIC);
	if (unlikely(!b))
		return false;
	b->net = net;
	b->ip[0] = ip[0];
	b->ip[1] = ip[1];
	b->last_ns = now;
	b->tokens = TOKEN_MAX - TOKEN_COST;
	spin_lock_init(&b->lock);
	spin_lock_bh(&table_lock);
	if (bucket_count >= MAX_BUCKETS) {
		spin_unlock_bh(&table_lock);
		kmem_cache_free(bucket_cache, b);
		return false;
	}
	/* Another message of the source may have added its bucket first. */
	existing = find_bucket(net, ip, hash);
	if (existing) {
		bool allowed = take_token(existing, now);

		spin_unlock_bh(&table_lock);
		kmem_cache_free(bucket_cache, b);
		return allowed;
	}
	++bucket_count;
	hash_add_rcu(buckets, &b->node, hash);
	spin_unlock_bh(&table_lock);
	return true;
}

int __init wg_ratelimiter_init(void)
{
	bucket_cache = KMEM_CACHE(bucket, 0);
	if (!bucket_cache)
		return -ENOMEM;
	get_random_bytes(&hash_key, sizeof(hash_key));
	INIT_DELAYED_WORK(&sweep_work, sweep);
	queue_delayed_work(system_power_efficient_wq, &sweep_work, HZ);
	return 0;
}

void wg_ratelimiter_uninit(void)
{
	struct hlist_node *tmp;
	struct bucket *b;
	unsigned int i;

	cancel_delayed_work_sync(&sweep_work);
	spin_lock_bh(&table_lock);
	hash_for_each_safe(buckets, i, tmp, b, node) {
		hash_del_rcu(&b->node);
		call_rcu(&b->rcu, free_bucket);
	}
	bucket_count = 0;
	spin_unlock_bh(&table_lock);
	/* The cache goes only after the deferred frees ran. */
	rcu_barrier();
	kmem_cache_destroy(bucket_cache);
}

#ifdef CONFIG_WIREGUARD_KUNIT_TEST
#include "tests/ratelimiter_kunit.c"
#endif
