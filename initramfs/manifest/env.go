package manifest

// The guest suite's environment: what the host (tools/wgbuild/internal/
// harness and the commands that build plans) tells the suite in
// vmtest/guest. Both sides name the variables only through these.
const (
	// GuestEnv is "1" in the VM; without it the suite skips.
	GuestEnv = "WGVM_GUEST"
	// LongEnv "1" also runs the long tests (the 150 s rekey test).
	LongEnv = "WGVM_LONG"
	// TransferMiBEnv sizes each bulk TCP transfer of the tunnel tests.
	TransferMiBEnv = "WGVM_TRANSFER_MIB"
	// TimeScaleEnv multiplies the suite's waits for a slow kernel (the
	// debug config under TCG is about eight times slower); default 1.
	TimeScaleEnv = "WGVM_TIME_SCALE"
	// FuzzSeedEnv seeds the fuzzers (random if unset, and printed).
	FuzzSeedEnv = "WGVM_FUZZ_SEED"
	// FuzzPacketsEnv is how many datagrams TestFuzzPackets sends.
	FuzzPacketsEnv = "WGVM_FUZZ_PACKETS"
	// FuzzMessagesEnv is how many messages TestFuzzNetlink sends.
	FuzzMessagesEnv = "WGVM_FUZZ_MESSAGES"
)

// The two-VM interop setup (wgbuild interop): each VM of a linked pair
// gets its side of the link and the other's in these variables.
const (
	RoleEnv          = "WGVM_ROLE"            // RoleOurs or RoleUpstream
	MACEnv           = "WGVM_MAC"             // this VM's NIC
	OuterEnv         = "WGVM_OUTER"           // this VM's NIC address, a prefix
	InnerEnv         = "WGVM_INNER"           // this VM's wg0 address, a prefix
	WGPortEnv        = "WGVM_WG_PORT"         // both devices' listen port
	PrivateKeyEnv    = "WGVM_PRIVATE_KEY"     // this VM's private key, base64
	PeerPublicKeyEnv = "WGVM_PEER_PUBLIC_KEY" // the other VM's public key
	PeerOuterEnv     = "WGVM_PEER_OUTER"      // the other VM's NIC address
	PeerInnerEnv     = "WGVM_PEER_INNER"      // the other VM's wg0 address
	TransferBytesEnv = "WGVM_TRANSFER_BYTES"  // bytes sent each way
	Outer6Env        = "WGVM_OUTER6"          // this VM's NIC IPv6 address, a prefix
	Inner6Env        = "WGVM_INNER6"          // this VM's wg0 IPv6 address, a prefix
	PeerOuter6Env    = "WGVM_PEER_OUTER6"     // the other VM's NIC IPv6 address
	PeerInner6Env    = "WGVM_PEER_INNER6"     // the other VM's wg0 IPv6 address
	PresharedKeyEnv  = "WGVM_PRESHARED_KEY"   // both devices' preshared key

	RoleOurs     = "ours"     // loads our module, initiates
	RoleUpstream = "upstream" // loads the kernel's own
)
