package dkms

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/compat"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
)

func TestReadVersion(t *testing.T) {
	tests := []struct {
		name, header, want, wantErr string
	}{
		{name: "ours", header: "#ifndef X\n#define WIREGUARD_VERSION \"0.1.0\"\n#endif\n", want: "0.1.0"},
		{name: "tabs", header: "#define\tWIREGUARD_VERSION\t\"1.2.3-rc1\"\n", want: "1.2.3-rc1"},
		{name: "missing", header: "#define OTHER \"1\"\n", wantErr: "no #define WIREGUARD_VERSION"},
		{name: "unusable", header: "#define WIREGUARD_VERSION \"1.0 beta\"\n", wantErr: "not a usable DKMS version"},
		{name: "no file", wantErr: "reading the driver's version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.header != "" {
				writeTestFile(t, filepath.Join(dir, "version.h"), tt.header)
			}
			got, err := ReadVersion(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ReadVersion = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// repoTree is the DKMS tree of the repository's driver.
func repoTree(t *testing.T) *Tree {
	t.Helper()
	tr, err := NewTree(filepath.Join("..", "..", "..", "..", "kernel"))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestTreeWrite(t *testing.T) {
	tr := repoTree(t)
	dir := filepath.Join(t.TempDir(), "src", tr.Name+"-"+tr.Version)
	if err := tr.Write(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		rel  string
		exec bool
	}{
		{"dkms.conf", false}, {MakeScriptName, true}, {CompatScriptName, true},
		{"Makefile", false}, {"main.c", false}, {"version.h", false}, {"uapi/wireguard.h", false},
	} {
		fi, err := os.Stat(filepath.Join(dir, f.rel))
		if err != nil {
			t.Errorf("%s: %v", f.rel, err)
			continue
		}
		if got := fi.Mode()&0o111 != 0; got != f.exec {
			t.Errorf("%s: mode %v, executable %v, want %v", f.rel, fi.Mode(), got, f.exec)
		}
	}
	if err := tr.Write(dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second Write: %v, want an error saying it exists", err)
	}
	// Nothing of the temporary directory is left beside it.
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Errorf("%s has %d entries, want only the tree", filepath.Dir(dir), len(ents))
	}
}

func TestTreeRefusesGeneratedNames(t *testing.T) {
	for _, name := range []string{"dkms.conf", MakeScriptName, CompatScriptName, "compat/compat.h"} {
		tr := &Tree{Name: PackageName, Version: "1", Sources: []kbuild.Source{{Rel: "Makefile"}, {Rel: name}}}
		if _, err := tr.Files(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("a source named %s: err = %v, want one naming it", name, err)
		}
	}
}

// dkms.conf as dkms reads it: sourced by bash with $action, $kernelver,
// $arch and $kernel_source_dir set.
func TestConf(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	tr := repoTree(t)
	conf, err := tr.Conf()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	confPath := filepath.Join(dir, "dkms.conf")
	writeTestFile(t, confPath, string(conf))
	full := filepath.Join(dir, "full")
	writeTestFile(t, filepath.Join(full, ".config"), strings.Join(RequiredConfig, "=m\n")+"=y\n")
	partial := filepath.Join(dir, "partial")
	writeTestFile(t, filepath.Join(partial, ".config"), "CONFIG_NET_UDP_TUNNEL=m\n# CONFIG_DST_CACHE is not set\n")
	tests := []struct {
		name, action, kernel, arch, kdir string
		why                              string // "" for no message
	}{
		{name: "supported", action: "build", kernel: "6.1.0-56-amd64", arch: "x86_64", kdir: full},
		{name: "too old", action: "build", kernel: "4.19.0-27-amd64", arch: "x86_64", kdir: full, why: "this driver supports " + Kernels.String()},
		{name: "too new", action: "autoinstall", kernel: "7.4.0-1-amd64", arch: "x86_64", kdir: full, why: "this driver supports " + Kernels.String()},
		{name: "arch", action: "install", kernel: "6.1.0-56-arm64", arch: "aarch64", kdir: full, why: "x86_64 only, not aarch64"},
		{name: "config", action: "build", kernel: "6.1.0-56-amd64", arch: "x86_64", kdir: partial, why: "CONFIG_DST_CACHE is not set in its .config"},
		{name: "no .config", action: "build", kernel: "6.1.0-56-amd64", arch: "x86_64", kdir: filepath.Join(dir, "none")},
		{name: "status says nothing", action: "status", kernel: "4.19.0-27-amd64", arch: "x86_64", kdir: full},
		{name: "add says nothing", action: "add", kernel: "4.19.0-27-amd64", arch: "x86_64", kdir: full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("bash", "-c", `. "$1" && printf '%s|' "$PACKAGE_NAME" "$PACKAGE_VERSION" "${BUILT_MODULE_NAME[0]}" "${DEST_MODULE_LOCATION[0]}" "$AUTOINSTALL" "${MAKE[0]}" "${wgkit_why-unset}"`, "bash", confPath)
			cmd.Env = append(os.Environ(), "action="+tt.action, "kernelver="+tt.kernel, "arch="+tt.arch, "kernel_source_dir="+tt.kdir)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("sourcing dkms.conf: %v: %s", err, stderr.String())
			}
			want := strings.Join([]string{PackageName, tr.Version, ModuleName, DestModuleLocation, "yes",
				"sh ./" + MakeScriptName + " '" + tt.kernel + "' '" + tt.kdir + "'", "unset"}, "|") + "|"
			if string(out) != want {
				t.Errorf("variables: %q, want %q", out, want)
			}
			msg := stderr.String()
			if tt.why == "" {
				if msg != "" {
					t.Errorf("stderr %q, want nothing", msg)
				}
				return
			}
			if !strings.Contains(msg, "kernel "+tt.kernel+" is not supported: ") || !strings.Contains(msg, tt.why) {
				t.Errorf("stderr %q, want the kernel and %q", msg, tt.why)
			}
			if SkipReason(msg) == "" {
				t.Errorf("SkipReason does not find the reason in %q", msg)
			}
		})
	}
}

// The build wrapper, with a fake make: the arguments of the out-of-tree
// build, and on failure the first compiler error, as kbuild.FirstError
// finds it, in make.log and on the stderr of the dkms process above it.
func TestMakeScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	tr := repoTree(t)
	tests := []struct {
		name      string
		log       string // what the fake make prints
		code      int
		wantFirst string // "" when the build succeeds
	}{
		{name: "success", log: "  CC [M]  HERE/main.o\n  LD [M]  HERE/wireguard.ko\n", code: 0},
		{name: "compiler error", code: 2, log: "  CC [M]  HERE/main.o\nIn file included from HERE/main.c:6:\nHERE/device.h:12:1: warning: x\nHERE/noise.c:42:7: error: 'foo' undeclared\nHERE/peer.c:1:1: error: second\n",
			wantFirst: "noise.c:42:7: error: 'foo' undeclared"},
		{name: "modpost", code: 2, log: "  MODPOST HERE/Module.symvers\nERROR: modpost: \"dst_cache_get\" [HERE/wireguard.ko] undefined!\n",
			wantFirst: "ERROR: modpost: \"dst_cache_get\" [wireguard.ko] undefined!"},
		{name: "nothing recognisable", code: 2, log: "make: something odd\n", wantFirst: "no compiler error found in the log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			// dkms's build directory: a copy of the tree.
			here := filepath.Join(base, "dkms", "build")
			if err := tr.Write(here); err != nil {
				t.Fatal(err)
			}
			// Headers that have every probed header (all "missing").
			kdir := filepath.Join(base, "headers")
			for _, p := range compat.Probes {
				writeTestFile(t, filepath.Join(kdir, "include", p.Header), "")
			}
			// The fake make prints the log and records its arguments.
			bin := filepath.Join(base, "bin")
			logText := strings.ReplaceAll(tt.log, "HERE", here)
			writeTestFile(t, filepath.Join(base, "make.out"), logText)
			writeTestFile(t, filepath.Join(bin, "make"), "#!/bin/sh\nprintf '%s\\n' \"$@\" >"+filepath.Join(base, "args")+"\ncat "+filepath.Join(base, "make.out")+"\nexit "+string(rune('0'+tt.code))+"\n")
			if err := os.Chmod(filepath.Join(bin, "make"), 0o755); err != nil {
				t.Fatal(err)
			}
			// As dkms runs it: a process named dkms whose stderr is
			// the terminal (here a file), running the wrapper with
			// its output in make.log.
			terminal := filepath.Join(base, "terminal")
			tf, err := os.Create(terminal)
			if err != nil {
				t.Fatal(err)
			}
			defer tf.Close()
			// invoke_command's way: (eval "{ make; } >>log 2>&1" >/dev/null 2>&1) &
			cmd := exec.Command("/bin/bash", "-c", `cd "$1" && (eval '{ sh ./`+MakeScriptName+` 6.1.0-56-amd64 "$2"; } >>make.log 2>&1' >/dev/null 2>&1) & wait $!`, "bash", here, kdir)
			cmd.Args[0] = "dkms"
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
			cmd.Stderr = tf
			err = cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Fatalf("exit status %d, want %d (make's)", code, tt.code)
			}
			args, _ := os.ReadFile(filepath.Join(base, "args"))
			wantArgs := "-C\n" + kdir + "\nM=" + here + "\nCONFIG_WIREGUARD=m\nKCFLAGS=-include " + here + "/compat/compat.h -I" + here + "/" + compat.StubDir + "\n"
			if !strings.HasPrefix(string(args), wantArgs) || !strings.HasSuffix(string(args), "modules\n") {
				t.Errorf("make arguments:\n%s\nwant them to start with\n%s", args, wantArgs)
			}
			if _, err := os.Stat(filepath.Join(here, "compat", "compat.h")); err != nil {
				t.Errorf("compat.sh did not run: %v", err)
			}
			makeLog, _ := os.ReadFile(filepath.Join(here, "make.log"))
			if !strings.Contains(string(makeLog), logText) {
				t.Errorf("make.log lacks make's output:\n%s", makeLog)
			}
			term, _ := os.ReadFile(terminal)
			if tt.wantFirst == "" {
				if len(term) != 0 {
					t.Errorf("the terminal got %q from a successful build", term)
				}
				return
			}
			kb := strings.ReplaceAll(kbuild.FirstError([]byte(logText), "", ""), here+"/", "")
			if kb == "" {
				kb = "no compiler error found in the log"
			}
			if kb != tt.wantFirst {
				t.Errorf("kbuild.FirstError finds %q, the test wants %q: the wrapper must agree with kbuild", kb, tt.wantFirst)
			}
			want := tr.Name + " " + tr.Version + ": build for kernel 6.1.0-56-amd64 failed: " + tt.wantFirst
			for what, text := range map[string]string{"make.log": string(makeLog), "the dkms process's stderr": string(term)} {
				if !strings.Contains(text, want+"\n") {
					t.Errorf("%s lacks %q:\n%s", what, want, text)
				}
				if !strings.Contains(text, "full log: "+here+"/make.log") {
					t.Errorf("%s does not name make.log:\n%s", what, text)
				}
			}
			if got := FirstError(string(term)); got != want {
				t.Errorf("FirstError = %q, want %q", got, want)
			}
		})
	}
}
