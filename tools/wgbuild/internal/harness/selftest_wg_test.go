package harness

import "testing"

func TestWGVersionDate(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want int
	}{
		{"wireguard-tools v1.0.20210914 - https://git.zx2c4.com/wireguard-tools/\n", 20210914},
		{"wireguard-tools v1.0.20260223 - https://git.zx2c4.com/wireguard-tools/\n", 20260223},
		{"", 0},
		{"wg: command not found", 0},
		{"wireguard-tools v1.0.2021 - short", 0},
	} {
		if got := wgVersionDate(tc.out); got != tc.want {
			t.Errorf("wgVersionDate(%q) = %d, want %d", tc.out, got, tc.want)
		}
	}
}

func TestWGRemovalSyntax(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{`n0 wg set wg0 peer "$pub1" allowed-ips -192.168.0.1/32,-192.168.0.20/32`, true},
		{`n0 wg set wg0 peer "$pub1" allowed-ips   -abcd::1/128`, true},
		{`n0 wg set wg0 peer "$pub1" allowed-ips 192.168.0.1/32,abcd::1/128`, false},
		{`n0 wg set wg0 peer "$pub1" allowed-ips ""`, false},
	} {
		if got := wgRemoval.MatchString(tc.line); got != tc.want {
			t.Errorf("wgRemoval on %q = %v, want %v", tc.line, got, tc.want)
		}
	}
}
