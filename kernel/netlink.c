// SPDX-License-Identifier: GPL-2.0
/*
 * The "wireguard" generic netlink family: WG_CMD_GET_DEVICE dumps a device's
 * configuration, WG_CMD_SET_DEVICE changes it.
 *
 * The commands, attributes and their policies are generated from the
 * family's spec, Documentation/netlink/specs/wireguard.yaml, by tools/net/ynl
 * into generated/; this file implements the handlers that the generated
 * operations name. Structure is checked by those policies before a handler
 * runs; WG_CMD_SET_DEVICE then checks the meaning of every attribute, and
 * that the peers fit under the device's limit, before it changes anything,
 * so that a bad message has no effect. Only a failed allocation can leave a
 * message applied in part.
 *
 * WG_CMD_GET_DEVICE is a dump (NLM_F_DUMP). The request carries exactly one
 * of WGDEVICE_A_IFINDEX or WGDEVICE_A_IFNAME. The answer is one or more
 * messages: the first holds the device attributes, and every message holds
 * a WGDEVICE_A_PEERS nest of peer nests. A peer whose allowed IPs do not fit
 * into one message is continued in the next one, in a peer nest that repeats
 * WGPEER_A_PUBLIC_KEY; readers merge consecutive nests with the same key.
 *
 * WG_CMD_SET_DEVICE selects the device the same way and applies, in order:
 * WGDEVICE_A_LISTEN_PORT (0 picks a free port), WGDEVICE_A_FWMARK,
 * WGDEVICE_A_FLAGS (WGDEVICE_F_REPLACE_PEERS removes all peers),
 * WGDEVICE_A_PRIVATE_KEY (all zeros removes it), then the peers in
 * WGDEVICE_A_PEERS. A peer is found or created by WGPEER_A_PUBLIC_KEY;
 * WGPEER_F_REMOVE_ME removes it, WGPEER_F_UPDATE_ONLY never creates it, and
 * WGPEER_F_REPLACE_ALLOWEDIPS clears its allowed IPs before the ones in the
 * message are added. An allowed IP with WGALLOWEDIP_F_REMOVE_ME is removed
 * from the peer instead of added. A large configuration may be split across
 * several messages, all but the first without REPLACE flags.
 *
 * Both commands need CAP_NET_ADMIN in the user namespace of the device's
 * network namespace. The listen port and fwmark act on the UDP sockets,
 * which stay in the namespace the device was created in: setting them needs
 * CAP_NET_ADMIN there too, and fails with ENONET once that namespace is gone.
 */

#include "netlink.h"
#include "device.h"
#include "peer.h"
#include "peerlookup.h"
#include "send.h"
#include "socket.h"
#include "generated/netlink.h"

#include <linux/if.h>
#include <linux/netdevice.h>
#include <linux/slab.h>
#include <net/genetlink.h>
#include <net/sock.h>
#include <uapi/linux/wireguard.h>

static struct genl_family genl_family;

/* The only version of the protocol there is. */
#define WG_PROTOCOL_VERSION 1

/*
 * The flags each object takes. The generated policies refuse any other bit
 * already; the handlers check again, so that what a flag means and which
 * flags exist are written down in one place.
 */
#define WG_DEVICE_FLAGS WGDEVICE_F_REPLACE_PEERS
#define WG_PEER_FLAGS (WGPEER_F_REMOVE_ME | WGPEER_F_REPLACE_ALLOWEDIPS | \
		       WGPEER_F_UPDATE_ONLY)
#define WG_ALLOWEDIP_FLAGS WGALLOWEDIP_F_REMOVE_ME

/* Returns the device with a reference held, or an ERR_PTR. */
static struct wg_device *lookup_interface(struct nlattr **attrs,
					  struct sk_buff *skb,
					  struct netlink_ext_ack *extack)
{
	struct net *net = sock_net(skb->sk);
	struct net_device *dev;

	if (!attrs[WGDEVICE_A_IFINDEX] == !attrs[WGDEVICE_A_IFNAME]) {
		NL_SET_ERR_MSG(extack,
			       "exactly one of WGDEVICE_A_IFINDEX and WGDEVICE_A_IFNAME selects the device");
		return ERR_PTR(-EBADR);
	}
	if (attrs[WGDEVICE_A_IFINDEX])
		dev = dev_get_by_index(net,
				       nla_get_u32(attrs[WGDEVICE_A_IFINDEX]));
	else
		dev = dev_get_by_name(net, nla_data(attrs[WGDEVICE_A_IFNAME]));
	if (!dev) {
		NL_SET_ERR_MSG(extack, "no such device");
		return ERR_PTR(-ENODEV);
	}
	if (!wg_is_device(dev)) {
		dev_put(dev);
		NL_SET_ERR_MSG(extack, "not a wireguard device");
		return ERR_PTR(-EOPNOTSUPP);
	}
	return netdev_priv(dev);
}

/*
 * A dump spans several messages when the peers do not fit into one. Between
 * the messages no lock is held and no reference: deleting the device must
 * not wait for a reader that stopped reading, and nothing of it may outlive
 * it. Each part finds the device again by index, checks by its unique id
 * that it is still the same device, and finds the peer to resume at by its
 * public key and id, skipping the allowed IPs already sent. When the
 * configuration changed in between, genl_dump_check_consistent() flags the
 * message with NLM_F_DUMP_INTR.
 */
struct dump_ctx {
	u64 device_id;
	u64 next_peer_id;	/* the peer to resume at, unless done */
	u8 next_peer_key[NOISE_PUBLIC_KEY_LEN];
	int ifindex;
	unsigned int aip_skip;
	bool header_sent;
	bool done;
};

static struct dump_ctx *dump_ctx(struct netlink_callback *cb)
{
	return (struct dump_ctx *)cb->args[0];
}

/* The peer to resume at, or NULL when it was removed in the meantime. */
static struct wg_peer *dump_resume_peer(struct wg_device *wg,
					const struct dump_ctx *ctx)
{
	struct wg_peer *peer;

	lockdep_assert_held(&wg->device_update_lock);
	peer = wg_pubkey_hashtable_lookup(wg->peer_hashtable,
					  ctx->next_peer_key);
	/* The update lock keeps it in the device without the reference. */
	wg_peer_put(peer);
	if (peer && peer->internal_id != ctx->next_peer_id)
		return NULL;	/* removed, and added again */
	return peer;
}

static int put_allowedip(struct sk_buff *skb, const struct wg_aip_node *node)
{
	struct nlattr *nest = nla_nest_start(skb, 0);
	int family;
	u8 ip[16], cidr;

	if (!nest)
		return -EMSGSIZE;
	family = wg_allowedips_read_node(node, ip, &cidr);
	if (nla_put_u16(skb, WGALLOWEDIP_A_FAMILY, family) ||
	    nla_put(skb, WGALLOWEDIP_A_IPADDR,
		    family == AF_INET ? sizeof(struct in_addr) :
					sizeof(struct in6_addr), ip) ||
	    nla_put_u8(skb, WGALLOWEDIP_A_CIDR_MASK, cidr)) {
		nla_nest_cancel(skb, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

static int put_peer_details(struct sk_buff *skb, struct wg_peer *peer)
{
	struct __kernel_timespec last = {
		.tv_sec = peer->walltime_last_handshake.tv_sec,
		.tv_nsec = peer->walltime_last_handshake.tv_nsec,
	};
	struct wg_endpoint endpoint;
	int ret;

	down_read(&peer->handshake.lock);
	ret = nla_put(skb, WGPEER_A_PRESHARED_KEY, NOISE_SYMMETRIC_KEY_LEN,
		      peer->handshake.preshared_key);
	up_read(&peer->handshake.lock);
	if (ret ||
	    nla_put(skb, WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(last), &last) ||
	    nla_put_u16(skb, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
			peer->persistent_keepalive_interval) ||
	    nla_put_u64_64bit(skb, WGPEER_A_TX_BYTES,
			      atomic64_read(&peer->tx_bytes),
			      WGPEER_A_UNSPEC) ||
	    nla_put_u64_64bit(skb, WGPEER_A_RX_BYTES,
			      atomic64_read(&peer->rx_bytes),
			      WGPEER_A_UNSPEC) ||
	    nla_put_u32(skb, WGPEER_A_PROTOCOL_VERSION, WG_PROTOCOL_VERSION))
		return -EMSGSIZE;

	wg_peer_get_endpoint(peer, &endpoint);
	if (endpoint.addr.sa_family == AF_INET)
		return nla_put(skb, WGPEER_A_ENDPOINT, sizeof(endpoint.addr4),
			       &endpoint.addr4);
	if (endpoint.addr.sa_family == AF_INET6)
		return nla_put(skb, WGPEER_A_ENDPOINT, sizeof(endpoint.addr6),
			       &endpoint.addr6);
	return 0;
}

/*
 * Puts one peer, or the rest of it when @aip_skip of its allowed IPs went
 * out in an earlier message. On -EMSGSIZE, @aip_skip says where to resume;
 * a peer of which nothing fit is taken out of the message again.
 */
static int put_peer(struct sk_buff *skb, struct wg_peer *peer,
		    unsigned int *aip_skip)
{
	struct nlattr *peer_nest, *aip_nest;
	struct wg_aip_node *node;
	unsigned int idx = 0;
	bool added = false;

	peer_nest = nla_nest_start(skb, 0);
	if (!peer_nest)
		return -EMSGSIZE;
	if (nla_put(skb, WGPEER_A_PUBLIC_KEY, NOISE_PUBLIC_KEY_LEN,
		    peer->handshake.remote_static))
		goto cancel;
	if (!*aip_skip && put_peer_details(skb, peer))
		goto cancel;
	/* No allowed IPs, no nest: clients compare an empty list with none. */
	if (list_empty(&peer->allowedips_list))
		goto done;

	aip_nest = nla_nest_start(skb, WGPEER_A_ALLOWEDIPS);
	if (!aip_nest)
		goto cancel;
	list_for_each_entry(node, &peer->allowedips_list, peer_entry) {
		if (idx++ < *aip_skip)
			continue;
		if (put_allowedip(skb, node)) {
			if (!added)
				goto cancel;
			nla_nest_end(skb, aip_nest);
			nla_nest_end(skb, peer_nest);
			*aip_skip = idx - 1;
			return -EMSGSIZE;
		}
		added = true;
	}
	nla_nest_end(skb, aip_nest);
done:
	nla_nest_end(skb, peer_nest);
	*aip_skip = 0;
	return 0;

cancel:
	nla_nest_cancel(skb, peer_nest);
	return -EMSGSIZE;
}

static int put_device_fields(struct sk_buff *skb, struct wg_device *wg)
{
	struct noise_static_identity *id = &wg->static_identity;
	int ret = 0;

	if (nla_put_u32(skb, WGDEVICE_A_IFINDEX, wg->dev->ifindex) ||
	    nla_put_string(skb, WGDEVICE_A_IFNAME, wg->dev->name) ||
	    nla_put_u16(skb, WGDEVICE_A_LISTEN_PORT, wg->incoming_port) ||
	    nla_put_u32(skb, WGDEVICE_A_FWMARK, wg->fwmark))
		return -EMSGSIZE;

	down_read(&id->lock);
	if (id->has_identity &&
	    (nla_put(skb, WGDEVICE_A_PRIVATE_KEY, NOISE_PUBLIC_KEY_LEN,
		     id->static_private) ||
	     nla_put(skb, WGDEVICE_A_PUBLIC_KEY, NOISE_PUBLIC_KEY_LEN,
		     id->static_public)))
		ret = -EMSGSIZE;
	up_read(&id->lock);
	return ret;
}

int wg_get_device_start(struct netlink_callback *cb)
{
	struct dump_ctx *ctx;
	struct wg_device *wg;

	wg = lookup_interface(genl_info_dump(cb)->attrs, cb->skb, cb->extack);
	if (IS_ERR(wg))
		return PTR_ERR(wg);
	ctx = kzalloc_obj(*ctx, GFP_KERNEL);
	if (ctx) {
		ctx->device_id = wg->id;
		ctx->ifindex = wg->dev->ifindex;
		cb->args[0] = (long)ctx;
	}
	dev_put(wg->dev);
	return ctx ? 0 : -ENOMEM;
}

/* Fills one message; called under the device's update lock. */
static int dump_part(struct sk_buff *skb, struct netlink_callback *cb,
		     struct wg_device *wg)
{
	struct dump_ctx *ctx = dump_ctx(cb);
	struct wg_peer *peer = NULL, *next = NULL;
	bool progress = false;
	struct nlattr *peers_nest;
	unsigned int len;
	void *hdr;

	cb->seq = wg->device_update_gen;
	hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			  &genl_family, NLM_F_MULTI, WG_CMD_GET_DEVICE);
	if (!hdr)
		return -EMSGSIZE;
	genl_dump_check_consistent(cb, hdr);

	if (!ctx->header_sent) {
		if (put_device_fields(skb, wg)) {
			genlmsg_cancel(skb, hdr);
			return -EMSGSIZE;
		}
		ctx->header_sent = true;
		progress = true;
		peer = list_first_entry_or_null(&wg->peer_list, struct wg_peer,
						peer_list);
	} else {
		/*
		 * When the peer to resume at was removed, the place in the
		 * list is lost. The configuration changed, so this message
		 * is flagged as interrupted; the dump ends here.
		 */
		peer = dump_resume_peer(wg, ctx);
	}

	peers_nest = nla_nest_start(skb, WGDEVICE_A_PEERS);
	if (!peers_nest) {
		next = peer;
		goto out;
	}
	len = skb->len;
	if (peer) {
		list_for_each_entry_from(peer, &wg->peer_list, peer_list) {
			if (put_peer(skb, peer, &ctx->aip_skip)) {
				next = peer;
				break;
			}
		}
	}
	progress |= skb->len > len;
	nla_nest_end(skb, peers_nest);

out:
	if (next && !progress) {
		/* Not even part of one peer fits into an empty message. */
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	if (next) {
		ctx->next_peer_id = next->internal_id;
		memcpy(ctx->next_peer_key, next->handshake.remote_static,
		       NOISE_PUBLIC_KEY_LEN);
	}
	ctx->done = !next;
	genlmsg_end(skb, hdr);
	return 0;
}

int wg_get_device_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct dump_ctx *ctx = dump_ctx(cb);
	struct net_device *dev;
	struct wg_device *wg;
	int ret;

	if (ctx->done)
		return 0;

	dev = dev_get_by_index(sock_net(skb->sk), ctx->ifindex);
	if (!dev || !wg_is_device(dev) ||
	    ((struct wg_device *)netdev_priv(dev))->id != ctx->device_id) {
		/* Deleted (or replaced) since the dump began. */
		ret = -ENODEV;
		goto out;
	}

	wg = netdev_priv(dev);
	mutex_lock(&wg->device_update_lock);
	ret = dump_part(skb, cb, wg);
	mutex_unlock(&wg->device_update_lock);
	if (!ret)
		ret = skb->len;
out:
	dev_put(dev);
	return ret;
}

int wg_get_device_done(struct netlink_callback *cb)
{
	kfree(dump_ctx(cb));
	cb->args[0] = 0;
	return 0;
}

/*
 * The policies check each element of a nested array, but not what is left
 * after the last whole one: a truncated element would be skipped.
 */
static int trailing_bytes(struct nlattr *array, struct netlink_ext_ack *extack)
{
	NL_SET_ERR_MSG_ATTR(extack, array, "truncated element in nested array");
	return -EINVAL;
}

static int validate_allowedip(struct nlattr *attr,
			      struct netlink_ext_ack *extack)
{
	struct nlattr *tb[WGALLOWEDIP_A_MAX + 1];
	unsigned int len, max_cidr;
	int ret;

	ret = nla_parse_nested(tb, WGALLOWEDIP_A_MAX, attr,
			       wireguard_wgallowedip_nl_policy, extack);
	if (ret)
		return ret;
	if (!tb[WGALLOWEDIP_A_FAMILY] || !tb[WGALLOWEDIP_A_IPADDR] ||
	    !tb[WGALLOWEDIP_A_CIDR_MASK]) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "allowed IP needs family, address and cidr");
		return -EINVAL;
	}
	switch (nla_get_u16(tb[WGALLOWEDIP_A_FAMILY])) {
	case AF_INET:
		len = sizeof(struct in_addr);
		break;
	case AF_INET6:
		len = sizeof(struct in6_addr);
		break;
	default:
		NL_SET_ERR_MSG_ATTR(extack, tb[WGALLOWEDIP_A_FAMILY],
				    "allowed IP family is neither AF_INET nor AF_INET6");
		return -EINVAL;
	}
	max_cidr = len * 8;
	if (nla_len(tb[WGALLOWEDIP_A_IPADDR]) != len) {
		NL_SET_ERR_MSG_ATTR(extack, tb[WGALLOWEDIP_A_IPADDR],
				    "allowed IP address length does not match its family");
		return -EINVAL;
	}
	if (nla_get_u8(tb[WGALLOWEDIP_A_CIDR_MASK]) > max_cidr) {
		NL_SET_ERR_MSG_ATTR(extack, tb[WGALLOWEDIP_A_CIDR_MASK],
				    "allowed IP cidr is longer than the address");
		return -EINVAL;
	}
	if (tb[WGALLOWEDIP_A_FLAGS] &&
	    nla_get_u32(tb[WGALLOWEDIP_A_FLAGS]) & ~WG_ALLOWEDIP_FLAGS) {
		NL_SET_ERR_MSG_ATTR(extack, tb[WGALLOWEDIP_A_FLAGS],
				    "unknown allowed IP flags");
		return -EINVAL;
	}
	return 0;
}

static int validate_endpoint(struct nlattr *attr,
			     struct netlink_ext_ack *extack)
{
	const struct sockaddr *addr = nla_data(attr);
	unsigned int len = nla_len(attr);

	if ((addr->sa_family == AF_INET &&
	     len == sizeof(struct sockaddr_in)) ||
	    (addr->sa_family == AF_INET6 &&
	     len == sizeof(struct sockaddr_in6)))
		return 0;
	NL_SET_ERR_MSG_ATTR(extack, attr,
			    "endpoint is neither a sockaddr_in nor a sockaddr_in6");
	return -EINVAL;
}

static int validate_peer(struct nlattr *attr, struct netlink_ext_ack *extack)
{
	struct nlattr *tb[WGPEER_A_MAX + 1], *aip;
	int ret, rem;

	ret = nla_parse_nested(tb, WGPEER_A_MAX, attr,
			       wireguard_wgpeer_nl_policy, extack);
	if (ret)
		return ret;
	if (!tb[WGPEER_A_PUBLIC_KEY]) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "peer without public key");
		return -EINVAL;
	}
	if (tb[WGPEER_A_FLAGS] &&
	    nla_get_u32(tb[WGPEER_A_FLAGS]) & ~WG_PEER_FLAGS) {
		NL_SET_ERR_MSG_ATTR(extack, tb[WGPEER_A_FLAGS],
				    "unknown peer flags");
		return -EINVAL;
	}
	if (tb[WGPEER_A_PROTOCOL_VERSION] &&
	    nla_get_u32(tb[WGPEER_A_PROTOCOL_VERSION]) != WG_PROTOCOL_VERSION) {
		NL_SET_ERR_MSG_ATTR(extack, tb[WGPEER_A_PROTOCOL_VERSION],
				    "only protocol version 1 exists");
		return -EPFNOSUPPORT;
	}
	if (tb[WGPEER_A_ENDPOINT]) {
		ret = validate_endpoint(tb[WGPEER_A_ENDPOINT], extack);
		if (ret)
			return ret;
	}
	if (tb[WGPEER_A_ALLOWEDIPS]) {
		nla_for_each_nested(aip, tb[WGPEER_A_ALLOWEDIPS], rem) {
			ret = validate_allowedip(aip, extack);
			if (ret)
				return ret;
		}
		if (rem > 0)
			return trailing_bytes(tb[WGPEER_A_ALLOWEDIPS], extack);
	}
	return 0;
}

static int validate_device(struct genl_info *info)
{
	struct nlattr **attrs = info->attrs, *peer;
	int ret, rem;

	if (attrs[WGDEVICE_A_FLAGS] &&
	    nla_get_u32(attrs[WGDEVICE_A_FLAGS]) & ~WG_DEVICE_FLAGS) {
		NL_SET_ERR_MSG_ATTR(info->extack, attrs[WGDEVICE_A_FLAGS],
				    "unknown device flags");
		return -EINVAL;
	}
	if (attrs[WGDEVICE_A_PEERS]) {
		nla_for_each_nested(peer, attrs[WGDEVICE_A_PEERS], rem) {
			ret = validate_peer(peer, info->extack);
			if (ret)
				return ret;
		}
		if (rem > 0)
			return trailing_bytes(attrs[WGDEVICE_A_PEERS],
					      info->extack);
	}
	return 0;
}

static int set_allowedip(struct wg_peer *peer, struct nlattr *attr)
{
	struct wg_device *wg = peer->device;
	struct nlattr *tb[WGALLOWEDIP_A_MAX + 1];
	bool remove;
	u8 cidr;
	int ret;

	ret = nla_parse_nested(tb, WGALLOWEDIP_A_MAX, attr,
			       wireguard_wgallowedip_nl_policy, NULL);
	if (ret)
		return ret;
	cidr = nla_get_u8(tb[WGALLOWEDIP_A_CIDR_MASK]);
	remove = tb[WGALLOWEDIP_A_FLAGS] &&
		 nla_get_u32(tb[WGALLOWEDIP_A_FLAGS]) & WGALLOWEDIP_F_REMOVE_ME;

	if (nla_get_u16(tb[WGALLOWEDIP_A_FAMILY]) == AF_INET) {
		const struct in_addr *ip = nla_data(tb[WGALLOWEDIP_A_IPADDR]);

		if (remove) {
			wg_allowedips_remove_v4(&wg->peer_allowedips, ip, cidr,
						peer, &wg->device_update_lock);
			return 0;
		}
		return wg_allowedips_insert_v4(&wg->peer_allowedips, ip, cidr,
					       peer, &wg->device_update_lock);
	}
	if (remove) {
		wg_allowedips_remove_v6(&wg->peer_allowedips,
					nla_data(tb[WGALLOWEDIP_A_IPADDR]),
					cidr, peer, &wg->device_update_lock);
		return 0;
	}
	return wg_allowedips_insert_v6(&wg->peer_allowedips,
				       nla_data(tb[WGALLOWEDIP_A_IPADDR]),
				       cidr, peer, &wg->device_update_lock);
}

/*
 * Packets that were staged while the device had no private key, or the peer
 * no endpoint, wait for a handshake that nothing else starts: the next
 * packet would, or none ever comes. Start it when the configuration may
 * have made one possible.
 */
static void kick_staged(struct wg_peer *peer)
{
	if (netif_running(peer->device->dev) &&
	    !skb_queue_empty_lockless(&peer->staged_packets))
		wg_send_queue_handshake_initiation(peer, false);
}

static int set_peer(struct wg_device *wg, struct nlattr *attr,
		    struct netlink_ext_ack *extack)
{
	struct nlattr *tb[WGPEER_A_MAX + 1], *aip;
	const u8 *public_key, *preshared_key = NULL;
	struct wg_peer *peer;
	u32 flags = 0;
	int ret, rem;

	ret = nla_parse_nested(tb, WGPEER_A_MAX, attr,
			       wireguard_wgpeer_nl_policy, extack);
	if (ret)
		return ret;
	public_key = nla_data(tb[WGPEER_A_PUBLIC_KEY]);
	if (tb[WGPEER_A_FLAGS])
		flags = nla_get_u32(tb[WGPEER_A_FLAGS]);
	if (tb[WGPEER_A_PRESHARED_KEY])
		preshared_key = nla_data(tb[WGPEER_A_PRESHARED_KEY]);

	peer = wg_pubkey_hashtable_lookup(wg->peer_hashtable, public_key);
	if (!peer) {
		if (flags & (WGPEER_F_REMOVE_ME | WGPEER_F_UPDATE_ONLY))
			return 0;
		/*
		 * A configuration shared by every member of a mesh lists the
		 * device's own key too: skip it rather than fail.
		 */
		if (wg->static_identity.has_identity &&
		    !memcmp(public_key, wg->static_identity.static_public,
			    NOISE_PUBLIC_KEY_LEN))
			return 0;
		peer = wg_peer_create(wg, public_key, preshared_key);
		if (IS_ERR(peer)) {
			NL_SET_ERR_MSG_ATTR(extack, attr, "cannot add peer");
			return PTR_ERR(peer);
		}
		wg_peer_get(peer);
		preshared_key = NULL;
	}

	if (flags & WGPEER_F_REMOVE_ME) {
		wg_peer_remove(peer);
		goto out;
	}
	if (preshared_key)
		wg_noise_handshake_set_preshared_key(&peer->handshake,
						     preshared_key);
	if (tb[WGPEER_A_ENDPOINT]) {
		struct wg_endpoint endpoint = {};

		/* The length says which; validate_endpoint() checked both. */
		memcpy(&endpoint.addr6, nla_data(tb[WGPEER_A_ENDPOINT]),
		       min_t(size_t, nla_len(tb[WGPEER_A_ENDPOINT]),
			     sizeof(endpoint.addr6)));
		wg_peer_set_endpoint(peer, &endpoint);
	}
	if (flags & WGPEER_F_REPLACE_ALLOWEDIPS)
		wg_allowedips_remove_by_peer(&wg->peer_allowedips, peer,
					     &wg->device_update_lock);
	if (tb[WGPEER_A_ALLOWEDIPS]) {
		nla_for_each_nested(aip, tb[WGPEER_A_ALLOWEDIPS], rem) {
			ret = set_allowedip(peer, aip);
			if (ret)
				goto out;
		}
	}
	if (tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]) {
		u16 interval =
			nla_get_u16(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
		bool start = interval && !peer->persistent_keepalive_interval;

		WRITE_ONCE(peer->persistent_keepalive_interval, interval);
		/* A newly enabled keepalive goes out at once. */
		if (start && netif_running(wg->dev))
			wg_send_keepalive(peer);
	}
	kick_staged(peer);
out:
	wg_peer_put(peer);
	return ret;
}

/*
 * A new private key ends every session and every handshake in progress,
 * which were keyed with the old one, and a handshake with the new key may
 * start at once; a peer with the new public key goes. The same key again
 * (a configuration applied twice) changes nothing.
 */
static void set_private_key(struct wg_device *wg, const u8 *key)
{
	struct noise_static_identity *id = &wg->static_identity;
	struct wg_peer *peer;

	if (wg_noise_static_identity_is(id, key))
		return;
	if (wg_noise_set_static_identity_private_key(id, key)) {
		peer = wg_pubkey_hashtable_lookup(wg->peer_hashtable,
						  id->static_public);
		if (peer) {
			wg_peer_remove(peer);
			wg_peer_put(peer);
		}
	}
	wg_cookie_checker_precompute(&wg->cookie_checker, id);
	list_for_each_entry(peer, &wg->peer_list, peer_list) {
		wg_noise_precompute_static_static(id, &peer->handshake);
		wg_noise_handshake_reset(wg, &peer->handshake);
		wg_noise_keypairs_clear(wg, &peer->keypairs);
		WRITE_ONCE(peer->last_sent_handshake, 0);
		/* A keepalive that waited for a key goes out now. */
		if (id->has_identity && netif_running(wg->dev) &&
		    READ_ONCE(peer->persistent_keepalive_interval))
			wg_send_keepalive(peer);
		if (id->has_identity)
			kick_staged(peer);
		cond_resched();
	}
}

/*
 * The peers a message may create must fit under the limit; checked before
 * anything changes. A peer listed twice is counted twice, which errs on the
 * safe side.
 */
static int check_peer_limit(struct wg_device *wg, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs, *attr, *key, *flags;
	unsigned int peers = wg->num_peers;
	bool replace = false;
	struct wg_peer *peer;
	int rem;

	if (!attrs[WGDEVICE_A_PEERS])
		return 0;
	if (attrs[WGDEVICE_A_FLAGS] &&
	    nla_get_u32(attrs[WGDEVICE_A_FLAGS]) & WGDEVICE_F_REPLACE_PEERS) {
		replace = true;
		peers = 0;
	}
	nla_for_each_nested(attr, attrs[WGDEVICE_A_PEERS], rem) {
		key = nla_find_nested(attr, WGPEER_A_PUBLIC_KEY);
		flags = nla_find_nested(attr, WGPEER_A_FLAGS);
		if (flags && nla_get_u32(flags) &
			     (WGPEER_F_REMOVE_ME | WGPEER_F_UPDATE_ONLY))
			continue;
		peer = replace ? NULL :
		       wg_pubkey_hashtable_lookup(wg->peer_hashtable,
						  nla_data(key));
		if (peer) {
			wg_peer_put(peer);
			continue;
		}
		if (++peers > MAX_PEERS_PER_DEVICE) {
			NL_SET_ERR_MSG_ATTR(info->extack, attr,
					    "too many peers for one device");
			return -E2BIG;
		}
	}
	return 0;
}

static int set_port(struct wg_device *wg, u16 port)
{
	if (wg->incoming_port == port)
		return 0;
	if (!netif_running(wg->dev)) {
		wg->incoming_port = port;
		return 0;
	}
	return wg_socket_init(wg, port);
}

int wg_set_device_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs, *peer;
	struct wg_device *wg;
	int ret, rem;

	wg = lookup_interface(attrs, skb, info->extack);
	if (IS_ERR(wg))
		return PTR_ERR(wg);
	ret = validate_device(info);
	if (ret)
		goto out_put;

	rtnl_lock();
	mutex_lock(&wg->device_update_lock);

	/* Deleted while this message waited for the locks. */
	ret = -ENODEV;
	if (wg->dev->reg_state != NETREG_REGISTERED)
		goto out;

	if (attrs[WGDEVICE_A_LISTEN_PORT] || attrs[WGDEVICE_A_FWMARK]) {
		/* These act on the sockets, which live in the creating net. */
		ret = -ENONET;
		if (!wg->creating_net) {
			NL_SET_ERR_MSG(info->extack,
				       "the namespace the device was created in is gone");
			goto out;
		}
		ret = -EPERM;
		if (!netlink_ns_capable(skb, wg->creating_net->user_ns,
					CAP_NET_ADMIN)) {
			NL_SET_ERR_MSG(info->extack,
				       "listen port and fwmark need CAP_NET_ADMIN where the device was created");
			goto out;
		}
	}
	ret = check_peer_limit(wg, info);
	if (ret)
		goto out;
	if (attrs[WGDEVICE_A_LISTEN_PORT]) {
		ret = set_port(wg, nla_get_u16(attrs[WGDEVICE_A_LISTEN_PORT]));
		if (ret) {
			NL_SET_ERR_MSG_ATTR(info->extack,
					    attrs[WGDEVICE_A_LISTEN_PORT],
					    "cannot bind the listen port");
			goto out;
		}
	}

	++wg->device_update_gen;
	if (attrs[WGDEVICE_A_FWMARK] &&
	    wg->fwmark != nla_get_u32(attrs[WGDEVICE_A_FWMARK])) {
		wg->fwmark = nla_get_u32(attrs[WGDEVICE_A_FWMARK]);
		/* Policy routing may choose differently now. */
		wg_peer_reset_routes(wg);
	}
	if (attrs[WGDEVICE_A_FLAGS] &&
	    nla_get_u32(attrs[WGDEVICE_A_FLAGS]) & WGDEVICE_F_REPLACE_PEERS)
		wg_peer_remove_all(wg);
	if (attrs[WGDEVICE_A_PRIVATE_KEY])
		set_private_key(wg, nla_data(attrs[WGDEVICE_A_PRIVATE_KEY]));
	if (attrs[WGDEVICE_A_PEERS]) {
		nla_for_each_nested(peer, attrs[WGDEVICE_A_PEERS], rem) {
			ret = set_peer(wg, peer, info->extack);
			if (ret)
				goto out;
			cond_resched();
		}
	}
	ret = 0;

out:
	mutex_unlock(&wg->device_update_lock);
	rtnl_unlock();
out_put:
	dev_put(wg->dev);
	return ret;
}

static struct genl_family genl_family __ro_after_init = {
	.name = WG_GENL_NAME,
	.version = WG_GENL_VERSION,
	.module = THIS_MODULE,
	.netnsok = true,
	/* Each operation takes the device's own locks. */
	.parallel_ops = true,
	.split_ops = wireguard_nl_ops,
	.n_split_ops = ARRAY_SIZE(wireguard_nl_ops),
	/*
	 * Both commands predate the core's checks of reserved header fields
	 * and request flags; deployed tools were written without them.
	 */
	.resv_start_op = WG_CMD_SET_DEVICE + 1,
};

int __init wg_genetlink_init(void)
{
	return genl_register_family(&genl_family);
}

void wg_genetlink_uninit(void)
{
	genl_unregister_family(&genl_family);
}
