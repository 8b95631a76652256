package exec

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroupParent is the cgroup, at the root of each hierarchy, under which every step
// gets its own. It is shared by concurrent builds, so it is never removed here.
const cgroupParent = "/kiln"

const (
	defaultPids = 4096
	cpuPeriod   = 100000 // µs, the kernel's default CFS period
)

// stepCgroup is the cgroup of one step, v1 or v2.
type stepCgroup interface {
	add(pid int) error
	// killAll kills every process left in the cgroup and waits until it is empty.
	killAll() error
	// events reports whether the memory limit killed a process and whether the
	// pids limit refused a fork.
	events() (oomKilled, pidsLimited bool)
	delete() error
}

// newStepCgroup creates kiln/<pid>-<random> with lim applied, in the v2 hierarchy when
// the host is unified, else in every v1 hierarchy. The pid is kiln's own: a kiln
// killed with SIGKILL cannot delete its step's cgroup (its processes die with it, by
// Pdeathsig, but the empty dir stays), so every new step first removes the cgroups
// whose kiln is gone.
func newStepCgroup(lim Limits) (stepCgroup, error) {
	reapStaleCgroups()
	var b [8]byte
	rand.Read(b[:])
	path := cgroupParent + "/" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
	if cgroups.Mode() == cgroups.Unified {
		return newCgroup2(path, lim)
	}
	return newCgroup1(path, lim)
}

// reapStaleCgroups removes step cgroups left by kiln processes that no longer exist.
// Only empty cgroups can be removed (rmdir fails otherwise), and a cgroup whose kiln is
// alive is never touched, so this cannot race with a running step.
func reapStaleCgroups() {
	parent := strings.TrimPrefix(cgroupParent, "/")
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent + "/*")
	v2, _ := filepath.Glob("/sys/fs/cgroup/" + parent + "/*")
	for _, d := range append(dirs, v2...) {
		pidStr, _, ok := strings.Cut(filepath.Base(d), "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			continue // alive, or not ours to judge
		}
		_ = os.Remove(d)
	}
}

// deviceRules are Docker's default device cgroup rules: anything may be created
// with mknod, but only the harmless nodes kiln puts in /dev (and ptys) can be
// opened, so CAP_MKNOD does not give a step the host's disks.
func deviceRules() []specs.LinuxDeviceCgroup {
	i := func(v int64) *int64 { return &v }
	rule := func(typ string, major, minor *int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: major, Minor: minor, Access: access}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		rule("c", nil, nil, "m"),
		rule("b", nil, nil, "m"),
		rule("c", i(1), i(3), "rwm"),    // null
		rule("c", i(1), i(5), "rwm"),    // zero
		rule("c", i(1), i(7), "rwm"),    // full
		rule("c", i(1), i(8), "rwm"),    // random
		rule("c", i(1), i(9), "rwm"),    // urandom
		rule("c", i(5), i(0), "rwm"),    // tty
		rule("c", i(5), i(1), "rwm"),    // console
		rule("c", i(5), i(2), "rwm"),    // ptmx
		rule("c", i(136), nil, "rwm"),   // pts
		rule("c", i(10), i(200), "rwm"), // tun
	}
}

func pidsLimit(lim Limits) int64 {
	if lim.Pids > 0 {
		return lim.Pids
	}
	return defaultPids
}

// cgroupV1 is a step's cgroup on a legacy or hybrid host.
type cgroupV1 struct {
	cg     cgroup1.Cgroup
	memory string // the step's directory in the memory hierarchy, "" if absent
	pids   string // ... in the pids hierarchy
}

func newCgroup1(path string, lim Limits) (stepCgroup, error) {
	pids := pidsLimit(lim)
	res := &specs.LinuxResources{
		Devices: deviceRules(),
		Pids:    &specs.LinuxPids{Limit: &pids},
	}
	if lim.MemoryBytes > 0 {
		// memsw equal to the limit: swap must not stretch the limit. OptionalSwap
		// below skips it when the kernel does not account swap.
		m := lim.MemoryBytes
		res.Memory = &specs.LinuxMemory{Limit: &m, Swap: &m}
	}
	if lim.CPUs > 0 {
		q, p := cpuQuota(lim.CPUs), uint64(cpuPeriod)
		res.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(path), res, cgroup1.WithHierarchy(hierarchyV1))
	if err != nil {
		// New leaves the directories it made before the failing controller.
		if subs, herr := hierarchyV1(); herr == nil {
			for _, s := range subs {
				if p, ok := s.(interface{ Path(string) string }); ok {
					_ = os.Remove(p.Path(path))
				}
			}
		}
		return nil, fmt.Errorf("create cgroup %s: %w", path, err)
	}
	c := &cgroupV1{cg: cg}
	for _, s := range cg.Subsystems() {
		p, ok := s.(interface{ Path(string) string })
		if !ok {
			continue
		}
		switch s.Name() {
		case cgroup1.Memory:
			c.memory = p.Path(path)
		case cgroup1.Pids:
			c.pids = p.Path(path)
		}
	}
	return c, nil
}

// hierarchyV1 is the v1 controllers a step needs: memory (with a controller that
// tolerates a kernel without swap accounting), cpu, pids, devices, and freezer to
// stop a fork loop while killing it. The others (cpuset, blkio, the named systemd
// hierarchy...) are left to kiln's own cgroups: every cgroup created and removed
// costs a mkdir and an rmdir per step, and moving a task between cpusets is slow.
func hierarchyV1() ([]cgroup1.Subsystem, error) {
	subs, err := cgroup1.Default()
	if err != nil {
		return nil, err
	}
	var out []cgroup1.Subsystem
	for _, s := range subs {
		switch s.Name() {
		case cgroup1.Memory:
			p, ok := s.(interface{ Path(string) string })
			if !ok {
				return nil, fmt.Errorf("cgroup memory controller has no path")
			}
			out = append(out, cgroup1.NewMemory(filepath.Dir(p.Path("/")), cgroup1.OptionalSwap()))
		case cgroup1.Cpu, cgroup1.Pids, cgroup1.Devices, cgroup1.Freezer:
			out = append(out, s)
		}
	}
	return out, nil
}

func (c *cgroupV1) add(pid int) error {
	if err := c.cg.Add(cgroup1.Process{Pid: pid}); err != nil {
		return fmt.Errorf("add pid %d to cgroup: %w", pid, err)
	}
	return nil
}

func (c *cgroupV1) killAll() error {
	subs := c.cg.Subsystems()
	if len(subs) == 0 {
		return nil
	}
	name := subs[0].Name()
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs, err := c.cg.Processes(name, true)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("list cgroup processes: %w", err)
		}
		if len(procs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup still holds %d processes after SIGKILL", len(procs))
		}
		// Freezing first stops a fork loop from outrunning the kills; it is rare
		// that anything is left at all, since the pid namespace died with its init.
		frozen := c.cg.Freeze() == nil
		for _, p := range procs {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
		if frozen {
			_ = c.cg.Thaw()
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *cgroupV1) events() (bool, bool) {
	oom, pids := false, false
	if c.memory != "" {
		oom = readKey(filepath.Join(c.memory, "memory.oom_control"), "oom_kill") > 0
	}
	if c.pids != "" {
		pids = readKey(filepath.Join(c.pids, "pids.events"), "max") > 0
	}
	return oom, pids
}

func (c *cgroupV1) delete() error {
	return retryDelete(c.cg.Delete)
}

// cgroupV2 is a step's cgroup on a unified host.
type cgroupV2 struct {
	m    *cgroup2.Manager
	path string
}

const unifiedRoot = "/sys/fs/cgroup"

func newCgroup2(path string, lim Limits) (stepCgroup, error) {
	res := &cgroup2.Resources{
		Devices: deviceRules(),
		Pids:    &cgroup2.Pids{Max: pidsLimit(lim)},
	}
	if lim.MemoryBytes > 0 {
		m, zero := lim.MemoryBytes, int64(0)
		res.Memory = &cgroup2.Memory{Max: &m, Swap: &zero}
	}
	if lim.CPUs > 0 {
		q, p := cpuQuota(lim.CPUs), uint64(cpuPeriod)
		res.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(&q, &p)}
	}
	m, err := cgroup2.NewManager(unifiedRoot, path, res)
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", path, err)
	}
	return &cgroupV2{m: m, path: filepath.Join(unifiedRoot, path)}, nil
}

func (c *cgroupV2) add(pid int) error {
	if err := c.m.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("add pid %d to cgroup: %w", pid, err)
	}
	return nil
}

func (c *cgroupV2) killAll() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs, err := c.m.Procs(true)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("list cgroup processes: %w", err)
		}
		if len(procs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup still holds %d processes after SIGKILL", len(procs))
		}
		if err := c.m.Kill(); err != nil {
			return fmt.Errorf("kill cgroup: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *cgroupV2) events() (bool, bool) {
	return readKey(filepath.Join(c.path, "memory.events"), "oom_kill") > 0,
		readKey(filepath.Join(c.path, "pids.events"), "max") > 0
}

func (c *cgroupV2) delete() error {
	return retryDelete(c.m.Delete)
}

// retryDelete retries a cgroup removal for a moment: the last exiting processes
// may still be listed right after they were reaped.
func retryDelete(del func() error) error {
	var err error
	for i := 0; i < 100; i++ {
		if err = del(); err == nil {
			return nil
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
	return fmt.Errorf("delete cgroup: %w", err)
}

func cpuQuota(cpus float64) int64 {
	q := int64(cpus * cpuPeriod)
	if q < 1000 { // the kernel's minimum quota is 1ms
		q = 1000
	}
	return q
}

// readKey returns the value of "key N" in a flat-keyed cgroup file, 0 when absent.
func readKey(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		k, v, ok := bytes.Cut(s.Bytes(), []byte(" "))
		if ok && string(k) == key {
			n, _ := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			return n
		}
	}
	return 0
}
