package initramfs

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// goList is what go list -deps -json prints for a few packages.
const goList = `{
	"Dir": "/usr/local/go/src/unsafe",
	"ImportPath": "unsafe",
	"Standard": true
}
{
	"Dir": "/mod/github.com/u-root/u-root@v0.16.0/pkg/ls",
	"ImportPath": "github.com/u-root/u-root/pkg/ls",
	"Module": {"Path": "github.com/u-root/u-root", "Version": "v0.16.0", "Indirect": true, "Sum": "h1:uroot=", "GoModSum": "h1:urootmod="}
}
{
	"Dir": "/mod/github.com/u-root/u-root@v0.16.0/cmds/core/ls",
	"ImportPath": "github.com/u-root/u-root/cmds/core/ls",
	"Module": {"Path": "github.com/u-root/u-root", "Version": "v0.16.0", "Sum": "h1:uroot="}
}
{
	"Dir": "/repo/vmtest/cmd/wgvm-init",
	"ImportPath": "github.com/wgkit/wgkit/vmtest/cmd/wgvm-init",
	"Module": {"Path": "github.com/wgkit/wgkit", "Main": true, "GoVersion": "1.26.0"}
}
`

const goListM = `{"Path": "github.com/u-root/mkuimage", "Version": "v0.1.0", "Sum": "h1:mkuimage="}
{"Path": "github.com/u-root/gobusybox/src", "Version": "v0.2.0", "Sum": "h1:gbb="}
`

const goSum = `golang.org/x/sys v0.50.0 h1:sys=
golang.org/x/sys v0.50.0/go.mod h1:sysmod=
example.com/fork v1.1.0/go.mod h1:forkmod=
example.com/fork v1.1.0 h1:fork=
`

func TestModuleInputs(t *testing.T) {
	base := map[string]string{
		"mod:github.com/u-root/u-root":            "v0.16.0 h1:uroot=",
		"mod:github.com/wgkit/wgkit":              "main module, go 1.26.0",
		"builder:github.com/u-root/mkuimage":      "v0.1.0 h1:mkuimage=",
		"builder:github.com/u-root/gobusybox/src": "v0.2.0 h1:gbb=",
	}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	pkg := func(dir, module string) string {
		return `{"Dir": "` + dir + `", "ImportPath": "x", "Module": ` + module + "}\n"
	}
	tests := []struct {
		name     string
		list     string
		gosum    string
		want     map[string]string
		wantDirs []string
	}{
		{
			name: "standard packages are left out, modules are in once",
			list: goList, want: base, wantDirs: []string{"/repo/vmtest/cmd/wgvm-init"},
		},
		{
			name:  "go.sum is the fallback for a hash",
			list:  goList + pkg("/mod/sys/unix", `{"Path": "golang.org/x/sys", "Version": "v0.50.0"}`),
			gosum: goSum,
			want:  with("mod:golang.org/x/sys", "v0.50.0 h1:sys="), wantDirs: []string{"/repo/vmtest/cmd/wgvm-init"},
		},
		{
			name: "no hash anywhere: the sources",
			list: goList + pkg("/vendor/sys/unix", `{"Path": "golang.org/x/sys", "Version": "v0.50.0"}`),
			want: with("mod:golang.org/x/sys", "v0.50.0"), wantDirs: []string{"/repo/vmtest/cmd/wgvm-init", "/vendor/sys/unix"},
		},
		{
			name: "replaced by a directory: the sources",
			list: goList + pkg("/src/sys/unix", `{"Path": "golang.org/x/sys", "Version": "v0.50.0", "Sum": "h1:sys=", "Replace": {"Path": "../sys", "Dir": "/src/sys"}}`),
			want: with("mod:golang.org/x/sys", "v0.50.0 => ../sys"), wantDirs: []string{"/repo/vmtest/cmd/wgvm-init", "/src/sys/unix"},
		},
		{
			name:  "replaced by another module",
			list:  goList + pkg("/mod/fork/unix", `{"Path": "golang.org/x/sys", "Version": "v0.50.0", "Replace": {"Path": "example.com/fork", "Version": "v1.1.0"}}`),
			gosum: goSum,
			want:  with("mod:golang.org/x/sys", "v0.50.0 => example.com/fork v1.1.0 h1:fork="), wantDirs: []string{"/repo/vmtest/cmd/wgvm-init"},
		},
		{
			name: "outside any module: the sources",
			list: goList + `{"Dir": "/gopath/src/x", "ImportPath": "x"}`,
			want: base, wantDirs: []string{"/repo/vmtest/cmd/wgvm-init", "/gopath/src/x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, dirs, err := moduleInputs([]byte(tt.list), []byte(goListM), []byte(tt.gosum))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range in {
				got[k] = string(v)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("inputs = %q,\nwant %q", got, tt.want)
			}
			if !slices.Equal(dirs, tt.wantDirs) {
				t.Errorf("source dirs = %q, want %q", dirs, tt.wantDirs)
			}
		})
	}
	if _, _, err := moduleInputs([]byte(goList+"{"), nil, nil); err == nil {
		t.Error("truncated go list output was accepted")
	}
}

// TestModuleInputsOtherModules: go.sum lines of modules the base does not
// use do not count.
func TestModuleInputsOtherModules(t *testing.T) {
	list := goList + `{"Dir": "/mod/sys/unix", "ImportPath": "golang.org/x/sys/unix", "Module": {"Path": "golang.org/x/sys", "Version": "v0.50.0"}}`
	a, _, err := moduleInputs([]byte(list), []byte(goListM), []byte(goSum))
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(goSum, "h1:fork=", "h1:fork2=", 1) + "github.com/stretchr/testify v1.7.1 h1:testify=\n"
	b, _, err := moduleInputs([]byte(list), []byte(goListM), []byte(other))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) }) {
		t.Errorf("inputs changed with go.sum lines of other modules:\n%q\n%q", a, b)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func keyInputs(t *testing.T, dir string) map[string]string {
	t.Helper()
	in, err := Base{RepoDir: dir}.KeyInputs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range in {
		out[k] = string(v)
	}
	return out
}

func TestKeyInputs(t *testing.T) {
	root := repoRoot(t)
	a, b := keyInputs(t, root), keyInputs(t, root)
	if !maps.Equal(a, b) {
		t.Errorf("two calls differ:\n%q\n%q", a, b)
	}
	// One entry per module the base's packages come from, and no other.
	out, err := goOutput(context.Background(), root, append([]string{"list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}"}, Base{}.packages()...)...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, m := range strings.Fields(string(out)) {
		want["mod:"+m] = true
	}
	for _, m := range []string{"mod:github.com/u-root/u-root", "mod:golang.org/x/sys", "mod:github.com/wgkit/wgkit"} {
		if !want[m] {
			t.Fatalf("go list has no %s", m)
		}
	}
	for k, v := range a {
		if strings.HasPrefix(k, "mod:") {
			if !want[k] {
				t.Errorf("%s = %q: the base does not use that module", k, v)
			}
			delete(want, k)
		}
	}
	for k := range want {
		t.Errorf("no input %s", k)
	}
	for _, k := range []string{"go", "packages", "builder:github.com/u-root/mkuimage", "builder:github.com/u-root/gobusybox/src", "src:vmtest/cmd/wgvm-init/main.go"} {
		if a[k] == "" {
			t.Errorf("no input %s", k)
		}
	}
	if !strings.Contains(a["mod:github.com/u-root/u-root"], " h1:") {
		t.Errorf("mod:github.com/u-root/u-root = %q, want a version and its hash", a["mod:github.com/u-root/u-root"])
	}
}

// TestKeyInputsModuleChanges works on a copy of the module with only what
// the base is built from: go.mod and go.sum changes for modules the base
// does not use leave the inputs alone; replacing one it uses does not.
func TestKeyInputsModuleChanges(t *testing.T) {
	root := repoRoot(t)
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=readonly")
	orig := keyInputs(t, root)
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for k := range orig {
		if f, ok := strings.CutPrefix(k, "src:"); ok {
			write(f, read(f))
		}
	}
	gomod, gosum := read("go.mod"), read("go.sum")
	write("go.mod", gomod)
	write("go.sum", gosum)
	a := keyInputs(t, dir)
	if !maps.Equal(a, orig) {
		t.Fatalf("the copy's inputs differ from the repository's:\n%q\n%q", a, orig)
	}

	// go-qemu and testify are host and test modules.
	const qemu = "github.com/digitalocean/go-qemu"
	if _, ok := a["mod:"+qemu]; ok || !strings.Contains(gomod, qemu) {
		t.Fatalf("the test expects %s in go.mod, not in the base", qemu)
	}
	write("stub/go.mod", "module "+qemu+"\n")
	write("go.mod", gomod+"\nreplace "+qemu+" => ./stub\n")
	var sum []string
	for _, l := range strings.Split(gosum, "\n") {
		if f := strings.Fields(l); len(f) == 3 && (f[0] == qemu || f[0] == "github.com/stretchr/testify") {
			l = f[0] + " " + f[1] + " h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
		}
		sum = append(sum, l)
	}
	write("go.sum", strings.Join(sum, "\n")+"example.com/unused v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	if b := keyInputs(t, dir); !maps.Equal(a, b) {
		t.Errorf("changes to modules the base does not use changed the inputs:\n%q\n%q", a, b)
	}

	// Replacing go-humanize, which ls uses, by a copy of it.
	const humanize = "github.com/dustin/go-humanize"
	v, _, _ := strings.Cut(a["mod:"+humanize], " ")
	modDir, err := goOutput(context.Background(), root, "list", "-m", "-f", "{{.Dir}}", humanize)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(string(modDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && (strings.HasSuffix(n, ".go") || n == "go.mod") {
			b, err := os.ReadFile(filepath.Join(string(modDir), n))
			if err != nil {
				t.Fatal(err)
			}
			write(filepath.Join("humanize", n), string(b))
		}
	}
	write("go.mod", gomod+"\nreplace "+humanize+" => ./humanize\n")
	write("go.sum", gosum)
	c := keyInputs(t, dir)
	if got, want := c["mod:"+humanize], v+" => ./humanize"; got != want {
		t.Errorf("mod:%s = %q, want %q", humanize, got, want)
	}
	if c["src:humanize/humanize.go"] == "" {
		t.Errorf("the replacement's sources are not inputs: %q", slices.Sorted(maps.Keys(c)))
	}
}
