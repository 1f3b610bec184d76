package ksrc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ChecksumError is a download whose SHA-256 is not the published one.
type ChecksumError struct {
	Name, URL string
	Want, Got string // hex
	Sums      string // where Want came from
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%s from %s: SHA-256 is %s, but %s says %s: the file is corrupt or was tampered with, "+
		"and nothing was cached (run again, or use another --mirror)", e.Name, e.URL, e.Got, e.Sums, e.Want)
}

// ParseSHA256Sums parses a sha256sum-style list ("<hex>  <name>" lines),
// clear-signed like kernel.org's sha256sums.asc or not, into name → hex.
// The PGP signature is not checked: the sums come over HTTPS from the same
// place as the tarball, and guard against a corrupt download.
func ParseSHA256Sums(text string) (map[string]string, error) {
	text = strings.ReplaceAll(text, "\r", "")
	if _, body, ok := strings.Cut(text, "-----BEGIN PGP SIGNED MESSAGE-----\n"); ok {
		// Armor headers (Hash: SHA256) end at the first empty line.
		if _, rest, ok := strings.Cut(body, "\n\n"); ok {
			body = rest
		}
		body, _, _ = strings.Cut(body, "-----BEGIN PGP SIGNATURE-----")
		text = body
	}
	sums := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimPrefix(line, "- ") // dash-escaped
		f := strings.Fields(line)
		if len(f) != 2 || !isHexSHA256(f[0]) {
			continue
		}
		sums[strings.TrimPrefix(f[1], "*")] = strings.ToLower(f[0])
	}
	if len(sums) == 0 {
		return nil, errors.New("no SHA-256 sums in it (want lines of 64 hex digits and a file name)")
	}
	return sums, nil
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

var releaseName = regexp.MustCompile(`^linux-(\d+\.\d+(?:\.\d+)?)\.tar\.xz$`)

// pickRelease returns the tarball that answers want among those sums
// lists: the exact release, or the newest of the series.
func pickRelease(sums map[string]string, want Version) (name, sum string, err error) {
	best := Version{Patch: -1}
	var have []string
	for n := range sums {
		m := releaseName.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		v, err := ParseVersion(m[1])
		if err != nil || v.Series() != want.Series() {
			continue
		}
		v.Patch = max(v.Patch, 0) // linux-6.1.tar.xz is 6.1.0
		have = append(have, v.String())
		if want.Exact() && v.Patch == want.Patch || !want.Exact() && v.Patch > best.Patch {
			best, name = v, n
		}
	}
	if name == "" {
		if len(have) == 0 {
			return "", "", fmt.Errorf("it lists no linux-%s release", want.Series())
		}
		return "", "", fmt.Errorf("it has no entry for linux-%s.tar.xz; its %s releases go up to %s.%d",
			want, want.Series(), want.Series(), maxPatch(have))
	}
	return name, sums[name], nil
}

func maxPatch(vs []string) int {
	m := 0
	for _, s := range vs {
		if v, err := ParseVersion(s); err == nil && v.Patch > m {
			m = v.Patch
		}
	}
	return m
}

// kernelOrg fetches a release tarball from f.Mirror, checked against the
// published sums.
func (f *fetcher) kernelOrg(ctx context.Context, want Version) (*Tree, error) {
	refName := "kernel.org-" + want.String()
	if !f.Update {
		if t, ok := f.fromRef(refName); ok && want.Matches(t.Version) {
			f.progress("kernel %s: cached %s", t.Version, t.Origin)
			return t, nil
		}
	}
	dirURL := fmt.Sprintf("%s/v%d.x", f.Mirror, want.Major)
	sumsURL := f.SHA256Sums
	if sumsURL == "" {
		sumsURL = dirURL + "/sha256sums.asc"
	}
	f.progress("kernel %s: kernel.org release tarball; sums from %s", want, sumsURL)
	sums, err := f.readAll(ctx, sumsURL)
	if err != nil {
		return nil, &UnknownVersionError{Version: want, Reason: fmt.Errorf("kernel.org's sums could not be read: %w", err)}
	}
	list, err := ParseSHA256Sums(string(sums))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sumsURL, err)
	}
	name, sum, err := pickRelease(list, want)
	if err != nil {
		return nil, &UnknownVersionError{Version: want, Reason: fmt.Errorf("%s: %w", sumsURL, err)}
	}
	tarURL := dirURL + "/" + name
	origin := "kernel.org " + name
	key := tarballKey(sum)
	t, ok := f.cached(key)
	if ok {
		f.progress("%s: already unpacked in the cache", name)
	} else {
		tmp, err := f.Cache.TempDir("download")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		file := filepath.Join(tmp, name)
		f.progress("downloading %s", tarURL)
		start := time.Now()
		got, size, err := f.download(ctx, tarURL, file)
		if err != nil {
			return nil, fmt.Errorf("downloading %s: %w (nothing was cached)", tarURL, err)
		}
		if got != sum {
			return nil, &ChecksumError{Name: name, URL: tarURL, Want: sum, Got: got, Sums: sumsURL}
		}
		f.progress("downloaded %s in %.1fs, SHA-256 matches %s", megabytes(size), time.Since(start).Seconds(), filepath.Base(sumsURL))
		f.progress("unpacking %s", name)
		start = time.Now()
		t, err = f.install(ctx, key, func(dir string) error {
			return untarFile(ctx, file, dir)
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if !t.Hit {
			f.progress("unpacked in %.1fs", time.Since(start).Seconds())
		}
	}
	t.Origin, t.SHA256 = origin, sum
	if !want.Matches(t.Version) {
		return nil, fmt.Errorf("%s unpacked to kernel %s, not %s", origin, t.Version, want)
	}
	if err := f.writeRef(refName, t); err != nil {
		return nil, err
	}
	return t, nil
}

// open opens an http(s):// or file:// URL, or a local path.
func (f *fetcher) open(ctx context.Context, u string) (io.ReadCloser, error) {
	if !strings.Contains(u, "://") {
		return os.Open(u)
	}
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	switch pu.Scheme {
	case "file":
		return os.Open(pu.Path)
	case "http", "https":
	default:
		return nil, fmt.Errorf("%s: only http, https and file URLs are supported", u)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return resp.Body, nil
}

func (f *fetcher) readAll(ctx context.Context, u string) ([]byte, error) {
	r, err := f.open(ctx, u)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, 16<<20))
}

// download copies u to file and returns the SHA-256 of what it wrote.
func (f *fetcher) download(ctx context.Context, u, file string) (sum string, size int64, err error) {
	r, err := f.open(ctx, u)
	if err != nil {
		return "", 0, err
	}
	defer r.Close()
	out, err := os.Create(file)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(out, h), r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", size, err
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

func megabytes(n int64) string {
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}
