/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * Generic netlink interface of WireGuard devices.
 *
 * The family is WG_GENL_NAME, version WG_GENL_VERSION. Two commands exist:
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
 * from the peer instead of added. Nests of peers and of allowed IPs use
 * attribute type 0 for each element. A large configuration may be split
 * across several messages, all but the first without REPLACE flags.
 *
 * Both commands need CAP_NET_ADMIN in the user namespace of the device's
 * network namespace. The listen port and fwmark act on the UDP sockets,
 * which stay in the namespace the device was created in: setting them needs
 * CAP_NET_ADMIN there too, and fails with ENONET once that namespace is gone.
 */

#ifndef _UAPI_LINUX_WIREGUARD_H
#define _UAPI_LINUX_WIREGUARD_H

#define WG_GENL_NAME "wireguard"
#define WG_GENL_VERSION 1

#define WG_KEY_LEN 32

enum wg_cmd {
	WG_CMD_GET_DEVICE,
	WG_CMD_SET_DEVICE,
	__WG_CMD_MAX
};

#define WG_CMD_MAX (__WG_CMD_MAX - 1)

enum wgdevice_flag {
	WGDEVICE_F_REPLACE_PEERS = 1U << 0,
	__WGDEVICE_F_ALL = WGDEVICE_F_REPLACE_PEERS
};

enum wgdevice_attribute {
	WGDEVICE_A_UNSPEC,
	WGDEVICE_A_IFINDEX,		/* NLA_U32 */
	WGDEVICE_A_IFNAME,		/* NLA_NUL_STRING, up to IFNAMSIZ - 1 */
	WGDEVICE_A_PRIVATE_KEY,		/* WG_KEY_LEN bytes */
	WGDEVICE_A_PUBLIC_KEY,		/* WG_KEY_LEN bytes, read only */
	WGDEVICE_A_FLAGS,		/* NLA_U32, enum wgdevice_flag */
	WGDEVICE_A_LISTEN_PORT,		/* NLA_U16 */
	WGDEVICE_A_FWMARK,		/* NLA_U32 */
	WGDEVICE_A_PEERS,		/* NLA_NESTED of NLA_NESTED peers */
	__WGDEVICE_A_LAST
};

#define WGDEVICE_A_MAX (__WGDEVICE_A_LAST - 1)

enum wgpeer_flag {
	WGPEER_F_REMOVE_ME = 1U << 0,
	WGPEER_F_REPLACE_ALLOWEDIPS = 1U << 1,
	WGPEER_F_UPDATE_ONLY = 1U << 2,
	__WGPEER_F_ALL = WGPEER_F_REMOVE_ME | WGPEER_F_REPLACE_ALLOWEDIPS |
			 WGPEER_F_UPDATE_ONLY
};

enum wgpeer_attribute {
	WGPEER_A_UNSPEC,
	WGPEER_A_PUBLIC_KEY,		/* WG_KEY_LEN bytes */
	WGPEER_A_PRESHARED_KEY,		/* WG_KEY_LEN bytes, all zeros: none */
	WGPEER_A_FLAGS,			/* NLA_U32, enum wgpeer_flag */
	WGPEER_A_ENDPOINT,		/* struct sockaddr_in or sockaddr_in6 */
	WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,	/* NLA_U16 seconds, 0: off */
	WGPEER_A_LAST_HANDSHAKE_TIME,	/* struct __kernel_timespec */
	WGPEER_A_RX_BYTES,		/* NLA_U64 */
	WGPEER_A_TX_BYTES,		/* NLA_U64 */
	WGPEER_A_ALLOWEDIPS,		/* NLA_NESTED of allowed IP nests */
	WGPEER_A_PROTOCOL_VERSION,	/* NLA_U32, only 1 is known */
	__WGPEER_A_LAST
};

#define WGPEER_A_MAX (__WGPEER_A_LAST - 1)

enum wgallowedip_flag {
	WGALLOWEDIP_F_REMOVE_ME = 1U << 0,
	__WGALLOWEDIP_F_ALL = WGALLOWEDIP_F_REMOVE_ME
};

enum wgallowedip_attribute {
	WGALLOWEDIP_A_UNSPEC,
	WGALLOWEDIP_A_FAMILY,		/* NLA_U16, AF_INET or AF_INET6 */
	WGALLOWEDIP_A_IPADDR,		/* struct in_addr or struct in6_addr */
	WGALLOWEDIP_A_CIDR_MASK,	/* NLA_U8 */
	WGALLOWEDIP_A_FLAGS,		/* NLA_U32, enum wgallowedip_flag */
	__WGALLOWEDIP_A_LAST
};

#define WGALLOWEDIP_A_MAX (__WGALLOWEDIP_A_LAST - 1)

#endif /* _UAPI_LINUX_WIREGUARD_H */
