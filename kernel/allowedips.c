// SPDX-License-Identifier: GPL-2.0
/*
 * Cryptokey routing: a path-compressed binary trie per address family maps
 * prefixes to peers. Transmit looks up the inner destination to pick the
 * peer; receive looks up the inner source to check that the peer that sent
 * the packet may use it.
 */

#include "allowedips.h"
#include "peer.h"

#include <linux/slab.h>

/* Nodes are many and small: their own cache packs them tighter. */
static struct kmem_cache *node_cache;

int __init wg_allowedips_cache_init(void)
{
	node_cache = KMEM_CACHE(wg_aip_node, 0);
	return node_cache ? 0 : -ENOMEM;
}

void wg_allowedips_cache_uninit(void)
{
	/* Nodes freed after a grace period are back in the cache first. */
	rcu_barrier();
	kmem_cache_destroy(node_cache);
}

static void node_free_rcu(struct rcu_head *rcu)
{
	kmem_cache_free(node_cache, container_of(rcu, struct wg_aip_node, rcu));
}

static u8 bit_at(const u8 *bits, u8 pos)
{
	return (bits[pos / 8] >> (7 - pos % 8)) & 1;
}

/* How many leading bits @a and @b share, looking at no more than @max. */
static u8 common_bits(const u8 *a, const u8 *b, u8 max)
{
	u8 i, n;

	for (i = 0; i * 8 < max; ++i) {
		u8 diff = a[i] ^ b[i];

		if (diff) {
			n = i * 8 + 7 - __fls(diff);
			return min(n, max);
		}
	}
	return max;
}

static void copy_masked(u8 *dst, const u8 *src, u8 cidr)
{
	u8 full = cidr / 8, rest = cidr % 8;

	memset(dst, 0, 16);
	memcpy(dst, src, full);
	if (rest)
		dst[full] = src[full] & (0xff << (8 - rest));
}

static bool node_contains(const struct wg_aip_node *node, const u8 *key)
{
	return common_bits(node->bits, key, node->cidr) == node->cidr;
}

static struct wg_aip_node *deref(struct wg_aip_node __rcu *const *p,
				 struct mutex *lock)
{
	return rcu_dereference_protected(*p, lockdep_is_held(lock));
}

static struct wg_aip_node __rcu **slot_of(struct wg_aip_node *node,
					  struct wg_aip_node __rcu **root)
{
	return node->parent ? &node->parent->child[node->dir] : root;
}

/* Puts @node where @slot points, as child @dir of @parent. */
static void link_node(struct wg_aip_node __rcu **slot,
		      struct wg_aip_node *parent, u8 dir,
		      struct wg_aip_node *node)
{
	node->parent = parent;
	node->dir = dir;
	rcu_assign_pointer(*slot, node);
}

static void set_owner(struct wg_aip_node *node, struct wg_peer *peer)
{
	list_move_tail(&node->peer_entry, &peer->allowedips_list);
	rcu_assign_pointer(node->peer, peer);
}

static struct wg_aip_node *new_node(const u8 *key, u8 cidr, u8 addr_len)
{
	struct wg_aip_node *node = kmem_cache_zalloc(node_cache,
						     GFP_KERNEL_ACCOUNT);

	if (!node)
		return NULL;
	copy_masked(node->bits, key, cidr);
	node->cidr = cidr;
	node->addr_len = addr_len;
	INIT_LIST_HEAD(&node->peer_entry);
	return node;
}

static int insert(struct wg_aip_node __rcu **root, const u8 *addr,
		  u8 addr_len, u8 cidr, struct wg_peer *peer,
		  struct mutex *lock)
{
	struct wg_aip_node __rcu **slot = root;
	struct wg_aip_node *node, *parent = NULL, *fresh, *branch;
	u8 key[16], common = 0, dir = 0;

	if (WARN_ON(cidr > addr_len * 8 || !peer))
		return -EINVAL;
	copy_masked(key, addr, cidr);

	while ((node = deref(slot, lock))) {
		common = common_bits(node->bits, key, min(node->cidr, cidr));
		if (common < node->cidr)
			break;
		if (node->cidr == cidr) {
			set_owner(node, peer);
			return 0;
		}
		parent = node;
		dir = bit_at(key, node->cidr);
		slot = &node->child[dir];
	}

	fresh = new_node(key, cidr, addr_len);
	if (!fresh)
		return -ENOMEM;
	list_add_tail(&fresh->peer_entry, &peer->allowedips_list);
	RCU_INIT_POINTER(fresh->peer, peer);

	if (!node) {
		link_node(slot, parent, dir, fresh);
		return 0;
	}

	if (common == cidr) {
		/* The new prefix contains @node: it goes above it. */
		u8 down = bit_at(node->bits, cidr);

		node->parent = fresh;
		node->dir = down;
		RCU_INIT_POINTER(fresh->child[down], node);
		link_node(slot, parent, dir, fresh);
		return 0;
	}

	/*
	 * The two prefixes part at bit @common: a node without a peer joins
	 * them, each on the side of its bit there.
	 */
	branch = new_node(key, common, addr_len);
	if (!branch) {
		list_del(&fresh->peer_entry);
		kmem_cache_free(node_cache, fresh);
		return -ENOMEM;
	}
	node->parent = branch;
	node->dir = bit_at(node->bits, common);
	RCU_INIT_POINTER(branch->child[node->dir], node);
	fresh->parent = branch;
	fresh->dir = bit_at(key, common);
	RCU_INIT_POINTER(branch->child[fresh->dir], fresh);
	link_node(slot, parent, dir, branch);
	return 0;
}

/*
 * Takes @node away from its peer, then unlinks every node on the way up that
 * no longer owns a prefix and no longer joins two subtries. Readers that are
 * still on an unlinked node keep seeing valid children until the grace
 * period ends, as nothing below is freed before its own unlinking.
 */
static void release(struct wg_aip_node *node, struct wg_aip_node __rcu **root,
		    struct mutex *lock)
{
	list_del_init(&node->peer_entry);
	RCU_INIT_POINTER(node->peer, NULL);

	while (node && !rcu_access_pointer(node->peer)) {
		struct wg_aip_node *left = deref(&node->child[0], lock);
		struct wg_aip_node *right = deref(&node->child[1], lock);
		struct wg_aip_node *only = left ? left : right;
		struct wg_aip_node *parent = node->parent;

		if (left && right)
			break;
		if (only)
			link_node(slot_of(node, root), parent, node->dir, only);
		else
			RCU_INIT_POINTER(*slot_of(node, root), NULL);
		call_rcu(&node->rcu, node_free_rcu);
		if (only)
			break;
		node = parent;
	}
}

static void remove_exact(struct wg_aip_node __rcu **root, const u8 *addr,
			 u8 addr_len, u8 cidr, struct wg_peer *peer,
			 struct mutex *lock)
{
	struct wg_aip_node *node = deref(root, lock);
	u8 key[16];

	copy_masked(key, addr, cidr);
	while (node && node->cidr <= cidr && node_contains(node, key)) {
		if (node->cidr == cidr) {
			if (rcu_access_pointer(node->peer) == peer)
				release(node, root, lock);
			return;
		}
		node = deref(&node->child[bit_at(key, node->cidr)], lock);
	}
}

static struct wg_peer *lookup(struct wg_aip_node __rcu *const *root,
			      const u8 *key, u8 max_cidr)
{
	struct wg_aip_node *node = rcu_dereference_bh(*root);
	struct wg_peer *found = NULL;

	while (node && node_contains(node, key)) {
		struct wg_peer *peer = rcu_dereference_bh(node->peer);

		if (peer)
			found = peer;
		if (node->cidr == max_cidr)
			break;
		node = rcu_dereference_bh(node->child[bit_at(key, node->cidr)]);
	}
	return found;
}

void wg_allowedips_init(struct wg_allowedips *table)
{
	RCU_INIT_POINTER(table->root4, NULL);
	RCU_INIT_POINTER(table->root6, NULL);
}

static void free_trie(struct wg_aip_node __rcu **root, struct mutex *lock)
{
	struct wg_aip_node *node = deref(root, lock), *parent;

	RCU_INIT_POINTER(*root, NULL);
	/* Post-order walk that frees leaves first and climbs via parent. */
	while (node) {
		struct wg_aip_node *next = deref(&node->child[0], lock);

		if (!next)
			next = deref(&node->child[1], lock);
		if (next) {
			node = next;
			continue;
		}
		parent = node->parent;
		if (parent)
			RCU_INIT_POINTER(parent->child[node->dir], NULL);
		list_del(&node->peer_entry);
		call_rcu(&node->rcu, node_free_rcu);
		node = parent;
	}
}

/**
 * wg_allowedips_free - drop every prefix of a table
 * @table: the table
 * @lock: the device's update lock, held
 *
 * Readers may still be walking the tries; the nodes are freed after an RCU
 * grace period.
 */
void wg_allowedips_free(struct wg_allowedips *table, struct mutex *lock)
{
	free_trie(&table->root4, lock);
	free_trie(&table->root6, lock);
}

int wg_allowedips_insert_v4(struct wg_allowedips *table,
			    const struct in_addr *ip, u8 cidr,
			    struct wg_peer *peer, struct mutex *lock)
{
	return insert(&table->root4, (const u8 *)ip, 4, cidr, peer, lock);
}

int wg_allowedips_insert_v6(struct wg_allowedips *table,
			    const struct in6_addr *ip, u8 cidr,
			    struct wg_peer *peer, struct mutex *lock)
{
	return insert(&table->root6, (const u8 *)ip, 16, cidr, peer, lock);
}

void wg_allowedips_remove_v4(struct wg_allowedips *table,
			     const struct in_addr *ip, u8 cidr,
			     struct wg_peer *peer, struct mutex *lock)
{
	remove_exact(&table->root4, (const u8 *)ip, 4, cidr, peer, lock);
}

void wg_allowedips_remove_v6(struct wg_allowedips *table,
			     const struct in6_addr *ip, u8 cidr,
			     struct wg_peer *peer, struct mutex *lock)
{
	remove_exact(&table->root6, (const u8 *)ip, 16, cidr, peer, lock);
}

/**
 * wg_allowedips_remove_by_peer - drop every prefix that @peer owns
 * @table: the table
 * @peer: the owner
 * @lock: the device's update lock, held
 */
void wg_allowedips_remove_by_peer(struct wg_allowedips *table,
				  struct wg_peer *peer, struct mutex *lock)
{
	struct wg_aip_node *node, *tmp;

	list_for_each_entry_safe(node, tmp, &peer->allowedips_list,
				 peer_entry)
		release(node, node->addr_len == 4 ? &table->root4 :
			&table->root6, lock);
}

/**
 * wg_allowedips_read_node - the prefix a node holds
 * @node: a node on a peer's list
 * @ip: receives the address, @node->addr_len bytes
 * @cidr: receives the prefix length
 *
 * Return: the address family, AF_INET or AF_INET6.
 */
int wg_allowedips_read_node(const struct wg_aip_node *node, u8 ip[16],
			    u8 *cidr)
{
	memcpy(ip, node->bits, node->addr_len);
	*cidr = node->cidr;
	return node->addr_len == 4 ? AF_INET : AF_INET6;
}

static struct wg_peer *lookup_addr(struct wg_allowedips *table,
				   struct sk_buff *skb, bool source)
{
	struct wg_peer *peer = NULL;

	rcu_read_lock_bh();
	if (skb->protocol == htons(ETH_P_IP)) {
		const struct iphdr *ip = ip_hdr(skb);

		peer = lookup(&table->root4,
			      (const u8 *)(source ? &ip->saddr : &ip->daddr),
			      32);
	} else if (skb->protocol == htons(ETH_P_IPV6)) {
		const struct ipv6hdr *ip6 = ipv6_hdr(skb);

		peer = lookup(&table->root6,
			      (const u8 *)(source ? &ip6->saddr : &ip6->daddr),
			      128);
	}
	peer = wg_peer_try_get(peer);
	rcu_read_unlock_bh();
	return peer;
}

/**
 * wg_allowedips_lookup_dst - the peer a packet is routed to
 * @table: the table
 * @skb: an IPv4 or IPv6 packet with its network header set
 *
 * Return: a reference to the peer owning the longest prefix that holds the
 * destination, or NULL.
 */
struct wg_peer *wg_allowedips_lookup_dst(struct wg_allowedips *table,
					 struct sk_buff *skb)
{
	return lookup_addr(table, skb, false);
}

/**
 * wg_allowedips_lookup_src - the peer that may send a packet
 * @table: the table
 * @skb: an IPv4 or IPv6 packet with its network header set
 *
 * Return: a reference to the peer owning the longest prefix that holds the
 * source, or NULL.
 */
struct wg_peer *wg_allowedips_lookup_src(struct wg_allowedips *table,
					 struct sk_buff *skb)
{
	return lookup_addr(table, skb, true);
}

/**
 * wg_allowedips_owns - whether cryptokey routing sends an address to a peer
 * @table: the device's table
 * @peer: the peer
 * @addr: an AF_INET or AF_INET6 address
 *
 * The caller holds rcu_read_lock_bh(). No reference is taken: only the
 * answer is used.
 *
 * Return: true if @peer owns the longest prefix that holds @addr.
 */
bool wg_allowedips_owns(struct wg_allowedips *table, struct wg_peer *peer,
			const struct sockaddr *addr)
{
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)addr;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;

	if (addr->sa_family == AF_INET)
		return lookup(&table->root4, (const u8 *)&in4->sin_addr,
			      32) == peer;
	if (addr->sa_family == AF_INET6)
		return lookup(&table->root6, (const u8 *)&in6->sin6_addr,
			      128) == peer;
	return false;
}

#ifdef CONFIG_WIREGUARD_KUNIT_TEST
#include "tests/allowedips_kunit.c"
#endif
