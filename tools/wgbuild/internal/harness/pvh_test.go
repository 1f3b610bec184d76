package harness

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz/lzma"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// note is one ELF note as the kernel's linker script lays them out.
func note(name string, typ uint32, desc []byte) []byte {
	pad := func(b []byte) []byte { return append(b, make([]byte, (4-len(b)%4)%4)...) }
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)+1))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = append(b, pad(append([]byte(name), 0))...)
	return append(b, pad(desc)...)
}

func TestHasNote(t *testing.T) {
	entry := []byte{0, 0x10, 0, 1}
	tests := []struct {
		name  string
		notes []byte
		want  bool
	}{
		{"PVH entry", note("Xen", xenElfnotePhys32Entry, entry), true},
		{"after other notes", append(note("GNU", 3, make([]byte, 20)), note("Xen", xenElfnotePhys32Entry, entry)...), true},
		{"other Xen notes only", append(note("Xen", 6, []byte("linux")), note("Xen", 7, []byte("2.6"))...), false},
		{"type 18 of another name", note("Linux", xenElfnotePhys32Entry, entry), false},
		{"truncated", note("Xen", xenElfnotePhys32Entry, entry)[:14], false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		if got := hasNote(tt.notes, binary.LittleEndian, "Xen", xenElfnotePhys32Entry); got != tt.want {
			t.Errorf("%s: hasNote = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// bzImage makes the parts of a bzImage that bzImagePayload reads: the
// setup (setupSects+1 sectors) with its header, then payload.
func bzImage(setupSects byte, version uint16, payload []byte) []byte {
	n := int(setupSects)
	if n == 0 {
		n = 4
	}
	b := make([]byte, (n+1)*512)
	b[0x1f1] = setupSects
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], version)
	binary.LittleEndian.PutUint32(b[0x248:], 16)
	binary.LittleEndian.PutUint32(b[0x24c:], uint32(len(payload)))
	b = append(b, make([]byte, 16)...) // the decompressor's code before the payload
	return append(b, payload...)
}

func TestBzImagePayload(t *testing.T) {
	payload := []byte("compressed vmlinux\x12\x00\x00\x00")
	tests := []struct {
		name    string
		image   []byte
		wantErr string
	}{
		{"27 setup sectors", bzImage(27, 0x20f, payload), ""},
		{"setup_sects 0 means 4", bzImage(0, 0x20f, payload), ""},
		{"protocol 2.07", bzImage(27, 0x207, payload), "2.08 or later"},
		{"not a bzImage", make([]byte, 4096), "no HdrS"},
		{"too short", []byte("MZ"), "not a bzImage"},
		{"payload past the end", bzImage(27, 0x20f, payload)[:27*512+40], "read the bzImage payload"},
	}
	for _, tt := range tests {
		got, err := bzImagePayload(bytes.NewReader(tt.image))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr == "" && !bytes.Equal(got, payload):
			t.Errorf("%s: payload %q, want %q", tt.name, got, payload)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestUnpackPayload(t *testing.T) {
	vmlinux := bytes.Repeat([]byte("an uncompressed kernel "), 1000)
	sized := func(b []byte, n int) []byte { return binary.LittleEndian.AppendUint32(bytes.Clone(b), uint32(n)) }
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(vmlinux)
	zw.Close()
	zs, _ := zstd.NewWriter(nil)
	zstdData := zs.EncodeAll(vmlinux, nil)
	var lz bytes.Buffer
	lw, err := lzma.NewWriter(&lz)
	if err != nil {
		t.Fatal(err)
	}
	lw.Write(vmlinux)
	lw.Close()
	tests := []struct {
		name    string
		payload []byte
		wantErr string
	}{
		{"gzip", gz.Bytes(), ""},
		{"zstd", sized(zstdData, len(vmlinux)), ""},
		{"lzma", sized(lz.Bytes(), len(vmlinux)), ""},
		{"zstd, wrong size appended", sized(zstdData, len(vmlinux)+1), "the image says"},
		{"lz4", sized([]byte{0x02, 0x21, 0x4c, 0x18, 1, 2, 3}, 10), "unhandled kernel compression"},
		{"damaged gzip", append(gz.Bytes()[:20:20], make([]byte, 40)...), "unpack the kernel payload"},
	}
	if xzPath, err := exec.LookPath("xz"); err == nil {
		// The kernel's own way: xz_wrap.sh's BCJ filter before LZMA2.
		cmd := exec.Command(xzPath, "--format=xz", "--check=crc32", "--x86", "--lzma2=dict=1MiB", "--stdout")
		cmd.Stdin = bytes.NewReader(vmlinux)
		xzData, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz: %v", err)
		}
		tests = append(tests, struct {
			name    string
			payload []byte
			wantErr string
		}{"xz with BCJ", sized(xzData, len(vmlinux)), ""})
	}
	for _, tt := range tests {
		out := filepath.Join(t.TempDir(), "vmlinux")
		err := unpackPayload(tt.payload, out)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, vmlinux) {
			t.Errorf("%s: unpacked %d bytes, not the kernel", tt.name, len(got))
		}
	}
	if err := unpackPayload(sized([]byte{0x89, 'L', 'Z', 'O'}, 4), filepath.Join(t.TempDir(), "v")); !errors.Is(err, errUnhandled) {
		t.Errorf("lzo: %v, want errUnhandled (the firmware boots it)", err)
	}
}

// TestPVHKernelDistro unpacks the installed kernel, as make vmtest does:
// Debian's kernels have CONFIG_PVH.
func TestPVHKernelDistro(t *testing.T) {
	images, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(images) == 0 {
		t.Skip("no /boot/vmlinuz-*")
	}
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("no xz")
	}
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, hitWanted := range []bool{false, true} {
		path, ok, hit, why, err := pvhKernel(c, images[0])
		if err != nil || !ok {
			t.Fatalf("pvhKernel(%s): ok %v (%s), %v", images[0], ok, why, err)
		}
		if hit != hitWanted {
			t.Errorf("cache hit %v, want %v", hit, hitWanted)
		}
		if !hasPVH(path) {
			t.Errorf("%s has no PVH entry", path)
		}
	}
}

// TestPVHKernelNoEntry: a bzImage whose vmlinux has no PVH note boots
// through the firmware, and the verdict is cached.
func TestPVHKernelNoEntry(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("\x7fELF not really"))
	zw.Close()
	image := filepath.Join(t.TempDir(), "bzImage")
	if err := os.WriteFile(image, bzImage(27, 0x20f, gz.Bytes()), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, ok, _, why, err := pvhKernel(c, image)
		if err != nil || ok || !strings.Contains(why, "CONFIG_PVH") {
			t.Errorf("pvhKernel: ok %v, why %q, err %v; want the firmware, for want of CONFIG_PVH", ok, why, err)
		}
	}
}

// TestPVHKernelNotBzImage: an image that is neither a bzImage nor an ELF
// kernel with a PVH entry (an ELF vmlinux without one, say) goes to QEMU
// as it is.
func TestPVHKernelNotBzImage(t *testing.T) {
	image := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(image, []byte("\x7fELF, not a bzImage"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, ok, _, why, err := pvhKernel(c, image)
	if err != nil || ok || !strings.Contains(why, "not a bzImage") {
		t.Errorf("pvhKernel: ok %v, why %q, err %v; want the image as it is, not a bzImage", ok, why, err)
	}
}
