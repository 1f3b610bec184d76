package harness

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz/lzma"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// A kernel image (bzImage) is a real-mode setup and a compressed vmlinux
// that the kernel's own decompressor unpacks at boot: under TCG that takes
// about three seconds of every boot, with SeaBIOS before it. A vmlinux
// whose ELF notes carry a PVH entry point (CONFIG_PVH, which Debian's
// kernels have) QEMU loads itself and enters directly: the kernel prints
// its first line some 0.6 s after QEMU starts instead of 3.5 s. pvhKernel
// unpacks the vmlinux once per image, as the kernel's decompressor would,
// and keeps it in the cache.

// bootKernel picks the kernel QEMU boots: the vmlinux of image for a PVH
// boot unless the plan asks for the firmware or the kernel cannot boot so.
func bootKernel(h *Host, p *Plan, image string) (string, error) {
	if p.FirmwareBoot {
		h.logf("vm: kernel %s, through the firmware (--pvh=false)", image)
		return image, nil
	}
	start := time.Now()
	path, ok, hit, why, err := pvhKernel(h.Cache, image)
	if err != nil {
		return "", err
	}
	if !ok {
		h.logf("vm: kernel %s, through the firmware: %s", image, why)
		return image, nil
	}
	if path != image {
		how := fmt.Sprintf("unpacked in %.1fs", time.Since(start).Seconds())
		if hit {
			how = "cached"
		}
		h.logf("vm: kernel %s: its vmlinux, through PVH (%s: %s)", image, how, path)
	}
	return path, nil
}

// xenElfnotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY (xen/interface/elfnote.h),
// the note that holds the PVH entry point; QEMU boots an ELF kernel that
// has it through PVH.
const xenElfnotePhys32Entry = 18

// pvhKernel returns a kernel QEMU can boot through PVH: image itself if it
// is such a vmlinux, else the vmlinux unpacked from the bzImage image, from
// the cache (kind "pvh", keyed by the image's content). why says, when ok
// is false, why the image must boot through the firmware (no PVH entry, a
// compression not handled here); err is for what went wrong on the way
// (a damaged image, the cache).
func pvhKernel(c *cache.Cache, image string) (path string, ok, hit bool, why string, err error) {
	if hasPVH(image) {
		return image, true, true, "", nil
	}
	key := cache.NewKey("pvh")
	if err := key.AddFileHash("image", image); err != nil {
		return "", false, false, "", err
	}
	dir, hit, err := c.Get("pvh", key.Sum(), func(dir string) error {
		// A kernel that cannot boot through PVH is recorded as such, with
		// the reason: not ours to judge, QEMU boots what it can.
		noPVH := func(why string) error {
			return os.WriteFile(filepath.Join(dir, "no-pvh"), []byte(why), 0o644)
		}
		f, err := os.Open(image)
		if err != nil {
			return err
		}
		defer f.Close()
		payload, err := bzImagePayload(f)
		if err != nil {
			return noPVH(err.Error())
		}
		out := filepath.Join(dir, "vmlinux")
		if err := unpackPayload(payload, out); errors.Is(err, errUnhandled) {
			return noPVH(err.Error())
		} else if err != nil {
			return err
		}
		if !hasPVH(out) {
			_ = os.Remove(out)
			return noPVH("the kernel has no PVH entry point (CONFIG_PVH is not set)")
		}
		return nil
	})
	if err != nil {
		return "", false, false, "", fmt.Errorf("unpack %s for a PVH boot: %w", image, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "no-pvh")); err == nil {
		return "", false, hit, string(b), nil
	}
	return filepath.Join(dir, "vmlinux"), true, hit, "", nil
}

// hasPVH reports whether path is an ELF kernel with a PVH entry point.
func hasPVH(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(p.Open())
		if err == nil && hasNote(notes, f.ByteOrder, "Xen", xenElfnotePhys32Entry) {
			return true
		}
	}
	return false
}

// hasNote walks ELF notes (namesz, descsz, type, name and desc each padded
// to four bytes) for one of the given name and type.
func hasNote(b []byte, bo binary.ByteOrder, name string, typ uint32) bool {
	pad := func(n uint32) int { return int((n + 3) &^ 3) }
	for len(b) >= 12 {
		namesz, descsz, t := bo.Uint32(b), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		b = b[12:]
		if pad(namesz) > len(b) {
			return false
		}
		n := string(bytes.TrimRight(b[:namesz], "\x00"))
		b = b[pad(namesz):]
		if pad(descsz) > len(b) {
			return false
		}
		b = b[pad(descsz):]
		if n == name && t == typ {
			return true
		}
	}
	return false
}

// bzImagePayload reads the compressed vmlinux out of a bzImage: the boot
// protocol's header ("HdrS", version 2.08 or later) gives the setup's
// size and the payload's offset and length after it
// (Documentation/arch/x86/boot.rst).
func bzImagePayload(r io.ReaderAt) ([]byte, error) {
	hdr := make([]byte, 0x250)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("not a bzImage: %w", err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return nil, errors.New("not a bzImage (no HdrS header)")
	}
	if v := binary.LittleEndian.Uint16(hdr[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("boot protocol %d.%02d has no payload fields (2.08 or later needed)", v>>8, v&0xff)
	}
	setup := int64(hdr[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*512 + int64(binary.LittleEndian.Uint32(hdr[0x248:]))
	n := binary.LittleEndian.Uint32(hdr[0x24c:])
	if n < 8 || n > 1<<30 {
		return nil, fmt.Errorf("bzImage payload length %d is not plausible", n)
	}
	payload := make([]byte, n)
	if _, err := r.ReadAt(payload, off); err != nil {
		return nil, fmt.Errorf("read the bzImage payload (%d bytes at %d): %w", n, off, err)
	}
	return payload, nil
}

// errUnhandled marks a payload compressed in a way unpackPayload does not
// read (LZO, LZ4): such a kernel boots through the firmware as before.
var errUnhandled = errors.New("unhandled kernel compression")

// unpackPayload decompresses a bzImage payload into out. Every method but
// gzip has the uncompressed size appended (the kernel's size_append), which
// the result must match.
func unpackPayload(p []byte, out string) error {
	var r io.Reader
	var err error
	var wait func() error // the decompressor's process, if one runs
	sized := true
	switch {
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(p)); err == nil {
			zr.Multistream(false)
			r, sized = zr, false
		}
	case bytes.HasPrefix(p, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		// The kernel's xz stream has a BCJ filter before LZMA2
		// (scripts/xz_wrap.sh), which Go's xz package does not read.
		r, wait, err = xzReader(p)
	case bytes.HasPrefix(p, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		var d *zstd.Decoder
		if d, err = zstd.NewReader(bytes.NewReader(p[:len(p)-4]), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<31)); err == nil {
			defer d.Close()
			r = d
		}
	case bytes.HasPrefix(p, []byte("BZh")):
		r = bzip2.NewReader(bytes.NewReader(p[:len(p)-4]))
	case bytes.HasPrefix(p, []byte{0x5d, 0, 0}):
		r, err = lzma.NewReader(bytes.NewReader(p[:len(p)-4]))
	default:
		return fmt.Errorf("%w (payload starts % x)", errUnhandled, p[:min(len(p), 4)])
	}
	if err != nil {
		return fmt.Errorf("kernel payload: %w", err)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if wait != nil {
		// xz exits once its output is read: all of it, even after a
		// failed write here.
		_, _ = io.Copy(io.Discard, r)
		if werr := wait(); err == nil {
			err = werr
		}
	}
	if err != nil {
		return fmt.Errorf("unpack the kernel payload: %w", err)
	}
	if want := int64(binary.LittleEndian.Uint32(p[len(p)-4:])); sized && n != want {
		return fmt.Errorf("unpacked %d bytes of kernel, the image says %d", n, want)
	}
	return nil
}

// xzReader starts xz (xz-utils) on an xz payload and returns its output
// and what waits for it; without xz the kernel boots through the firmware.
func xzReader(p []byte) (io.Reader, func() error, error) {
	xz, err := exec.LookPath("xz")
	if err != nil {
		return nil, nil, fmt.Errorf("%w: xz payload and no xz (apt-get install xz-utils)", errUnhandled)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(xz, "--decompress", "--stdout", "--single-stream")
	cmd.Stdin, cmd.Stderr = bytes.NewReader(p), &stderr
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		return nil, nil, err
	}
	return out, func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("xz --decompress: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	}, nil
}
