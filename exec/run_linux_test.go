package exec

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/lease"
	"github.com/kiln-build/kiln/internal/testenv"
)

func TestRunOutputAndExitCodes(t *testing.T) {
	fs := newSandboxFS(t)
	if out := fs.mustRun(t, Spec{}, "echo hello; echo oops >&2"); out != "hello\n" {
		t.Errorf("stdout = %q", out)
	}
	_, stderr, err := fs.run(t, context.Background(), Spec{}, "echo to-stderr >&2; exit 3")
	if ee := exitCode(t, err); ee.Code != 3 || ee.Signal != 0 || ee.OOMKilled {
		t.Errorf("exit error = %+v", ee)
	}
	if stderr != "to-stderr\n" {
		t.Errorf("stderr = %q", stderr)
	}
	// The command is pid 1 of its namespace, immune to its own signals as
	// under runc; a child killed by a signal gives the shell's 128+n.
	_, _, err = fs.run(t, context.Background(), Spec{}, "sh -c 'kill -9 $$'; exit $?")
	if ee := exitCode(t, err); ee.Code != 137 {
		t.Errorf("killed child: exit error = %+v", ee)
	}
}

func TestRunExecutableNotFound(t *testing.T) {
	fs := newSandboxFS(t)
	_, _, err := fs.run(t, context.Background(), Spec{Args: []string{"no-such-tool", "x"}}, "")
	if err == nil || !strings.Contains(err.Error(), `exec: "no-such-tool": executable file not found in $PATH`) {
		t.Fatalf("error = %v", err)
	}
	if ee := exitCode(t, err); ee.Code != 127 {
		t.Errorf("code = %d, want 127", ee.Code)
	}
	_, _, err = fs.run(t, context.Background(), Spec{Args: []string{"/etc/passwd"}}, "")
	if ee := exitCode(t, err); ee.Code != 126 {
		t.Errorf("not executable: code = %d (%v), want 126", ee.Code, err)
	}
}

func TestRunEnvAndCwd(t *testing.T) {
	fs := newSandboxFS(t)
	out := fs.mustRun(t, Spec{Env: []string{"FOO=bar baz"}, Cwd: "/work/dir"},
		`echo "$FOO|$PATH|$HOME|$(pwd)|$(env | grep -c HOSTNAME)"`)
	want := "bar baz|" + defaultPath + "|/root|/work/dir|0\n"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	fi, err := os.Stat(filepath.Join(fs.upper, "work/dir"))
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("working directory not created in the layer: %v %v", fi, err)
	}
	out = fs.mustRun(t, Spec{Env: []string{"PATH=/bin", "HOME=/h"}}, `echo "$PATH $HOME"`)
	if out != "/bin /h\n" {
		t.Errorf("explicit PATH and HOME: %q", out)
	}
}

func TestRunUser(t *testing.T) {
	fs := newSandboxFS(t)
	tests := []struct {
		user, want string
	}{
		{"", "uid=0(root) gid=0(root) groups=0(root) /root"},
		{"app", "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra) /home/app"},
		{"1000", "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra) /home/app"},
		{"app:extra", "uid=1000(app) gid=2000(extra) groups=2000(extra) /home/app"},
		{"4242:4343", "uid=4242 gid=4343 groups=4343 /"},
		{"nobody:app", "uid=65534(nobody) gid=1000(app) groups=1000(app) /nonexistent"},
		{"4242", "uid=4242 gid=0(root) groups=0(root) /"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			out := fs.mustRun(t, Spec{User: tt.user}, `echo "$(id) $HOME"`)
			if strings.TrimSpace(out) != tt.want {
				t.Errorf("got %q, want %q", strings.TrimSpace(out), tt.want)
			}
		})
	}
	_, _, err := fs.run(t, context.Background(), Spec{User: "ghost"}, "true")
	if err == nil || !strings.Contains(err.Error(), "unable to find user ghost: no matching entries in passwd file") {
		t.Errorf("unknown user: %v", err)
	}
}

func TestRunNamespaces(t *testing.T) {
	fs := newSandboxFS(t)
	out := fs.mustRun(t, Spec{}, `echo $$; ls /proc | grep -c '^[0-9]'`)
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != "1" || f[1] > "3" || len(f[1]) > 1 {
		t.Errorf("pid namespace: %q (want pid 1 and a few processes)", out)
	}
	if out := fs.mustRun(t, Spec{}, "hostname"); out != DefaultHostname+"\n" {
		t.Errorf("default hostname %q, want BuildKit's %q", out, DefaultHostname)
	}
	if out := fs.mustRun(t, Spec{Hostname: "builder"}, "hostname"); out != "builder\n" {
		t.Errorf("hostname = %q", out)
	}
	out = fs.mustRun(t, Spec{Network: NetworkNone}, "ls /sys/class/net; cat /sys/class/net/lo/flags")
	if out != "lo\n0x9\n" {
		t.Errorf("network none: %q (want only lo, up)", out)
	}
	out = fs.mustRun(t, Spec{}, "cat /proc/self/cgroup")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(line, ":/") {
			t.Errorf("cgroup namespace: step sees %q", line)
		}
	}
}

func TestRunDevAndSys(t *testing.T) {
	fs := newSandboxFS(t)
	out := fs.mustRun(t, Spec{}, `ls /dev | tr '\n' ' '; echo x > /dev/null && head -c 4 /dev/zero | wc -c; `+
		`touch /sys/x 2>/dev/null || echo sys-ro; cat /proc/kcore | wc -c; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || echo procsys-ro`)
	want := "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero 4\nsys-ro\n0\nprocsys-ro\n"
	if _, err := os.Stat("/proc/kcore"); err == nil {
		want = "core " + want // as runc: only where the kernel has /proc/kcore
	}
	if out != want {
		t.Errorf("got %q\nwant %q", out, want)
	}
}

// A step runs under Docker's default seccomp profile, as under BuildKit (measured
// with buildctl: the same lines): mode 2, no_new_privs off, and a user or network
// namespace refused though creating one needs no capability. A USER step still
// switches users after the filter is in.
func TestRunSeccompDefaultProfile(t *testing.T) {
	fs := newSandboxFS(t)
	script := `grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t' ' '; ` +
		`unshare -U true 2>/dev/null && echo userns || echo no-userns; ` +
		`unshare -n true 2>/dev/null && echo netns || echo no-netns; id -u`
	want := "NoNewPrivs: 0\nSeccomp: 2\nno-userns\nno-netns\n"
	if out := fs.mustRun(t, Spec{}, script); out != want+"0\n" {
		t.Errorf("root step:\n%s\nwant\n%s0", out, want)
	}
	if out := fs.mustRun(t, Spec{User: "app"}, script); !strings.HasPrefix(out, want) || strings.HasSuffix(out, "\n0\n") {
		t.Errorf("USER app step:\n%s", out)
	}
}

func TestRunCapabilitiesAndFds(t *testing.T) {
	fs := newSandboxFS(t)
	out := fs.mustRun(t, Spec{}, "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status | tr -s '\\t' ' '")
	want := "CapInh: 0000000000000000\nCapPrm: 00000000a80425fb\nCapEff: 00000000a80425fb\nCapBnd: 00000000a80425fb\nCapAmb: 0000000000000000\n"
	if out != want {
		t.Errorf("root caps:\n%s\nwant\n%s", out, want)
	}
	out = fs.mustRun(t, Spec{User: "app"}, "grep -E '^Cap(Eff|Bnd)' /proc/self/status | tr -s '\\t' ' '")
	if out != "CapEff: 0000000000000000\nCapBnd: 00000000a80425fb\n" {
		t.Errorf("app caps: %q", out)
	}
	if out := fs.mustRun(t, Spec{}, "ls /proc/self/fd | tr '\\n' ' '"); out != "0 1 2 3 " {
		t.Errorf("open fds: %q (want stdio and ls's own)", out)
	}
}

func TestRunNetFilesAndStubs(t *testing.T) {
	fs := newSandboxFS(t)
	// BuildKit's /etc/hosts (executor/oci/hosts.go), read-only: the hostname
	// resolves, and nothing of the host's file shows.
	want := "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\nro\n"
	if out := fs.mustRun(t, Spec{}, "cat /etc/hosts; echo x >> /etc/hosts 2>/dev/null || echo ro"); out != want {
		t.Errorf("/etc/hosts = %q, want %q", out, want)
	}
	want = "127.0.0.1\tlocalhost b1\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.2.3\tdb\n"
	if out := fs.mustRun(t, Spec{Hostname: "b1", ExtraHosts: []Host{{Name: "db", IP: "10.1.2.3"}}}, "cat /etc/hosts"); out != want {
		t.Errorf("/etc/hosts with a hostname and --add-host = %q, want %q", out, want)
	}
	// resolv.conf is the host's content in a file of the step's own: 0644 and
	// root's whatever the host's mode (this host's is 0755), as BuildKit's copy.
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	want = "644 0:0 ro\n" + string(host)
	if out := fs.mustRun(t, Spec{}, "echo $(stat -c '%a %u:%g' /etc/resolv.conf) $(echo x >> /etc/resolv.conf 2>/dev/null || echo ro); cat /etc/resolv.conf"); out != want {
		t.Errorf("/etc/resolv.conf = %q, want %q", out, want)
	}
	for _, p := range []string{"etc/hosts", "etc/resolv.conf"} {
		if _, err := os.Lstat(filepath.Join(fs.upper, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("mount point stub %s left in the layer (%v)", p, err)
		}
	}
	// /proc, /dev and /sys stay, empty and 0755, as runc leaves them under BuildKit.
	for _, p := range runtimeDirs {
		fi, err := os.Lstat(filepath.Join(fs.upper, p))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
			t.Errorf("/%s in the layer: %v, %v; want an empty 0755 dir", p, fi, err)
			continue
		}
		if ents, _ := os.ReadDir(filepath.Join(fs.upper, p)); len(ents) != 0 {
			t.Errorf("/%s in the layer holds %d entries", p, len(ents))
		}
	}
	lowerEtc, _ := os.Stat(filepath.Join(fs.lower, "etc"))
	if upperEtc, err := os.Stat(filepath.Join(fs.upper, "etc")); err == nil && !upperEtc.ModTime().Equal(lowerEtc.ModTime()) {
		t.Errorf("/etc mtime changed by the stubs: %v -> %v", lowerEtc.ModTime(), upperEtc.ModTime())
	}
}

func TestRunMounts(t *testing.T) {
	fs := newSandboxFS(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A mount inside a read-only bind needs its mount point to exist there, as
	// with runc: kiln does not write into a read-only source.
	if err := os.Mkdir(filepath.Join(src, "scratch"), 0o755); err != nil {
		t.Fatal(err)
	}
	mounts := []Mount{
		{Type: "bind", Source: src, Target: "/mnt/src", ReadOnly: true},
		{Type: "tmpfs", Target: "/mnt/src/scratch", Options: []string{"size=1m"}},
		{Type: "bind", Source: filepath.Join(src, "f"), Target: "/single"},
	}
	out := fs.mustRun(t, Spec{Mounts: mounts},
		"cat /mnt/src/f /single; echo; touch /mnt/src/g 2>/dev/null || echo ro; echo s > /mnt/src/scratch/x && cat /mnt/src/scratch/x")
	if out != "datadata\nro\ns\n" {
		t.Errorf("got %q", out)
	}
	for _, p := range []string{"mnt", "single"} {
		if _, err := os.Lstat(filepath.Join(fs.upper, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("mount point %s left in the layer", p)
		}
	}
	if _, _, err := fs.run(t, context.Background(), Spec{Mounts: []Mount{{Type: "bind", Source: "/no/such", Target: "/x"}}}, "true"); err == nil {
		t.Error("missing bind source accepted")
	}
}

// A step's own mount on /dev/shm replaces the default one (as in BuildKit's spec):
// /proc/mounts lists one /dev/shm, the step's.
func TestRunMountOnDevShmReplacesDefault(t *testing.T) {
	fs := newSandboxFS(t)
	out := fs.mustRun(t, Spec{Mounts: []Mount{{Type: "tmpfs", Target: "/dev/shm", Options: []string{"size=128m"}}}},
		"grep ' /dev/shm ' /proc/mounts | grep -o 'size=[0-9]*k'")
	if out != "size=131072k\n" {
		t.Errorf("/dev/shm mounts: %q, want one of size=131072k", out)
	}
	if out := fs.mustRun(t, Spec{}, "grep ' /dev/shm ' /proc/mounts | grep -o 'size=[0-9]*k'"); out != "size=65536k\n" {
		t.Errorf("default /dev/shm: %q, want size=65536k", out)
	}
}

func TestRunLimits(t *testing.T) {
	fs := newSandboxFS(t)
	_, _, err := fs.run(t, context.Background(), Spec{Limits: Limits{MemoryBytes: 32 << 20}},
		"head -c 100m /dev/zero | tail > /dev/null")
	if ee := exitCode(t, err); !ee.OOMKilled || ee.MemoryLimit != 32<<20 {
		t.Errorf("memory limit: %+v", ee)
	}
	start := time.Now()
	_, _, err = fs.run(t, context.Background(), Spec{Limits: Limits{Pids: 64}},
		"for i in $(seq 1 100); do sleep 987651 & done; exit 7")
	if ee := exitCode(t, err); !ee.PidsLimited {
		t.Errorf("pids limit: %+v", ee)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("pids step took %v", d)
	}
	if findProcess("987651") {
		t.Error("a process of the fork loop survived")
	}
}

func TestRunLeavesNoProcess(t *testing.T) {
	fs := newSandboxFS(t)
	start := time.Now()
	if out := fs.mustRun(t, Spec{}, "sleep 987652 & echo started"); out != "started\n" {
		t.Errorf("got %q", out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run waited %v for a background process", d)
	}
	if findProcess("987652") {
		t.Error("background process survived the step")
	}
}

func TestRunCancel(t *testing.T) {
	fs := newSandboxFS(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := fs.run(t, ctx, Spec{}, "sleep 987653 & sleep 987654")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
	if findProcess("98765") {
		t.Error("a process survived cancellation")
	}
}

func TestRunConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		fs := newSandboxFS(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out strings.Builder
			err := Run(context.Background(), Spec{Rootfs: fs.merged, Args: []string{"echo", "ok"}, Stdout: &out})
			if err != nil || out.String() != "ok\n" {
				t.Errorf("concurrent run: %q %v", out.String(), err)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkRun measures the per-step overhead: namespaces, cgroup, mounts, exec; with
// the test binary as the init (as kiln itself) and with kiln-init.
func BenchmarkRun(b *testing.B) {
	testenv.RequireRoot(b)
	lower := b.TempDir()
	if err := os.MkdirAll(filepath.Join(lower, "bin"), 0o755); err != nil {
		b.Fatal(err)
	}
	src, err := os.ReadFile("/bin/busybox")
	if err != nil {
		b.Skip(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "bin/true"), src, 0o755); err != nil {
		b.Fatal(err)
	}
	bin := b.TempDir()
	testenv.GoBuild(b, bin, InitName, "github.com/kiln-build/kiln/cmd/kiln-init")
	sum, err := os.ReadFile(filepath.Join(bin, InitName))
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.Sum256(sum)
	kilnInit := &InitBinary{Sum: hex.EncodeToString(h[:]), Dir: bin}
	defer kilnInit.Close()
	for _, bc := range []struct{ name, init string }{{"self", ""}, {"kiln-init", kilnInit.Path()}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := Run(context.Background(), Spec{Rootfs: lower, Args: []string{"/bin/true"}, Init: bc.init}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// Through Sandboxes, as a build runs its steps: each step's sandbox started
	// while the one before runs.
	b.Run("kiln-init-ahead", func(b *testing.B) {
		s := &Sandboxes{}
		defer s.Close()
		for b.Loop() {
			if err := s.Run(context.Background(), Spec{Rootfs: lower, Args: []string{"/bin/true"}, Init: kilnInit.Path()}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A kiln killed with SIGKILL leaves its step's empty cgroup; RemoveStaleCgroups (run
// when a build starts, with no RUN step needed) removes the cgroups whose lease is free
// (unless just made: a step being set up) and pre-lease ones that are old, and only
// those.
func TestRemoveStaleCgroups(t *testing.T) {
	fs := newSandboxFS(t)
	fs.mustRun(t, Spec{}, "true") // creates the kiln parents
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/kiln")
	if cgroups.Mode() == cgroups.Unified {
		parents = []string{"/sys/fs/cgroup/kiln"}
	}
	if len(parents) == 0 {
		t.Fatal("no kiln cgroup parent after a step")
	}
	parent := parents[0]
	var b [8]byte
	rand.Read(b[:])
	name := func(prefix string) string { return filepath.Join(parent, prefix+hex.EncodeToString(b[:])) }
	stale, held, young := name("step-0"), name("step-1"), name("step-2")
	legacyOld, legacyNew := filepath.Join(parent, "1-"+hex.EncodeToString(b[:])), filepath.Join(parent, "2-"+hex.EncodeToString(b[:]))
	for _, d := range []string{stale, held, young, legacyOld, legacyNew} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(d)
	}
	long := time.Now().Add(-2 * legacyCgroupAge)
	for _, d := range []string{legacyOld, stale, held} {
		if err := os.Chtimes(d, long, long); err != nil {
			t.Fatal(err)
		}
	}
	l, err := lease.Take(held) // as a live step in another process would
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()

	RemoveStaleCgroups()
	for _, d := range []string{stale, legacyOld} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("stale cgroup %s was not removed", d)
		}
	}
	// young has a free lease but was just made: a live step between its mkdir and
	// its lease.
	for _, d := range []string{held, young, legacyNew} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("cgroup %s of a live step was removed", d)
		}
	}
}

// Seen from inside, a step has only the sandbox's own mounts (none of the host's paths
// show through) and cannot write to /sys, so neither its cgroup nor any other kernel
// setting there can be changed.
func TestRunSeesNoHostMountsAndReadOnlySys(t *testing.T) {
	fs := newSandboxFS(t)
	out := fs.mustRun(t, Spec{}, "cut -d' ' -f5 /proc/self/mountinfo")
	allowed := map[string]bool{"/": true, "/proc": true, "/dev": true, "/dev/pts": true, "/dev/shm": true,
		"/dev/mqueue": true, "/sys": true, "/etc/hosts": true, "/etc/resolv.conf": true, "/etc/hostname": true}
	for _, mp := range strings.Fields(out) {
		if allowed[mp] || strings.HasPrefix(mp, "/proc/") || strings.HasPrefix(mp, "/sys/") || strings.HasPrefix(mp, "/dev/") {
			continue
		}
		t.Errorf("unexpected mount inside the step: %s", mp)
	}
	for _, host := range []string{"/work", "/tmp", "/var/lib"} {
		for _, mp := range strings.Fields(out) {
			if mp == host {
				t.Errorf("host path %s is mounted inside the step", host)
			}
		}
	}
	// A new cgroup (v1 or v2) is refused; the v1 tmpfs above the hierarchies is
	// the step's own and writable, as runc's.
	res := fs.mustRun(t, Spec{}, "mkdir /sys/fs/cgroup/memory/kiln-escape /sys/fs/cgroup/kiln-escape 2>/dev/null && echo wrote || echo refused; "+
		"(echo 1 > /sys/kernel/mm/ksm/run) 2>/dev/null && echo wrote || echo refused")
	if strings.Contains(res, "wrote") {
		t.Errorf("a step could write under /sys: %q", res)
	}
}

// A step sees its own cgroup, read-only, at /sys/fs/cgroup, as under runc: on this
// host's v1 hierarchies one mount per hierarchy the host has there (BuildKit's
// list, measured with buildctl, is the same nine), its memory limit readable where
// a JVM reads it, and nothing it may write.
func TestRunCgroupfs(t *testing.T) {
	fs := newSandboxFS(t)
	spec := Spec{Limits: Limits{MemoryBytes: 48 << 20, Pids: 77}}
	if cgroups.Mode() == cgroups.Unified {
		out := fs.mustRun(t, spec, "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; touch /sys/fs/cgroup/x 2>/dev/null || echo ro")
		if out != "50331648\n77\nro\n" {
			t.Errorf("cgroup2 in the step:\n%s", out)
		}
		return
	}
	var want []string
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		var st unix.Statfs_t
		if e.IsDir() && unix.Statfs(filepath.Join("/sys/fs/cgroup", e.Name()), &st) == nil && st.Type == unix.CGROUP_SUPER_MAGIC {
			want = append(want, e.Name())
		}
	}
	out := fs.mustRun(t, spec, "ls /sys/fs/cgroup | tr '\\n' ' '; echo; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; "+
		"touch /sys/fs/cgroup/memory/x 2>/dev/null || echo ro; grep -c . /sys/fs/cgroup/memory/cgroup.procs")
	if got := strings.Join(want, " ") + " \n50331648\n77\nro\n1\n"; out != got {
		t.Errorf("cgroup v1 in the step:\n%q\nwant\n%q", out, got)
	}
}
