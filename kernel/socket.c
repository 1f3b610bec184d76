// SPDX-License-Identifier: GPL-2.0
/*
 * UDP sockets through the udp_tunnel API: one for IPv4 and, where IPv6 is
 * available, one for IPv6 on the same port. They are opened in the network
 * namespace the device was created in when the device goes up, and closed
 * when it goes down.
 */

#include "socket.h"
#include "device.h"

#include <linux/in6.h>
#include <linux/netdevice.h>
#include <net/udp_tunnel.h>

/*
 * Encapsulated packets arrive here in softirq context. This version of the
 * driver carries configuration only; until the protocol lands, every packet
 * is counted as dropped.
 */
static int wg_receive(struct sock *sk, struct sk_buff *skb)
{
	struct wg_device *wg = rcu_dereference_sk_user_data(sk);

	if (likely(wg))
		DEV_STATS_INC(wg->dev, rx_dropped);
	kfree_skb(skb);
	return 0;
}

static int open_socket(struct wg_device *wg, int family, u16 port,
		       struct socket **sockp)
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

	ret = udp_sock_create(wg->creating_net, &cfg, sockp);
	if (ret)
		return ret;
	setup_udp_tunnel_sock(wg->creating_net, *sockp, &tunnel);
	return 0;
}

static u16 bound_port(struct socket *sock)
{
	return ntohs(inet_sk(sock->sk)->inet_sport);
}

/*
 * Replaces the published sockets. Packets in flight may still see the old
 * ones: udp_tunnel_sock_release() waits for a grace period before it
 * closes them.
 */
static void publish(struct wg_device *wg, struct socket *new4,
		    struct socket *new6)
{
	struct socket *old4, *old6;

	old4 = rcu_replace_pointer(wg->sock4, new4,
				   lockdep_is_held(&wg->device_update_lock));
	old6 = rcu_replace_pointer(wg->sock6, new6,
				   lockdep_is_held(&wg->device_update_lock));
	if (new4)
		wg->incoming_port = bound_port(new4);
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
	struct socket *new4 = NULL, *new6 = NULL;
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
