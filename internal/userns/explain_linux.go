package userns

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnmapped is wrapped by the errors of UnmappedID.
var ErrUnmapped = errors.New("id not mapped in kiln's user namespace")

// UnmappedID is the error for an operation that needed uid or gid id (which says
// which: "uid" or "gid") that this process's user namespace does not map: the
// kernel answers EINVAL to a chown or setuid to such an id. It says how to give the
// user subordinate ranges. It returns nil when id is mapped or kiln is not in a
// namespace of its own.
func UnmappedID(kind string, id uint32) error {
	if !InNamespace() {
		return nil
	}
	file := "/proc/self/uid_map"
	if kind == "gid" {
		file = "/proc/self/gid_map"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	m, err := ParseIDMap(string(b))
	if err != nil || Maps(m, id) {
		return nil
	}
	return fmt.Errorf("%w: %s %d (kiln maps %s); %s", ErrUnmapped, kind, id, Describe(m), AddRangesHint())
}

// Explain adds the hint of UnmappedID to err when err is the kernel's EINVAL for an
// id this namespace lacks (a chown while unpacking a layer or copying with
// --chown, a setgroups denied in a single-id namespace) and kiln runs in a single-id
// user namespace. Other errors are returned as they are.
func Explain(err error) error {
	if err == nil || !InNamespace() || errors.Is(err, ErrUnmapped) {
		return err
	}
	b, rerr := os.ReadFile("/proc/self/uid_map")
	if rerr != nil {
		return err
	}
	m, perr := ParseIDMap(string(b))
	if perr != nil || Size(m) > 1 {
		return err
	}
	msg := err.Error()
	idCall := strings.Contains(msg, "chown") || strings.Contains(msg, "chgrp") || strings.Contains(msg, "setgroups") || strings.Contains(msg, "setuid") || strings.Contains(msg, "setgid")
	// A RUN's own chown fails inside the step: only its output (in the message)
	// says so, as the kernel's EINVAL text.
	byKernel := errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || strings.Contains(msg, "Invalid argument")
	if idCall && byKernel {
		return fmt.Errorf("%w\nkiln runs in a user namespace that maps only uid and gid 0: files and steps owned by any other id cannot be made. %s", err, AddRangesHint())
	}
	return err
}

// AddRangesHint says how to give the user subordinate ids, or, for kiln as root of a
// container (Nested), the capabilities that let it map all the container's ids.
func AddRangesHint() string {
	if Current() == Nested {
		return "kiln, as root of a container without CAP_SETUID and CAP_SETGID, could map uid 0 alone: give the container the capabilities SETUID and SETGID (with SETFCAP) to map all its ids"
	}
	// Inside the namespace the user is root: only the environment still names it.
	name := "$USER"
	if v := os.Getenv("USER"); v != "" && v != "root" {
		name = v
	}
	return fmt.Sprintf("give %s subordinate ids in /etc/subuid and /etc/subgid (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s) and install newuidmap/newgidmap (Debian's uidmap package)", name, name)
}
