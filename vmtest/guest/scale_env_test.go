package guest

import (
	"os"
	"strconv"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

// timeScale multiplies the suite's waits: WGVM_TIME_SCALE, which the host
// sets for a kernel that runs the guest several times slower (the debug
// config's KASAN, lockdep and kmemleak under TCG); 1 otherwise.
var timeScale = func() float64 {
	if f, err := strconv.ParseFloat(os.Getenv(manifest.TimeScaleEnv), 64); err == nil && f >= 1 && f <= 100 {
		return f
	}
	return 1
}()

// scaled is d on this kernel.
func scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * timeScale)
}
