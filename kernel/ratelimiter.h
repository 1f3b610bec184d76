/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A token bucket per source address for handshake initiations under load.
 */

#ifndef _WG_RATELIMITER_H
#define _WG_RATELIMITER_H

#include <linux/types.h>

struct net;
struct sk_buff;

int wg_ratelimiter_init(void);
void wg_ratelimiter_uninit(void);
bool wg_ratelimiter_allow(struct sk_buff *skb, struct net *net);

#endif /* _WG_RATELIMITER_H */
