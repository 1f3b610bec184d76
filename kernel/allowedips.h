/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Cryptokey routing table: which peer owns an inner address.
 */

#ifndef _WG_ALLOWEDIPS_H
#define _WG_ALLOWEDIPS_H

#include <linux/mutex.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

struct wg_peer;

/**
 * struct wg_aip_node - one prefix of a path-compressed binary trie
 * @child: subtries for the bit that follows the prefix being 0 or 1
 * @peer: owner of the prefix, or NULL for a node that only joins two subtries
 * @parent: node whose child this is, NULL at the root; writer side only
 * @peer_entry: entry on the owner's list of prefixes, for dumps and removal;
 *	writer side only, so that once the node is unlinked and off the list
 *	its room serves @rcu
 * @rcu: deferred free after readers are done
 * @bits: the prefix, in network byte order, with bits past @cidr cleared
 * @cidr: prefix length
 * @addr_len: 4 for IPv4, 16 for IPv6
 * @dir: which @child of @parent points here
 *
 * Every node's prefix is a prefix of the prefixes below it, so a lookup
 * walks down one path and remembers the last node that had a peer.
 */
struct wg_aip_node {
	struct wg_aip_node __rcu *child[2];
	struct wg_peer __rcu *peer;
	struct wg_aip_node *parent;
	union {
		struct list_head peer_entry;
		struct rcu_head rcu;
	};
	u8 bits[16] __aligned(__alignof__(u64));
	u8 cidr;
	u8 addr_len;
	u8 dir;
};

/**
 * struct wg_allowedips - the tables of one device
 * @root4: trie of IPv4 prefixes
 * @root6: trie of IPv6 prefixes
 *
 * Readers walk the tries under rcu_read_lock_bh(); all changes are made with
 * the device's update lock held, which the functions below take as @lock so
 * that lockdep can check it.
 */
struct wg_allowedips {
	struct wg_aip_node __rcu *root4;
	struct wg_aip_node __rcu *root6;
};

int wg_allowedips_cache_init(void);
void wg_allowedips_cache_uninit(void);

void wg_allowedips_init(struct wg_allowedips *table);
void wg_allowedips_free(struct wg_allowedips *table, struct mutex *lock);
int wg_allowedips_insert_v4(struct wg_allowedips *table,
			    const struct in_addr *ip, u8 cidr,
			    struct wg_peer *peer, struct mutex *lock);
int wg_allowedips_insert_v6(struct wg_allowedips *table,
			    const struct in6_addr *ip, u8 cidr,
			    struct wg_peer *peer, struct mutex *lock);
void wg_allowedips_remove_v4(struct wg_allowedips *table,
			     const struct in_addr *ip, u8 cidr,
			     struct wg_peer *peer, struct mutex *lock);
void wg_allowedips_remove_v6(struct wg_allowedips *table,
			     const struct in6_addr *ip, u8 cidr,
			     struct wg_peer *peer, struct mutex *lock);
void wg_allowedips_remove_by_peer(struct wg_allowedips *table,
				  struct wg_peer *peer, struct mutex *lock);
int wg_allowedips_read_node(const struct wg_aip_node *node, u8 ip[16],
			    u8 *cidr);

struct wg_peer *wg_allowedips_lookup_dst(struct wg_allowedips *table,
					 struct sk_buff *skb);
bool wg_allowedips_owns(struct wg_allowedips *table, struct wg_peer *peer,
			const struct sockaddr *addr);
struct wg_peer *wg_allowedips_lookup_src(struct wg_allowedips *table,
					 struct sk_buff *skb);

#endif /* _WG_ALLOWEDIPS_H */
