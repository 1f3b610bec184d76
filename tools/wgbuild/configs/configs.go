// Package configs holds the kernel configuration fragments that wgbuild
// applies on top of `make ARCH=x86_64 tinyconfig` when it builds a guest
// kernel from source: minimal.config (what the guest suite and the driver
// need) and debug.config (the kernel's bug detectors, on top of minimal).
package configs

import (
	"embed"
	"fmt"
	"sort"
	"strings"
)

//go:embed *.config
var files embed.FS

// Fragment is one named configuration fragment.
type Fragment struct {
	// Name says where the fragment came from: "minimal.config", a path.
	Name string
	Data []byte
}

// Named configurations: each is a list of fragments applied in order.
var named = map[string][]string{
	"minimal": {"minimal.config"},
	"debug":   {"minimal.config", "debug.config"},
}

// Names lists the named configurations.
func Names() []string {
	n := make([]string, 0, len(named))
	for k := range named {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Get returns the fragments of a named configuration.
func Get(name string) ([]Fragment, error) {
	list, ok := named[name]
	if !ok {
		return nil, fmt.Errorf("unknown config %q: want %s, or add your own options with --config-fragment FILE", name, strings.Join(Names(), " or "))
	}
	var out []Fragment
	for _, f := range list {
		b, err := files.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, Fragment{Name: f, Data: b})
	}
	return out, nil
}
