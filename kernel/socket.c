// SPDX-License-Identifier: GPL-2.0
/*
 * UDP sockets through the udp_tunnel API: one for IPv4 and, where IPv6 is
 * available, one for IPv6 on the same port. They are opened in the network
 * namespace the device was created in when the device goes up, and closed
 * when it goes down.
 */

#include "socket.h"
#include "device.h"
#include "allowedips.h"
#include "peer.h"
#include "queueing.h"
#include "receive.h"

#include <linux/in6.h>
#include <linux/inetdevice.h>
#include <linux/netdevice.h>
#include <net/ip.h>
#include <net/addrconf.h>
#include <net/ip6_route.h>
#include <net/ipv6.h>
#include <net/route.h>
#include <net/netfilter/nf_conntrack.h>
#include <net/udp_tunnel.h>

static int open_socket(struct wg_device *wg, int family, u16 port,
		       struct sock **skp)
{
	struct udp_tunnel_sock_cfg tunnel = {
		.sk_user_data = wg,
		.encap_type = 1,
		.encap_rcv = wg_receive,
	};
	struct udp_port_cfg cfg = {
		.family = family,
		.local_udp_port = htons(port),
	};
	struct socket *sock;
	int ret;

	if (family == AF_INET) {
		cfg.local_ip.s_addr = htonl(INADDR_ANY);
	} else {
#if IS_ENABLED(CONFIG_IPV6)
		cfg.local_ip6 = in6addr_any;
		cfg.ipv6_v6only = true;
#else
		return -EAFNOSUPPORT;
#endif
	}

	ret = udp_sock_create(wg->creating_net, &cfg, &sock);
	if (ret)
		return ret;
	setup_udp_tunnel_sock(wg->creating_net, sock->sk, &tunnel);
	*skp = sock->sk;
	return 0;
}

static u16 bound_port(struct sock *sk)
{
	return ntohs(inet_sk(sk)->inet_sport);
}

/*
 * Replaces the published sockets. Packets in flight may still see the old
 * ones: they are closed after a grace period, when no sender uses them and
 * no receive path that found the device through them runs (not every
 * kernel's udp_tunnel_sock_release() waits for one).
 */
static void publish(struct wg_device *wg, struct sock *new4,
		    struct sock *new6)
{
	struct sock *old4, *old6;

	old4 = rcu_replace_pointer(wg->sock4, new4,
				   lockdep_is_held(&wg->device_update_lock));
	old6 = rcu_replace_pointer(wg->sock6, new6,
				   lockdep_is_held(&wg->device_update_lock));
	if (new4)
		wg->incoming_port = bound_port(new4);
	if (old4 || old6)
		synchronize_net();
	if (old4)
		udp_tunnel_sock_release(old4);
	if (old6)
		udp_tunnel_sock_release(old6);
}

/* Attempts at a random port before giving up when IPv6 finds it taken. */
#define RANDOM_PORT_TRIES 32

/**
 * wg_socket_init - open the device's sockets on a port and publish them
 * @wg: the device, with RTNL and its update lock held
 * @port: the port, or 0 for one that is free on both IPv4 and IPv6
 *
 * The previous sockets, if any, are closed only when the new ones are open,
 * so that a failure leaves the device as it was.
 *
 * Return: 0, -EADDRINUSE when the port is taken, -ENONET when the creating
 * namespace is gone, or another socket error.
 */
int wg_socket_init(struct wg_device *wg, u16 port)
{
	struct sock *new4 = NULL, *new6 = NULL;
	unsigned int tries = 0;
	int ret;

	ASSERT_RTNL();
	lockdep_assert_held(&wg->device_update_lock);
	if (!wg->creating_net)
		return -ENONET;

retry:
	ret = open_socket(wg, AF_INET, port, &new4);
	if (ret) {
		netdev_err(wg->dev, "could not open IPv4 socket on port %u: %d\n",
			   port, ret);
		return ret;
	}
	ret = open_socket(wg, AF_INET6, bound_port(new4), &new6);
	if (ret == -EADDRINUSE && !port && ++tries < RANDOM_PORT_TRIES) {
		udp_tunnel_sock_release(new4);
		new4 = NULL;
		goto retry;
	}
	if (ret == -EAFNOSUPPORT) {
		/* IPv6 is disabled or not built: run on IPv4 alone. */
		new6 = NULL;
	} else if (ret) {
		netdev_err(wg->dev, "could not open IPv6 socket on port %u: %d\n",
			   bound_port(new4), ret);
		udp_tunnel_sock_release(new4);
		return ret;
	}

	publish(wg, new4, new6);
	/* A route may depend on the source port. */
	wg_peer_reset_routes(wg);
	return 0;
}

/**
 * wg_socket_uninit - close the device's sockets
 * @wg: the device, with its update lock held
 */
void wg_socket_uninit(struct wg_device *wg)
{
	publish(wg, NULL, NULL);
}

/*
 * Replies leave from the local address the peer's messages arrived at
 * (@ep's source), so that a multihomed host answers from the address the
 * peer knows it by. Sticky, but not too sticky: the source is forgotten
 * when it is no longer a local address, or when the route from it no
 * longer leaves through the interface the messages arrived on.
 */
static void forget_src4(struct wg_endpoint *ep)
{
	ep->src4.s_addr = 0;
	ep->src_if4 = 0;
}

static struct rtable *route4(struct net *net, struct sock *sk,
			     struct wg_device *wg, struct wg_endpoint *ep,
			     struct flowi4 *fl, bool *forgot)
{
	struct rtable *rt;

	if (ep->src4.s_addr &&
	    !inet_confirm_addr(net, NULL, 0, ep->src4.s_addr, RT_SCOPE_HOST)) {
		forget_src4(ep);
		*forgot = true;
	}
	for (;;) {
		*fl = (struct flowi4) {
			.saddr = ep->src4.s_addr,
			.daddr = ep->addr4.sin_addr.s_addr,
			.fl4_dport = ep->addr4.sin_port,
			.fl4_sport = inet_sk(sk)->inet_sport,
			.flowi4_mark = wg->fwmark,
			.flowi4_proto = IPPROTO_UDP,
		};
		rt = ip_route_output_flow(net, fl, sk);
		if (!ep->src_if4 ||
		    (IS_ERR(rt) ? PTR_ERR(rt) != -EINVAL :
				  rt->dst.dev->ifindex == ep->src_if4))
			return rt;
		if (!IS_ERR(rt))
			ip_rt_put(rt);
		forget_src4(ep);
		*forgot = true;
	}
}

/*
 * A message routed back into its own device goes through cryptokey routing
 * again. To another peer that is onion routing, and fine; to the peer it
 * was sealed for, it would be sealed for it again and come back, growing,
 * without end.
 */
static bool loops(struct wg_device *wg, struct wg_peer *peer,
		  const struct wg_endpoint *ep)
{
	return peer && wg_allowedips_owns(&wg->peer_allowedips, peer,
					  &ep->addr);
}

/*
 * While a message goes down the stack, synchronously into any device's
 * transmit (a wireguard device's has no queue), this CPU knows how deep
 * the message is nested, plus one: 0 when no message of ours is sent.
 */
static DEFINE_PER_CPU(u8, sending_nesting);

/**
 * wg_socket_nesting - how nested a packet that a device transmits is
 *
 * Called with bottom halves off, from a device's transmit.
 *
 * Return: 0 for a packet from the stack; n when the packet is a message
 * of a wireguard device nested n - 1 deep, being sent.
 */
u8 wg_socket_nesting(void)
{
	return __this_cpu_read(sending_nesting);
}

/*
 * Route and send @skb from @sk; on an error the caller still owns @skb.
 * The caller holds rcu_read_lock_bh(), which keeps @sk alive.
 */
static int xmit4(struct wg_device *wg, struct wg_peer *peer,
		 struct sock *sk, struct sk_buff *skb,
		 struct wg_endpoint *ep, u8 ds, bool *forgot)
{
	struct rtable *rt = NULL;
	struct flowi4 fl;
	__be32 saddr;

	if (peer)
		rt = dst_cache_get_ip4(&peer->endpoint_cache, &saddr);
	if (!rt) {
		rt = route4(sock_net(sk), sk, wg, ep, &fl, forgot);
		if (IS_ERR(rt))
			return PTR_ERR(rt);
		saddr = fl.saddr;
		if (peer)
			wg_peer_cache_route(peer, ep, &rt->dst, &saddr);
	}
	if (unlikely(rt->dst.dev == wg->dev && loops(wg, peer, ep))) {
		ip_rt_put(rt);
		return -ELOOP;
	}
	udp_tunnel_xmit_skb(rt, sk, skb, saddr, ep->addr4.sin_addr.s_addr, ds,
			    ip4_dst_hoplimit(&rt->dst), 0,
			    inet_sk(sk)->inet_sport, ep->addr4.sin_port,
			    false, false, 0);
	return 0;
}

static int xmit6(struct wg_device *wg, struct wg_peer *peer,
		 struct sock *sk, struct sk_buff *skb,
		 struct wg_endpoint *ep, u8 ds, bool *forgot)
{
#if IS_ENABLED(CONFIG_IPV6)
	struct net *net = sock_net(sk);
	struct dst_entry *dst = NULL;
	struct in6_addr saddr;
	struct flowi6 fl;

	if (peer)
		dst = dst_cache_get_ip6(&peer->endpoint_cache, &saddr);
	if (!dst) {
		if (!ipv6_addr_any(&ep->src6) &&
		    !ipv6_chk_addr(net, &ep->src6, NULL, 0)) {
			ep->src6 = in6addr_any;
			*forgot = true;
		}
		fl = (struct flowi6) {
			.saddr = ep->src6,
			.daddr = ep->addr6.sin6_addr,
			.fl6_dport = ep->addr6.sin6_port,
			.fl6_sport = inet_sk(sk)->inet_sport,
			.flowi6_mark = wg->fwmark,
			.flowi6_oif = ep->addr6.sin6_scope_id,
			.flowi6_proto = IPPROTO_UDP,
		};
		dst = ip6_dst_lookup_flow(net, sk, &fl, NULL);
		if (IS_ERR(dst))
			return PTR_ERR(dst);
		saddr = fl.saddr;
		if (peer)
			wg_peer_cache_route(peer, ep, dst, &saddr);
	}
	if (unlikely(dst->dev == wg->dev && loops(wg, peer, ep))) {
		dst_release(dst);
		return -ELOOP;
	}
	udp_tunnel6_xmit_skb(dst, sk, skb, skb->dev, &saddr,
			     &ep->addr6.sin6_addr, ds, ip6_dst_hoplimit(dst), 0,
			     inet_sk(sk)->inet_sport, ep->addr6.sin6_port,
			     false, 0);
	return 0;
#else
	return -EAFNOSUPPORT;
#endif
}

/**
 * wg_endpoint_of_skb - where a received message came from, and to
 * @skb: the message's packet, with its outer headers
 * @endpoint: receives the source address and port, where answers go, and
 *	the local address and interface it arrived at, where they leave from
 */
void wg_endpoint_of_skb(struct sk_buff *skb, struct wg_endpoint *endpoint)
{
	memset(endpoint, 0, sizeof(*endpoint));
	if (ip_hdr(skb)->version == 4) {
		endpoint->addr4.sin_family = AF_INET;
		endpoint->addr4.sin_addr.s_addr = ip_hdr(skb)->saddr;
		endpoint->addr4.sin_port = udp_hdr(skb)->source;
		endpoint->src4.s_addr = ip_hdr(skb)->daddr;
		endpoint->src_if4 = skb->skb_iif;
	} else {
		endpoint->addr6.sin6_family = AF_INET6;
		endpoint->addr6.sin6_addr = ipv6_hdr(skb)->saddr;
		endpoint->addr6.sin6_port = udp_hdr(skb)->source;
		endpoint->addr6.sin6_scope_id =
			ipv6_iface_scope_id(&ipv6_hdr(skb)->saddr,
					    skb->skb_iif);
		endpoint->src6 = ipv6_hdr(skb)->daddr;
	}
}

/*
 * Sends a message, which @skb->data points at, to @to, the endpoint of
 * @peer (NULL for a reply to an address). @forgot is set when @to's source
 * address was dropped (see route4()).
 */
static int send_to(struct wg_device *wg, struct wg_peer *peer,
		   struct sk_buff *skb, struct wg_endpoint *to, u8 ds,
		   bool *forgot)
{
	/* Zero for the device's own messages, in fresh buffers. */
	u8 nesting = WG_PACKET_CB(skb)->nesting, outer;
	sa_family_t family = to->addr.sa_family;
	struct sock *sk;
	int ret;

	skb->dev = wg->dev;
	skb->mark = wg->fwmark;
	skb->ignore_df = 1;
	skb_dst_drop(skb);
	nf_reset_ct(skb);
	/*
	 * The tunnel core counts the device's tx_bytes from the inner
	 * network header on: that is the message, as for received ones.
	 */
	skb->encapsulation = 0;
	skb_set_inner_network_header(skb, 0);
	skb_set_inner_transport_header(skb, 0);

	rcu_read_lock_bh();
	outer = __this_cpu_read(sending_nesting);
	__this_cpu_write(sending_nesting, nesting + 1);
	if (family == AF_INET) {
		sk = rcu_dereference_bh(wg->sock4);
		ret = sk ? xmit4(wg, peer, sk, skb, to, ds, forgot) :
			     -ENONET;
	} else if (family == AF_INET6) {
		sk = rcu_dereference_bh(wg->sock6);
		ret = sk ? xmit6(wg, peer, sk, skb, to, ds, forgot) :
			     -ENONET;
	} else {
		ret = -EDESTADDRREQ;
	}
	__this_cpu_write(sending_nesting, outer);
	rcu_read_unlock_bh();

	if (unlikely(ret)) {
		/*
		 * The route to the endpoint leads back into this device: the
		 * message would come back to be sealed again, and again.
		 */
		if (ret == -ELOOP) {
			net_dbg_ratelimited("%s: dropped a routing loop to %pISpfsc\n",
					    wg->dev->name, &to->addr);
			wg_count(wg, WG_CNT_TX_ROUTING_LOOP);
		} else if (ret != -EDESTADDRREQ && ret != -ENONET) {
			net_dbg_ratelimited("%s: no route to %pISpfsc: %d\n",
					    wg->dev->name, &to->addr, ret);
		}
		kfree_skb(skb);
	}
	return ret;
}

/**
 * wg_socket_send_buffer_to_endpoint - send a message to an address
 * @wg: the device
 * @to: the address, as a received message gave it
 * @buffer: the message
 * @len: its length
 *
 * Return: as wg_socket_send_skb_to_peer(), or -ENOMEM.
 */
int wg_socket_send_buffer_to_endpoint(struct wg_device *wg,
				      const struct wg_endpoint *to,
				      const void *buffer, size_t len)
{
	struct sk_buff *skb = alloc_skb(WG_OUTER_HEADROOM + len, GFP_ATOMIC);
	struct wg_endpoint endpoint = *to;
	bool forgot = false;

	if (unlikely(!skb))
		return -ENOMEM;
	skb_reserve(skb, WG_OUTER_HEADROOM);
	skb_put_data(skb, buffer, len);
	return send_to(wg, NULL, skb, &endpoint, 0, &forgot);
}

/**
 * wg_socket_send_skb_to_peer - send a message to a peer's endpoint
 * @peer: the peer
 * @skb: the message, with WG_OUTER_HEADROOM in front; consumed
 * @ds: the outer DS field (the inner packet's ECN bits)
 *
 * Return: 0, -EDESTADDRREQ without an endpoint, -ENONET while the device
 * is down, -ELOOP when the route leads back into the device, or a routing
 * error.
 */
int wg_socket_send_skb_to_peer(struct wg_peer *peer, struct sk_buff *skb,
			       u8 ds)
{
	struct wg_device *wg = peer->device;
	struct wg_endpoint endpoint;
	unsigned int len = skb->len;
	bool forgot = false;
	int ret;

	wg_peer_get_endpoint(peer, &endpoint);
	ret = send_to(wg, peer, skb, &endpoint, ds, &forgot);
	if (unlikely(forgot))
		wg_peer_forget_src(peer, &endpoint);
	if (!ret)
		atomic64_add(len, &peer->tx_bytes);
	return ret;
}

/**
 * wg_socket_send_buffer_to_peer - send a message to a peer's endpoint
 * @peer: the peer
 * @buffer: the message
 * @len: its length
 *
 * Return: as wg_socket_send_skb_to_peer(), or -ENOMEM.
 */
int wg_socket_send_buffer_to_peer(struct wg_peer *peer, const void *buffer,
				  size_t len)
{
	struct sk_buff *skb = alloc_skb(WG_OUTER_HEADROOM + len, GFP_ATOMIC);

	if (unlikely(!skb))
		return -ENOMEM;
	skb_reserve(skb, WG_OUTER_HEADROOM);
	skb_put_data(skb, buffer, len);
	return wg_socket_send_skb_to_peer(peer, skb, 0);
}
