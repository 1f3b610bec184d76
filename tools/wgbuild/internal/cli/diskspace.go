package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"golang.org/x/sys/unix"
)

// lowSpace is the free space on the cache's file system below which a
// failure is put down to a full disk: a build that ran out of space fails
// with the compiler's or the linker's words (which the first-error scan of
// a build log may not pick), or with just an exit status.
const lowSpace = 64 << 20

// explainNoSpace adds to err, when the file system of the cache directory
// dir is (nearly) full, that this is the likely cause and what to do.
func explainNoSpace(err error, dir string) error {
	if err == nil || dir == "" || errors.Is(err, context.Canceled) {
		return err
	}
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return err
	}
	free := int64(st.Bavail) * st.Bsize
	if free >= lowSpace {
		return err
	}
	return &noSpaceError{err: err, dir: dir, free: free}
}

type noSpaceError struct {
	err  error
	dir  string
	free int64
}

func (e *noSpaceError) Error() string {
	return fmt.Sprintf("%v\nno space left on device, most likely: the cache's file system has %s free (cache %s); free some space (wgbuild cache prune; --kind failed --all removes the kept output of failed builds) or point --cache or WGKIT_CACHE at a larger disk",
		e.err, humanSize(e.free), e.dir)
}

func (e *noSpaceError) Unwrap() error { return e.err }

// cacheDir is the cache directory the flags select; "" if none can be
// found.
func (f *commonFlags) cacheDir() string {
	if f.cache != "" {
		return f.cache
	}
	d, err := cache.DefaultDir()
	if err != nil {
		return ""
	}
	return d
}
