package kbuild

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// A header as tools/net/ynl writes it, with what ours defines.
const ynlHeader = `/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause) */
/* Do not edit directly, auto-generated from: */
/* YNL-GEN uapi header */
#ifndef _UAPI_LINUX_WG_TEST_H
#define _UAPI_LINUX_WG_TEST_H
#define WG_GENL_NAME	"wireguard"
#define WG_KEY_LEN	32
enum wgpeer_flag {
	WGPEER_F_REMOVE_ME = 1,
	WGPEER_F_UPDATE_ONLY = 4,
};
enum wgdevice_attribute {
	WGDEVICE_A_UNSPEC,
	WGDEVICE_A_IFINDEX,

	__WGDEVICE_A_LAST
};
#define WGDEVICE_A_MAX (__WGDEVICE_A_LAST - 1)
#endif
`

func TestUAPIDiff(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	ours := `#include <linux/types.h>
#define WG_GENL_NAME "wireguard"
#define WG_KEY_LEN 32
/*
 * WGPEER_F_REMOVE_ME in a comment is not a definition.
 */
enum wgpeer_flag {
	WGPEER_F_REMOVE_ME = 1U << 0,
	WGPEER_F_UPDATE_ONLY = 1U << 2,
	__WGPEER_F_ALL = WGPEER_F_REMOVE_ME |
			 WGPEER_F_UPDATE_ONLY
};
enum wgdevice_attribute {
	WGDEVICE_A_UNSPEC,
	WGDEVICE_A_IFINDEX,		/* NLA_U32 */
	__WGDEVICE_A_LAST
};
#define WGDEVICE_A_MAX (__WGDEVICE_A_LAST - 1)
`
	ctx := context.Background()
	for _, tc := range []struct {
		name, theirs string
		want         []string // substrings of the breaks; none: compatible
		added        string   // what ours adds, joined by spaces
	}{
		{"equal", ynlHeader, nil, ""},
		{"a value differs", strings.Replace(ynlHeader, "WGPEER_F_UPDATE_ONLY = 4", "WGPEER_F_UPDATE_ONLY = 8", 1), []string{"WGPEER_F_UPDATE_ONLY: ours 4, the tree's 8"}, ""},
		{"a string differs", strings.Replace(ynlHeader, `"wireguard"`, `"wg"`, 1), []string{`WG_GENL_NAME: ours "wireguard", the tree's "wg"`}, ""},
		// An older tree: ours adds an attribute, and its _MAX grows.
		{"ours adds an attribute", strings.Replace(ynlHeader, "\tWGDEVICE_A_IFINDEX,\n", "", 1), nil, "WGDEVICE_A_IFINDEX"},
		{"ours lacks one of theirs", strings.Replace(ynlHeader, "\tWGDEVICE_A_IFINDEX,\n", "\tWGDEVICE_A_IFINDEX,\n\tWGDEVICE_A_NEW,\n", 1), []string{"WGDEVICE_A_NEW: the tree's, not in ours", "WGDEVICE_A_MAX: ours 1, the tree's 2"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			diff, added, err := UAPIDiff(ctx, []byte(ours), []byte(tc.theirs))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(added, " "); got != tc.added {
				t.Errorf("added %q, want %q", got, tc.added)
			}
			if len(diff) != len(tc.want) {
				t.Fatalf("differences %q, want %d: %q", diff, len(tc.want), tc.want)
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(diff, func(d string) bool { return strings.Contains(d, w) }) {
					t.Errorf("differences %q lack %q", diff, w)
				}
			}
		})
	}
}

// The driver's header against the trees in the cache that generate theirs.
func TestUAPIDiffDriverHeader(t *testing.T) {
	ours, err := os.ReadFile("../../../../kernel/uapi/wireguard.h")
	if err != nil {
		t.Fatal(err)
	}
	names, _ := uapiNames(ours)
	for _, n := range []string{"WG_GENL_NAME", "WG_KEY_LEN", "WGDEVICE_A_PEERS", "WGPEER_A_PROTOCOL_VERSION", "WGALLOWEDIP_A_FLAGS", "WG_CMD_SET_DEVICE", "WGPEER_F_UPDATE_ONLY"} {
		if !slices.Contains(names, n) {
			t.Errorf("uapiNames of kernel/uapi/wireguard.h lacks %s (has %q)", n, names)
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, "__") {
			t.Errorf("uapiNames has the helper %s", n)
		}
	}
}
