# Short targets that call the Go tools; the logic lives in tools/wgbuild.
# `make help` lists them.

GO      ?= go
HEADERS ?= auto
# KERNEL=5.6|5.10|6.1|6.12|7.2|7.3|X.Y.Z builds that kernel from source and
# boots it instead of the installed distribution kernel; CONFIG=minimal|debug;
# IN_TREE=1 builds the driver inside the kernel tree.
KERNEL  ?=
CONFIG  ?= minimal
IN_TREE ?=
# Kernel tarballs for series Debian does not package (5.6): wgbuild reads
# $WGKIT_KERNEL_SOURCES; by default the project's shared folder, if present.
WGKIT_KERNEL_SOURCES ?= $(firstword $(wildcard $(CURDIR)/../shared/kernels /work/shared/kernels))
export WGKIT_KERNEL_SOURCES
KFLAGS  := $(if $(KERNEL),--kernel $(KERNEL) --config $(CONFIG) $(if $(IN_TREE),--in-tree),--headers $(HEADERS))
# Flags for wgbuild matrix, e.g. MATRIX_FLAGS='--in-tree'
MATRIX_FLAGS ?=
# Extra flags for wgbuild vmtest, e.g. make vmtest VMTEST_FLAGS='--run TestHandshake -v'
VMTEST_FLAGS ?=
# Extra flags for wgbuild conformance, e.g. CONFORMANCE_FLAGS='--module ours -v'
CONFORMANCE_FLAGS ?=
# Extra flags for wgbuild interop, e.g. make interop INTEROP_FLAGS='--bytes 52428800 -v'
INTEROP_FLAGS ?=
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
ACTIONLINT  ?= github.com/rhysd/actionlint/cmd/actionlint@v1.7.12

# wgbuild is built once per invocation (incrementally: the Go build cache
# makes it near-free) and run directly, so its exit codes reach the caller:
# 0 pass, 1 test failure or splat, 2 usage, 3 could not run.
WGBUILD := .bin/wgbuild

.PHONY: patches patches-check
.PHONY: stress stress-short
.PHONY: bench bench-quick
.PHONY: help build vmtest vmtest-full vmtest-long vmtest-faults vmtest-upstream vmtest-kernels conformance interop matrix unit check check-clang kunit test deps lint clean wgbuild
.PHONY: dkms-install dkms-remove dkms-test

help:
	@echo 'make build            build the module against the installed distribution kernel headers'
	@echo 'make vmtest           build, boot the distribution kernel in QEMU, run the guest suite'
	@echo 'make vmtest-full      the same suite at make test'\''s sizes (16 MiB transfers, 20000 fuzzed datagrams, 10 s of churn)'
	@echo 'make vmtest-upstream  the same against the kernel'\''s own wireguard.ko (the reference)'
	@echo 'make vmtest-long      the long tests: traffic across the 120 s rekey (about 3 minutes)'
	@echo 'make vmtest-faults    the harness under faults (hang, panic, no boot, QEMU killed, Ctrl-C, full or damaged cache; about 5 minutes)'
	@echo 'make conformance      the kernel'\''s own WireGuard selftest (netns.sh, unmodified) on ours, then on upstream as the control'
	@echo 'make matrix           build 5.6, 5.10, 6.1, 6.12, 7.2 and 7.3 (and 7.3 debug) from source; vmtest and netns.sh on each; print a table'
	@echo 'make stress           the debug kernel: 10 min of churn under traffic, rmmod with devices up, the fuzzers (then 1M datagrams on the distro kernel)'
	@echo 'make stress-short     the same for a minute, with small fuzz counts (part of make test)'
	@echo 'make bench            ours against upstream (and an A/A run of upstream), wireguard-go and a bare veth, in one boot: a table, bench-out/bench.json and bench.svg (about 10 minutes)'
	@echo 'make bench-quick      the same, one short round (about 2 minutes; part of make test, which asserts nothing about speed)'
	@echo 'make interop          two VMs, ours and the kernel'\''s own wireguard.ko: handshake, 10 MiB each way'
	@echo 'make unit             host-side go test'
	@echo 'make check            checkpatch --strict, kernel-doc, a W=1 build and sparse on kernel/'
	@echo 'make check-clang      the same W=1 check with clang, against a 7.3 kernel built with clang (needs clang-19 lld-19 llvm-19)'
	@echo 'make kunit            the driver'\''s KUnit suites with the kernel'\''s kunit.py (User Mode Linux, a 7.3 tree; KUNIT_KERNEL=...), then sparse on the driver'
	@echo 'make vmtest-kernels   build 5.6 (driver out of tree) and 7.3 (in tree) from source, W=1 check, vmtest each'
	@echo 'make test             lint, unit, check, kunit, vmtest, vmtest-faults, conformance, interop, dkms-test, vmtest-kernels, stress-short, bench-quick (what CI runs)'
	@echo 'make patches          the driver as a net-next series in patches/out/vN, checked patch by patch (BASE=7.3): gcc, clang and allmodconfig+sparse builds, checkpatch, kernel-doc'
	@echo 'make patches-check    check patches/out/vN again without rewriting it'
	@echo 'make deps             check host tools; install missing Debian packages as root'
	@echo 'make dkms-install     as root: install with dkms (/usr/src, updates/dkms) for every kernel with headers'
	@echo 'make dkms-remove      as root: dkms remove, and remove every file dkms-install made'
	@echo 'make dkms-test        the real dkms on private trees, then the guest suite on the DKMS-built module'
	@echo 'make lint             gofmt, go vet, staticcheck, actionlint (the CI workflow)'
	@echo 'make clean            remove the wgbuild binary and the artifact cache'
	@echo 'Variables: KERNEL=5.10|6.1|6.12 CONFIG=minimal|debug IN_TREE=1 (a kernel built from source)'
	@echo '           HEADERS=auto|DIR  VMTEST_FLAGS=...  (e.g. VMTEST_FLAGS="--run TestX -v")'

wgbuild:
	@$(GO) build -o $(WGBUILD) ./tools/wgbuild

build: wgbuild
	$(WGBUILD) build $(KFLAGS)

# make vmtest is the edit loop: every guest test, with transfers and fuzz
# counts sized for correctness. make test runs the same suite at the sizes
# below (vmtest-full).
VMTEST_FULL := --transfer-mib 16 --fuzz-packets 20000 --fuzz-messages 3000 --stress-duration 10s

vmtest: deps
	$(WGBUILD) vmtest $(KFLAGS) $(VMTEST_FLAGS)

vmtest-full: deps
	$(WGBUILD) vmtest $(KFLAGS) $(VMTEST_FULL) $(VMTEST_FLAGS)

vmtest-long: deps
	$(WGBUILD) vmtest $(KFLAGS) --long --run 'TestLong' $(VMTEST_FLAGS)

# The harness's own faults: vmtest/faults_test.go runs .bin/wgbuild vmtest
# on the distribution kernel with the fault guest suite in
# vmtest/testdata/faultguest, about a dozen VMs.
vmtest-faults: deps
	WGKIT_VMTEST_FAULTS=1 $(GO) test ./vmtest -run TestHarnessFaults -v -timeout 30m

# The reliability campaign under the debug config (KASAN, UBSAN, lockdep,
# PROVE_RCU, kmemleak, debugobjects): churn under traffic, module unload with
# devices up, and the packet and netlink fuzzers with large counts; then the
# fuzzers' full counts on the distribution kernel, where a datagram costs a
# fiftieth of what it costs under KASAN and TCG. stress-short is the version
# make test runs; both also run the tests whose failure only KASAN sees
# (KASAN_TESTS: a dump outliving its device). STRESS_FLAGS adds wgbuild
# vmtest flags (e.g. --fuzz-seed N).
STRESS_KERNEL   ?= 6.1
KASAN_TESTS     := TestDumpOutlivesDevice
STRESS_TESTS    ?= TestStress|TestFuzz|TestHandshakeJunkFlood|$(KASAN_TESTS)
STRESS_DURATION ?= 10m
STRESS_PACKETS  ?= 50000
STRESS_MESSAGES ?= 20000
STRESS_FLAGS    ?=
STRESS_DEBUG    := $(WGBUILD) vmtest --kernel $(STRESS_KERNEL) --config debug --run '$(STRESS_TESTS)'

stress: deps
	$(STRESS_DEBUG) --stress-duration $(STRESS_DURATION) --fuzz-packets $(STRESS_PACKETS) --fuzz-messages $(STRESS_MESSAGES) --timeout 3h $(STRESS_FLAGS)
	$(WGBUILD) vmtest $(KFLAGS) --run 'TestStress|TestFuzz' --stress-duration $(STRESS_DURATION) --fuzz-packets 1000000 --fuzz-messages 100000 --timeout 2h $(STRESS_FLAGS)

stress-short: deps
	$(WGBUILD) vmtest --kernel $(STRESS_KERNEL) --config debug --run 'TestStress|TestFuzz|$(KASAN_TESTS)' --stress-duration 60s --fuzz-packets 4000 --fuzz-messages 2000 $(STRESS_FLAGS)

vmtest-upstream: deps
	$(WGBUILD) vmtest $(KFLAGS) --module upstream $(VMTEST_FLAGS)

conformance: deps
	$(WGBUILD) conformance $(KFLAGS) $(CONFORMANCE_FLAGS)

interop: deps
	$(WGBUILD) interop $(KFLAGS) $(INTEROP_FLAGS)

matrix: deps
	$(WGBUILD) matrix $(MATRIX_FLAGS)

unit: deps
	$(GO) test ./...

check: deps
	$(WGBUILD) check --headers $(HEADERS)

# The W=1 build of the driver with clang, against a 7.3 kernel built with
# clang (netdev's bot builds with both compilers): apt-get install clang-19
# lld-19 llvm-19 first. Not in make test: a second kernel build.
CLANG_KERNEL ?= 7.3
LLVM         ?= -19

check-clang: deps
	$(WGBUILD) check --kernel $(CLANG_KERNEL) --llvm=$(LLVM)

# The KUnit suites the kernel's way: kunit.py run in a tree with the driver
# in place (they also run at module load in vmtest on kernels with KUnit).
KUNIT_KERNEL ?= 7.3

kunit: deps
	$(WGBUILD) kunit --kernel $(KUNIT_KERNEL)

# The kernels built from source in CI: the oldest, 5.6, with the driver out
# of tree (the most compat), and the newest, 7.3, with the driver in the tree
# (the series' base). The others are in make matrix.
CI_KERNELS_OUT ?= 5.6
CI_KERNELS_IN  ?= 7.3

# Build each CI kernel from source (cached after the first time), check the
# driver with W=1 against the out-of-tree ones, run the guest suite on all.
vmtest-kernels: deps
	@set -e; for k in $(CI_KERNELS_OUT); do \
		$(WGBUILD) check --kernel $$k; \
		$(WGBUILD) vmtest --kernel $$k $(VMTEST_FLAGS); \
	done; \
	for k in $(CI_KERNELS_IN); do \
		$(WGBUILD) vmtest --kernel $$k --in-tree $(VMTEST_FLAGS); \
	done

# The benchmark: the same kernel flags as vmtest; BENCH_FLAGS e.g.
# '--rounds 5 --seconds 5' or '--peers 2000'. It asserts nothing about speed.
BENCH_FLAGS ?=

bench: deps
	$(WGBUILD) bench $(KFLAGS) $(BENCH_FLAGS)

bench-quick: deps
	$(WGBUILD) bench $(KFLAGS) --quick $(BENCH_FLAGS)

test: lint unit check kunit vmtest-full vmtest-faults conformance interop dkms-test vmtest-kernels stress-short bench-quick

# The net-next series (patches/series says how kernel/ is cut). BASE is a
# kernel version or a tree/tarball; PATCHES_FLAGS e.g. '--version 2' or
# '--author "Name <email>"'. make patches first runs the guest suite on the
# base with the driver in tree (the series' end state) for the cover
# letter's numbers; PATCHES_FLAGS=--vmtest=false skips that. Each patch is
# built three times, as netdev's bot does: the tree with gcc and W=1, the
# driver with clang (LLVM; skipped, saying what to install, without it) and
# the driver in an allmodconfig tree.
BASE           ?= 7.3
PATCHES_FLAGS  ?=

patches: deps
	$(WGBUILD) patches --base $(BASE) --llvm=$(LLVM) $(PATCHES_FLAGS)

patches-check: deps
	$(WGBUILD) patches --check-only --base $(BASE) --llvm=$(LLVM) $(PATCHES_FLAGS)

deps: wgbuild
	@$(WGBUILD) deps

# DKMS: the package needs only dkms and the kernel headers on the machine
# (apt-get install dkms linux-headers-amd64), not the whole of make deps.
# Extra flags for wgbuild dkms --test, e.g. DKMS_TEST_FLAGS='--vm=false -v'
DKMS_TEST_FLAGS ?=

dkms-install: wgbuild
	$(WGBUILD) dkms --install

dkms-remove: wgbuild
	$(WGBUILD) dkms --remove

dkms-test: deps
	$(WGBUILD) dkms --test --headers $(HEADERS) $(DKMS_TEST_FLAGS)

lint:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(ACTIONLINT) .github/workflows/*.yml

clean:
	rm -rf .bin "$${WGKIT_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/wgkit}"
