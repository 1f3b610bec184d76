/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The protocol's per-peer timers, driven by what is sent and received.
 */

#ifndef _WG_TIMERS_H
#define _WG_TIMERS_H

struct wg_peer;

void wg_timers_init(struct wg_peer *peer);
void wg_timers_stop(struct wg_peer *peer);

void wg_timers_handshake_initiated(struct wg_peer *peer);
void wg_timers_handshake_complete(struct wg_peer *peer);
void wg_timers_session_derived(struct wg_peer *peer);
void wg_timers_data_sent(struct wg_peer *peer);
void wg_timers_data_received(struct wg_peer *peer);
void wg_timers_authenticated_sent(struct wg_peer *peer);
void wg_timers_authenticated_received(struct wg_peer *peer);

#endif /* _WG_TIMERS_H */
