// SPDX-License-Identifier: GPL-2.0
/*
 * WireGuard: a secure network tunnel as a layer 3 network device.
 */

#include "allowedips.h"
#include "device.h"
#include "netlink.h"
#include "noise.h"
#include "peer.h"
#include "queueing.h"
#include "ratelimiter.h"
#include "version.h"

#include <net/genetlink.h>
#include <linux/module.h>
#include <net/rtnetlink.h>
#include <uapi/linux/wireguard.h>

static int __init wg_mod_init(void)
{
	int ret;

	wg_noise_init();
	ret = wg_ratelimiter_init();
	if (ret)
		return ret;
	ret = wg_allowedips_cache_init();
	if (ret)
		goto err_ratelimiter;
	ret = wg_peer_init();
	if (ret)
		goto err_allowedips;
	ret = wg_device_init();
	if (ret)
		goto err_peer;
	ret = wg_genetlink_init();
	if (ret)
		goto err_device;
	wg_fault_init();
	pr_info("wireguard: secure network tunnel, version %s\n",
		WIREGUARD_VERSION);
	return 0;

err_device:
	wg_device_uninit();
err_peer:
	wg_peer_uninit();
err_allowedips:
	wg_allowedips_cache_uninit();
err_ratelimiter:
	wg_ratelimiter_uninit();
	return ret;
}

static void __exit wg_mod_exit(void)
{
	wg_fault_uninit();
	wg_genetlink_uninit();
	wg_device_uninit();
	wg_peer_uninit();
	wg_allowedips_cache_uninit();
	wg_ratelimiter_uninit();
}

module_init(wg_mod_init);
module_exit(wg_mod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("WireGuard secure network tunnel");
MODULE_VERSION(WIREGUARD_VERSION);
MODULE_ALIAS_RTNL_LINK("wireguard");
MODULE_ALIAS_GENL_FAMILY(WG_GENL_NAME);
