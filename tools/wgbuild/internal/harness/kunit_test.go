package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wgkit/wgkit/tools/wgbuild/configs"
)

func TestKUnitFragment(t *testing.T) {
	const (
		section = `__used __section(".kunit_test_suites") = { __VA_ARGS__ }`
		live    = "\tcase MODULE_STATE_LIVE:\n\t\tkunit_module_init(mod);\n\t\tbreak;\n"
		coming  = "\tcase MODULE_STATE_LIVE:\n\t\tbreak;\n\tcase MODULE_STATE_COMING:\n\t\tkunit_module_init(mod);\n"
	)
	kunit := configs.Fragment{Name: "minimal.config", Data: []byte("CONFIG_NET=y\nCONFIG_KUNIT=y\n")}
	off := configs.Fragment{Name: "mine.config", Data: []byte("# CONFIG_KUNIT is not set\nCONFIG_KUNIT=n\n")}
	tests := []struct {
		name         string
		testH, testC string
		frags        []configs.Fragment
		want         bool
		why          string
	}{
		{"KUnit and a new tree", section, live, []configs.Fragment{kunit}, true, ""},
		{"a later fragment turns KUnit off", section, live, []configs.Fragment{kunit, off}, false, "does not build KUnit in"},
		{"no KUnit in the config", section, live, []configs.Fragment{{Name: "x", Data: []byte("CONFIG_NET=y\n")}}, false, "does not build KUnit in"},
		{"5.6", "late_initcall(kunit_test_suites_init);", "", []configs.Fragment{kunit}, false, "before 6.0"},
		{"6.1: suites before the module's init", section, coming, []configs.Fragment{kunit}, false, "before the module's init function"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := t.TempDir()
			if err := os.MkdirAll(filepath.Join(tree, "include/kunit"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tree, "include/kunit/test.h"), []byte(tt.testH), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(tree, "lib/kunit"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tree, "lib/kunit/test.c"), []byte(tt.testC), 0o644); err != nil {
				t.Fatal(err)
			}
			f, why := kunitFragment(tree, tt.frags)
			if (f != nil) != tt.want || !strings.Contains(why, tt.why) {
				t.Fatalf("kunitFragment = %v, %q; want fragment %v, %q", f, why, tt.want, tt.why)
			}
			if f != nil && !strings.Contains(string(f.Data), "CONFIG_WIREGUARD_KUNIT_TEST=y\n") {
				t.Errorf("the fragment is %q", f.Data)
			}
		})
	}
}
