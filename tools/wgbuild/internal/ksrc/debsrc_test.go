package ksrc

import "testing"

func TestParseSources(t *testing.T) {
	// apt-cache showsrc's output, shortened: two versions, one of them
	// without a .dsc checksum (left out), Files and Checksums-Sha1 not
	// taken for the .dsc's SHA-256.
	out := []byte(`Package: sparse
Binary: sparse, sparse-test-inspect
Version: 0.6.5~rc1-2
Files:
 0123 1843 sparse_0.6.5~rc1-2.dsc
Checksums-Sha1:
 abcd 1843 sparse_0.6.5~rc1-2.dsc
Checksums-Sha256:
 7E1A0D7F6B 1843 sparse_0.6.5~rc1-2.dsc
 99aa 235914 sparse_0.6.5~rc1.orig.tar.gz
Vcs-Git: https://salsa.debian.org/debian/sparse.git

Package: sparse
Version: 0.6.4-4
Checksums-Sha256:
 55bb 221000 sparse_0.6.4.orig.tar.xz

`)
	ps := ParseSources(out)
	if len(ps) != 1 {
		t.Fatalf("got %d packages, want 1: %+v", len(ps), ps)
	}
	p := ps[0]
	if p.Name != "sparse" || p.Version != "0.6.5~rc1-2" || p.SHA256 != "7e1a0d7f6b" || p.Filename != "sparse_0.6.5~rc1-2.dsc" {
		t.Errorf("got %+v", p)
	}
	if ps := ParseSources([]byte("garbage\n\n")); len(ps) != 0 {
		t.Errorf("garbage: got %+v", ps)
	}
}
