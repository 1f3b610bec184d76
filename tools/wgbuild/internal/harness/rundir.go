package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

// runsKept is how many run directories the cache keeps; runs younger than
// RunsMinAge are never pruned, as another wgbuild may still be writing them.
const (
	runsKept   = 10
	RunsMinAge = 2 * time.Hour
)

// newRunDir makes <cache>/runs/<time>-<pid> and prunes old runs.
func newRunDir(c *cache.Cache) (string, error) {
	runs := filepath.Join(c.Dir, "runs")
	if err := os.MkdirAll(runs, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s-%d", time.Now().Format("20060102-150405"), os.Getpid())
	dir := filepath.Join(runs, name)
	for i := 2; ; i++ {
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			break
		}
		if !os.IsExist(err) {
			return "", err
		}
		// A second plan of the same process in the same second
		// (matrix, conformance).
		dir = filepath.Join(runs, fmt.Sprintf("%s-%d", name, i))
	}
	pruneRuns(runs, filepath.Base(dir), time.Now())
	return dir, nil
}

// pruneRuns removes the oldest run directories beyond runsKept, sparing
// the current one and any younger than RunsMinAge.
func pruneRuns(runs, current string, now time.Time) {
	ents, _ := os.ReadDir(runs)
	for i := 0; i < len(ents)-runsKept; i++ {
		old := ents[i]
		if old.Name() == current {
			continue
		}
		if fi, err := old.Info(); err != nil || now.Sub(fi.ModTime()) < RunsMinAge {
			continue
		}
		_ = os.RemoveAll(filepath.Join(runs, old.Name()))
	}
}

// LogFiles are the files of a VM's directory worth keeping.
var LogFiles = []string{"console.log", "tests.log", "qemu.log", "manifest.json"}

// KeepLogs copies a VM's logs from dir to dst.
func KeepLogs(dir, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, name := range LogFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cleanVM drops a VM's large files once it passed; the logs stay.
func cleanVM(dir string) {
	_ = os.Remove(filepath.Join(dir, "initrd.cpio"))
}
