package series

import (
	"strings"
	"testing"
)

func TestParseGetMaintainer(t *testing.T) {
	out := `"David S. Miller" <davem@davemloft.net> (maintainer:NETWORKING DRIVERS)
Eric Dumazet <edumazet@google.com> (maintainer:NETWORKING DRIVERS)
Some Reviewer <r@example.org> (reviewer:NETWORKING DRIVERS)
netdev@vger.kernel.org (open list:NETWORKING DRIVERS)
"Jason A. Donenfeld" <Jason@zx2c4.com> (maintainer:WIREGUARD SECURE NETWORK TUNNEL)
netdev@vger.kernel.org (open list:WIREGUARD SECURE NETWORK TUNNEL)
linux-kernel@vger.kernel.org (open list)
`
	r := ParseGetMaintainer(out)
	wantTo := `"David S. Miller" <davem@davemloft.net>|Eric Dumazet <edumazet@google.com>|"Jason A. Donenfeld" <Jason@zx2c4.com>`
	wantCc := "Some Reviewer <r@example.org>|netdev@vger.kernel.org|linux-kernel@vger.kernel.org"
	if got := strings.Join(r.To, "|"); got != wantTo {
		t.Errorf("To = %s, want %s", got, wantTo)
	}
	if got := strings.Join(r.Cc, "|"); got != wantCc {
		t.Errorf("Cc = %s, want %s", got, wantCc)
	}
	// A maintainer of one patch who is only Cc'd on another goes to To.
	r.Add(Recipients{To: []string{"Some Reviewer <r@example.org>"}})
	if strings.Contains(strings.Join(r.Cc, "|"), "Some Reviewer") || !strings.Contains(strings.Join(r.To, "|"), "Some Reviewer") {
		t.Errorf("after Add: To %v, Cc %v", r.To, r.Cc)
	}
}

func TestAddRecipients(t *testing.T) {
	m := "From abc Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH] x\n\nbody\n"
	got := string(AddRecipients([]byte(m), Recipients{To: []string{"X <x@y>", "Z <z@y>"}, Cc: []string{"l@y"}}))
	want := "From abc Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH] x\nTo: X <x@y>,\n    Z <z@y>\nCc: l@y\n\nbody\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	p, err := ParseMail("m", []byte(got))
	if err != nil {
		t.Fatal(err)
	}
	if p.To != "X <x@y>, Z <z@y>" || p.Cc != "l@y" {
		t.Errorf("parsed To %q Cc %q", p.To, p.Cc)
	}
}

func mailText(subject, from, to, msg string) string {
	return "From 0123 Mon Sep 17 00:00:00 2001\nFrom: " + from + "\nDate: Wed, 25 Nov 2026 17:06:37 +0000\nSubject: " + subject +
		"\nTo: " + to + "\n\n" + msg + "---\n a.c | 1 +\n\ndiff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -0,0 +1 @@\n+x\n"
}

func TestCheckMail(t *testing.T) {
	id := Identity{Name: "Jane Doe", Email: "jane@example.org"}
	good := "Add a thing.\n\nSigned-off-by: Jane Doe <jane@example.org>\n"
	tests := []struct {
		name          string
		subject, from string
		to, msg       string
		v, i, n       int
		want          string
	}{
		{"good", "[PATCH net-next v1 03/12] wireguard: add x", id.String(), "m@x", good, 1, 3, 12, ""},
		{"folded subject", "[PATCH net-next v1 3/9] wireguard: add\n a long thing", id.String(), "m@x", good, 1, 3, 9, ""},
		{"wrong version", "[PATCH net-next v2 3/9] wireguard: add x", id.String(), "m@x", good, 1, 3, 9, "version v2, want v1"},
		{"wrong number", "[PATCH net-next v1 4/9] wireguard: add x", id.String(), "m@x", good, 1, 3, 9, "numbered 4/9, want 3/9"},
		{"unpadded", "[PATCH net-next v1 3/12] wireguard: add x", id.String(), "m@x", good, 1, 3, 12, "numbered 3/12, want 03/12"},
		{"no tag", "[PATCH v1 3/9] wireguard: add x", id.String(), "m@x", good, 1, 3, 9, `want "[PATCH net-next v1 3/9] ..."`},
		{"no prefix", "[PATCH net-next v1 3/9] add x", id.String(), "m@x", good, 1, 3, 9, `must start with "wireguard: "`},
		{"other sender", "[PATCH net-next v1 3/9] wireguard: add x", "Bob <bob@example.org>", "m@x", good, 1, 3, 9, "From: "},
		{"no sob", "[PATCH net-next v1 3/9] wireguard: add x", id.String(), "m@x", "Add a thing.\n", 1, 3, 9, "no \"Signed-off-by: Jane Doe <jane@example.org>\" line"},
		{"no message", "[PATCH net-next v1 3/9] wireguard: add x", id.String(), "m@x", "Signed-off-by: Jane Doe <jane@example.org>\n", 1, 3, 9, "no commit message"},
		{"no to", "[PATCH net-next v1 3/9] wireguard: add x", id.String(), "", good, 1, 3, 9, "no To:"},
		{"cover", "[PATCH net-next v2 00/12] wireguard: new", id.String(), "m@x", "Text.\n\nChanges in v2:\n- x\n", 2, 0, 12, ""},
		{"cover unfilled", "[PATCH net-next v1 00/12] *** SUBJECT HERE ***", id.String(), "m@x", "*** BLURB HERE ***\n", 1, 0, 12, "subject was not filled in\nthe cover letter's body was not filled in"},
		{"cover no changelog", "[PATCH net-next v2 00/12] wireguard: new", id.String(), "m@x", "Text.\n", 2, 0, 12, `has no "Changes in v2:" section`},
		{"cover no results", "[PATCH net-next v1 00/12] wireguard: new", id.String(), "m@x", "Text.\n" + noResults + "\n", 1, 0, 12, "no test results"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMail("m", []byte(mailText(tt.subject, tt.from, tt.to, tt.msg)))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(CheckMail(m, tt.v, tt.i, tt.n, id, tt.v > 1), "\n")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestParseCheckpatch(t *testing.T) {
	out := `WARNING:FILE_PATH_CHANGES: added, moved or deleted file(s), does MAINTAINERS need updating?
#23:
new file mode 100644

CHECK:MACRO_ARG_REUSE: Macro argument reuse 'x' - possible side-effects?
#40: FILE: drivers/net/wireguard/a.h:3:
+#define X(x) ((x) + (x))

NOTE: For some of the reported defects, checkpatch may be able to
      mechanically convert to the typical style using --fix or --fix-inplace.
`
	msgs := ParseCheckpatch(out)
	if len(msgs) != 2 || msgs[0].Type != "FILE_PATH_CHANGES" || msgs[1].Level != "CHECK" || !strings.Contains(msgs[1].Text, "a.h:3") {
		t.Fatalf("messages %+v", msgs)
	}
	ok, rest := splitAccepted(msgs, map[string]string{"FILE_PATH_CHANGES": "why"})
	if len(ok) != 1 || len(rest) != 1 || rest[0].Type != "MACRO_ARG_REUSE" {
		t.Errorf("accepted %v, rest %v", ok, rest)
	}
}

func TestPatchList(t *testing.T) {
	tests := []struct {
		ps   []int
		n    int
		want string
	}{
		{[]int{3}, 12, "patch 3"},
		{[]int{1, 2, 3, 5}, 12, "patches 1-3, 5"},
		{[]int{1, 2, 3}, 3, "every patch"},
		{[]int{2, 4, 6, 7}, 9, "patches 2, 4, 6-7"},
	}
	for _, tt := range tests {
		if got := patchList(tt.ps, tt.n); got != tt.want {
			t.Errorf("patchList(%v) = %q, want %q", tt.ps, got, tt.want)
		}
	}
}

func TestDiffFilesAndWarnings(t *testing.T) {
	diff := "diff --git a/MAINTAINERS b/MAINTAINERS\nx\ndiff --git a/drivers/net/wireguard/a.c b/drivers/net/wireguard/a.c\n"
	if got := strings.Join(DiffFiles(diff), " "); got != "MAINTAINERS drivers/net/wireguard/a.c" {
		t.Errorf("DiffFiles = %q", got)
	}
	log := `  CC [M]  drivers/net/wireguard/noise.o
/root/.cache/wgkit/patches-tree/k/src/drivers/net/wireguard/noise.c:12:5: warning: no previous prototype for 'x' [-Wmissing-prototypes]
/root/.cache/wgkit/patches-tree/k/src/net/core/dev.c:1:1: warning: elsewhere
/root/.cache/wgkit/patches-tree/k/objcheck/peer.c:3:1: error: boom
  CHECK   cookie.c
cookie.c:220:24: warning: incorrect type in assignment (different base types)
cookie.c:220:24:    expected restricted __le32 [assigned] [usertype] receiver
./include/linux/skbuff.h:10:2: warning: not ours
WARNING: modpost: "wg_x" [drivers/net/wireguard/wireguard.ko] undefined!
`
	w := DriverWarnings([]byte(log))
	if len(w) != 4 || !strings.Contains(w[0], "noise.c:12:5") || !strings.Contains(w[1], "objcheck/peer.c") || !strings.HasPrefix(w[2], "cookie.c:220:24: warning") || !strings.Contains(w[3], "modpost") {
		t.Errorf("DriverWarnings = %q", w)
	}
}
