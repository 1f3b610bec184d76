// Package guest holds the WireGuard integration suite that runs inside the
// test VM (see TestMain): it drives the loaded wireguard module through
// rtnetlink, wgctrl-go, raw generic netlink and the real wg(8) tool.
//
// This file mirrors include/uapi/linux/wireguard.h. The numbers are the
// upstream ABI: the raw netlink tests send them by hand, so they are spelled
// out here rather than taken from x/sys, which would hide a mismatch.
package guest

// Generic netlink family.
const (
	genlName    = "wireguard"
	genlVersion = 1
)

// Commands.
const (
	cmdGetDevice = 0
	cmdSetDevice = 1
)

// Device attributes (WGDEVICE_A_*).
const (
	deviceAUnspec     = 0
	deviceAIfindex    = 1 // u32
	deviceAIfname     = 2 // NUL-terminated string
	deviceAPrivateKey = 3 // 32 bytes
	deviceAPublicKey  = 4 // 32 bytes
	deviceAFlags      = 5 // u32
	deviceAListenPort = 6 // u16
	deviceAFwmark     = 7 // u32
	deviceAPeers      = 8 // nested array of peers
)

// Device flags (WGDEVICE_F_*).
const deviceFReplacePeers = 1

// Peer attributes (WGPEER_A_*).
const (
	peerAUnspec            = 0
	peerAPublicKey         = 1  // 32 bytes
	peerAPresharedKey      = 2  // 32 bytes
	peerAFlags             = 3  // u32
	peerAEndpoint          = 4  // struct sockaddr_in or sockaddr_in6
	peerAKeepalive         = 5  // u16
	peerALastHandshakeTime = 6  // struct __kernel_timespec
	peerARxBytes           = 7  // u64
	peerATxBytes           = 8  // u64
	peerAAllowedIPs        = 9  // nested array of allowed IPs
	peerAProtocolVersion   = 10 // u32
)

// Peer flags (WGPEER_F_*).
const (
	peerFRemoveMe          = 1
	peerFReplaceAllowedIPs = 2
	peerFUpdateOnly        = 4
)

// Allowed IP attributes (WGALLOWEDIP_A_*). WGALLOWEDIP_A_FLAGS (4) exists only
// in newer kernels: Debian 6.1's upstream module rejects it, so only
// TestAllowedIPFlags uses it, and it skips when the module predates it.
const (
	allowedIPAUnspec   = 0
	allowedIPAFamily   = 1 // u16
	allowedIPAIPAddr   = 2 // 4 or 16 bytes
	allowedIPACidrMask = 3 // u8
	allowedIPAFlags    = 4 // u32
)

// Allowed IP flags (WGALLOWEDIP_F_*).
const allowedIPFRemoveMe = 1

// Link defaults of a freshly created wireguard device.
const (
	linkKind       = "wireguard"
	defaultMTU     = 1420
	keyLen         = 32
	arphrdNone     = 0xfffe // ARPHRD_NONE
	nlaFNested     = 0x8000 // NLA_F_NESTED
	sizeofSockIn   = 16     // sizeof(struct sockaddr_in)
	sizeofSockIn6  = 28     // sizeof(struct sockaddr_in6)
	sizeofTimespec = 16     // sizeof(struct __kernel_timespec)
)
