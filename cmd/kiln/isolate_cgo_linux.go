//go:build linux && cgo

package main

// isolateEarly is exec.Isolate without the re-exec: root's `kiln build` enters its
// private mount namespace in a constructor that runs before the Go runtime starts
// its threads, while the process has one thread and unshare(CLONE_NEWNS) moves all
// of it (runc's nsexec does its namespace work the same way). The re-exec cost every
// build a second start of the kiln binary, about 10 ms of a 0.12 s warm W5.
//
// It only acts where the outcome is the one Isolate gives: `build` as the first
// argument, uid 0, and no _KILN_ marker in the environment (a kiln already isolated,
// in its user namespace, or started as a sandbox's init is left to the Go code).
// Anything else, a failed unshare included (root without CAP_SYS_ADMIN), leaves the
// process as it was and main isolates as before. A namespace that cannot be made
// private is left again (setns back to the host's); if even that fails the process
// exits before it can mount anything that would propagate to the host.

/*
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static int kiln_isolated_early;

__attribute__((constructor)) static void kiln_isolate_early(int argc, char **argv, char **envp) {
	if (argc < 2 || strcmp(argv[1], "build") != 0 || geteuid() != 0) {
		return;
	}
	for (char **e = envp; e != NULL && *e != NULL; e++) {
		if (strncmp(*e, "_KILN_", 6) == 0) {
			return;
		}
	}
	int host = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (host < 0) {
		return;
	}
	if (unshare(CLONE_NEWNS) != 0) {
		close(host);
		return;
	}
	if (mount("", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		if (setns(host, CLONE_NEWNS) != 0) {
			fprintf(stderr, "kiln: a new mount namespace could not be made private, nor left\n");
			_exit(125);
		}
		close(host);
		return;
	}
	close(host);
	kiln_isolated_early = 1;
}

static int kiln_isolated(void) { return kiln_isolated_early; }
*/
import "C"

// isolatedEarly reports whether the constructor put this process in its private
// mount namespace.
func isolatedEarly() bool { return C.kiln_isolated() != 0 }
