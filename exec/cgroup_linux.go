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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/internal/lease"
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
	// dirs are the cgroup's directories: one per v1 hierarchy, or the v2 one.
	dirs() []string
}

// Step cgroups are kiln/step-<random>. A kiln killed with SIGKILL cannot delete its
// step's cgroup (its processes die with it, by Pdeathsig, but the empty dir stays), so
// each step holds its cgroup's lease (package lease: an flock on each of its dirs) from
// creation to deletion, and RemoveStaleCgroups, at the start of every build, removes the
// cgroups whose lease is free. Cgroups of kiln versions before leases are
// kiln/<pid>-<random>; they are removed once older than legacyCgroupAge.
const stepPrefix = "step-"

// stepSetupGrace is how long a new step cgroup may go without its lease: the time
// from its mkdir to the lease, which writes the limits in between.
const stepSetupGrace = time.Minute

// legacyCgroupAge is how old a pre-lease cgroup must be to be taken for a leftover. An
// rmdir of a cgroup that still has processes fails, so the age only guards the moments
// when a live pre-lease step's cgroup is empty: while it is set up and torn down.
const legacyCgroupAge = time.Hour

// newStepCgroup creates a step's cgroup with lim applied, in the v2 hierarchy when the
// host is unified, else in every v1 hierarchy, and leases it until delete.
func newStepCgroup(lim Limits) (stepCgroup, error) {
	for try := 0; ; try++ {
		var b [8]byte
		rand.Read(b[:])
		path := cgroupParent + "/" + stepPrefix + hex.EncodeToString(b[:])
		var cg stepCgroup
		var err error
		if cgroups.Mode() == cgroups.Unified {
			cg, err = newCgroup2(path, lim)
		} else {
			cg, err = newCgroup1(path, lim)
		}
		if err == nil {
			var leases []*lease.Lease
			if leases, err = leaseAll(cg.dirs()); err == nil {
				return &leasedCgroup{stepCgroup: cg, leases: leases}, nil
			}
			_ = cg.delete()
		}
		// A cleaner that found the new cgroup before its lease removes it: try again.
		if try < 3 && (errors.Is(err, lease.ErrHeld) || errors.Is(err, os.ErrNotExist)) {
			continue
		}
		return nil, err
	}
}

// leaseAll leases each of dirs once (v1 hierarchies mounted together, as cpu and
// cpuacct often are, name one dir twice).
func leaseAll(dirs []string) ([]*lease.Lease, error) {
	var leases []*lease.Lease
	var seen []os.FileInfo
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil {
			if slices.ContainsFunc(seen, func(o os.FileInfo) bool { return os.SameFile(o, fi) }) {
				continue
			}
			seen = append(seen, fi)
		}
		l, err := lease.Take(d)
		if err != nil {
			for _, l := range leases {
				l.Release()
			}
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		leases = append(leases, l)
	}
	return leases, nil
}

// leasedCgroup holds its cgroup's lease until the cgroup is deleted.
type leasedCgroup struct {
	stepCgroup
	leases []*lease.Lease
}

func (c *leasedCgroup) delete() error {
	err := c.stepCgroup.delete()
	for _, l := range c.leases {
		l.Release()
	}
	c.leases = nil
	return err
}

// removeStaleCgroups removes the step cgroups whose lease is free (their kiln is gone)
// and pre-lease ones older than legacyCgroupAge. A cgroup is removed only while its
// lease is held here, so never under a live step; rmdir fails on a cgroup that still has
// processes, so none is removed with something running in it.
func removeStaleCgroups() {
	parent := strings.TrimPrefix(cgroupParent, "/")
	dirs, _ := filepath.Glob(filepath.Join(unifiedRoot, "*", parent, "*"))
	v2, _ := filepath.Glob(filepath.Join(unifiedRoot, parent, "*"))
	for _, d := range append(dirs, v2...) {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() {
			continue
		}
		name := filepath.Base(d)
		if strings.HasPrefix(name, stepPrefix) {
			// A step's cgroup is created and its limits written before its lease
			// is taken: a young one with a free lease may be being set up by a live
			// kiln (removing it failed that step's write of pids.max with ENODEV).
			if time.Since(fi.ModTime()) < stepSetupGrace {
				continue
			}
			if l, err := lease.Take(d); err == nil {
				_ = os.Remove(d)
				l.Release()
			}
			continue
		}
		if isLegacyCgroup(name) && time.Since(fi.ModTime()) > legacyCgroupAge {
			_ = os.Remove(d)
		}
	}
}

// isLegacyCgroup reports whether name is "<pid>-<random>", a pre-lease step cgroup.
func isLegacyCgroup(name string) bool {
	pid, rest, ok := strings.Cut(name, "-")
	if !ok || rest == "" {
		return false
	}
	if _, err := strconv.Atoi(pid); err != nil {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
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
	memory string   // the step's directory in the memory hierarchy, "" if absent
	pids   string   // ... in the pids hierarchy
	paths  []string // ... in each hierarchy
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
		c.paths = append(c.paths, p.Path(path))
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
// tolerates a kernel without swap accounting), cpu, pids and devices. The others
// (cpuset, blkio, the named systemd hierarchy...) are left to kiln's own cgroups:
// every cgroup created and removed costs a mkdir and an rmdir per step, and moving a
// task between cpusets is slow. Nor is the freezer joined: moving a task into a v1
// freezer cgroup took 2-12 ms here, the largest part of a small RUN's start, and it
// has nothing to stop. The step is its own pid namespace, which the kernel empties
// (forks refused, every process killed and reaped) before its init's wait returns,
// so no fork loop outlives the init to be frozen.
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
		case cgroup1.Cpu, cgroup1.Pids, cgroup1.Devices:
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
		// Rarely anything at all: the pid namespace died with its init, and
		// none of its processes can fork any more.
		for _, p := range procs {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
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

func (c *cgroupV1) dirs() []string { return c.paths }

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

func (c *cgroupV2) dirs() []string { return []string{c.path} }

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
