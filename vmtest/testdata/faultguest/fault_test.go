// Package faultguest is a guest suite for the harness's fault tests
// (vmtest/faults_test.go): each test is one way a guest can go wrong. It
// lives under testdata so that go test ./... and go vet ./... leave it
// alone; wgbuild vmtest --guest-pkg ./vmtest/testdata/faultguest builds it.
//
// Outside the VM (WGVM_GUEST unset: the host listing the tests, or someone
// running go test here by hand) every test skips: TestPanic would panic the
// host's kernel.
package faultguest

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func inGuest(t *testing.T) {
	t.Helper()
	if os.Getenv("WGVM_GUEST") != "1" {
		t.Skip("a fault for the VM harness: runs only inside wgbuild vmtest's guest")
	}
}

// TestPass passes.
func TestPass(t *testing.T) {
	inGuest(t)
	t.Log("fault guest: passing")
}

// TestHang blocks forever; the binary's -test.timeout ends it.
func TestHang(t *testing.T) {
	inGuest(t)
	t.Log("fault guest: hanging")
	for {
		time.Sleep(time.Hour)
	}
}

// TestHangStopped stops the test binary with SIGSTOP, a hang that
// -test.timeout cannot end (no goroutine of the binary runs again): only
// the guest init's kill or the host's VM timeout can.
func TestHangStopped(t *testing.T) {
	inGuest(t)
	t.Log("fault guest: stopping the test binary")
	if err := syscall.Kill(os.Getpid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// TestPanic panics the guest kernel through sysrq.
func TestPanic(t *testing.T) {
	inGuest(t)
	if b, err := os.ReadFile("/proc/sys/kernel/sysrq"); err != nil || string(b) != "1\n" {
		if err := os.WriteFile("/proc/sys/kernel/sysrq", []byte("1"), 0); err != nil {
			t.Logf("enabling sysrq: %v", err)
		}
	}
	t.Log("fault guest: panicking the kernel")
	if err := os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0); err != nil {
		t.Fatalf("sysrq-trigger: %v", err)
	}
	time.Sleep(time.Minute)
	t.Fatal("the kernel did not panic")
}
