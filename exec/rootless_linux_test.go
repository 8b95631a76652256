package exec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// delegationReport names what stands between kiln and a delegated cgroup v2
// subtree, read from a cgroup v2 mount and a /proc/self/cgroup.
func TestDelegationReport(t *testing.T) {
	for _, c := range []struct {
		name, proc, controllers string
		hybrid                  bool
		want                    string
	}{
		{"hybrid", "4:memory:/x\n0::/user/kiln\n", "hugetlb\n", true, "lacks the memory, pids controller(s) (it has: hugetlb): this host is hybrid"},
		{"no pids", "0::/user/kiln\n", "cpu memory\n", false, "lacks the pids controller(s) (it has: cpu memory)"},
		{"delegated", "0::/user/kiln\n", "cpu memory pids\n", false, "delegated to you with memory and pids, but kiln does not use delegated subtrees yet"},
		{"no v2 line", "4:memory:/x\n", "", false, "kiln is in no cgroup v2"},
		{"invisible", "0::/elsewhere\n", "memory pids\n", false, "is not visible here"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mount := filepath.Join(t.TempDir(), "cgroup")
			if c.hybrid {
				mount = filepath.Join(mount, "unified")
			}
			if err := os.MkdirAll(filepath.Join(mount, "user", "kiln"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mount, "user", "kiln", "cgroup.controllers"), []byte(c.controllers), 0o644); err != nil {
				t.Fatal(err)
			}
			proc := filepath.Join(t.TempDir(), "cgroup")
			if err := os.WriteFile(proc, []byte(c.proc), 0o644); err != nil {
				t.Fatal(err)
			}
			got := delegationReport(mount, proc)
			if !strings.Contains(got, c.want) {
				t.Errorf("delegationReport = %q, want it to contain %q", got, c.want)
			}
			if strings.Contains(got, "hybrid") != c.hybrid {
				t.Errorf("delegationReport = %q: hybrid is %v", got, c.hybrid)
			}
		})
	}
	if got := delegationReport("", "/proc/self/cgroup"); !strings.Contains(got, "no cgroup v2") {
		t.Errorf("without a v2 mount: %q", got)
	}
}

// procUncovered answers yes only for a read-write proc on /proc with nothing over it
// (binfmt_misc aside): where it says no, FreshProc probes.
func TestProcUncovered(t *testing.T) {
	const proc = "21 26 0:20 / /proc rw,relatime - proc proc rw\n"
	for _, c := range []struct {
		name, mountinfo string
		want            bool
	}{
		{"host", "26 1 8:1 / / rw - ext4 /dev/vda rw\n" + proc, true},
		{"binfmt_misc", proc + "40 21 0:40 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n", true},
		{"masked", proc + "50 21 0:5 /null /proc/kcore rw - devtmpfs udev rw\n", false},
		{"read-only", "21 26 0:20 / /proc ro,relatime - proc proc ro\n", false},
		{"subset", "21 26 0:20 / /proc rw - proc proc rw,subset=pid\n", false},
		{"no proc", "26 1 8:1 / / rw - ext4 /dev/vda rw\n", false},
	} {
		if got := procUncovered(c.mountinfo); got != c.want {
			t.Errorf("%s: procUncovered = %v, want %v", c.name, got, c.want)
		}
	}
}
