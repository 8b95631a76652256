package main

// Pairs of the differential cache harness: RUN --mount=type=bind|cache|tmpfs and
// their options. A RUN here observes its mount (owner, mode, what it holds) and
// writes what it saw into the image; it never leaves files in a cache mount that a
// later build would see, so that B on a fresh root must see the same.

var mountPairs = []cachePair{
	{
		name: "bind/context-content",
		df:   "FROM {base}\nRUN --mount=type=bind,target=/ctx cat /ctx/a.txt > /o\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"write", "a.txt", "changed\n"}},
	},
	{
		name: "bind/context-source-other-file-changed",
		df:   "FROM {base}\nRUN --mount=type=bind,source=sub,target=/sub cat /sub/a.txt > /o\n",
		ctx:  map[string]string{"sub/a.txt": "a\n", "other.txt": "x\n"},
		mut:  []ctxMut{{"write", "other.txt", "changed\n"}},
		hit:  []string{"*"},
	},
	{
		name: "bind/context-dockerignored-not-shown", sample: true,
		df:   "FROM {base}\nRUN --mount=type=bind,target=/ctx ls -A /ctx > /o; cat /ctx/secret.txt >> /o 2>/dev/null; true\n",
		ctx:  map[string]string{"a.txt": "a\n", "secret.txt": "s1\n", ".dockerignore": "secret.txt\n"},
		mut:  []ctxMut{{"write", "secret.txt", "s2\n"}},
		want: map[string]string{"/o": ".dockerignore\nDockerfile\na.txt\n"},
		hit:  []string{"*"},
	},
	{
		name: "bind/context-dockerignore-entry-added",
		df:   "FROM {base}\nRUN --mount=type=bind,target=/ctx ls -A /ctx > /o\n",
		ctx:  map[string]string{"a.txt": "a\n", "b.txt": "b\n", ".dockerignore": "*.log\n"},
		mut:  []ctxMut{{"append", ".dockerignore", "b.txt\n"}},
	},
	{
		name: "bind/context-owner-is-root", sample: true,
		df:   "FROM {base}\nRUN --mount=type=bind,target=/ctx stat -c %u:%g /ctx/a.txt /ctx/d > /o\n",
		ctx:  map[string]string{"a.txt|1234:1234": "a\n", "d/|1234:1234": ""},
		mut:  []ctxMut{{"chown", "a.txt", "4321:4321"}, {"chown", "d", "4321:4321"}},
		want: map[string]string{"/o": "0:0\n0:0\n"},
	},
	{
		name: "bind/context-mode",
		df:   "FROM {base}\nRUN --mount=type=bind,target=/ctx stat -c %a /ctx/a.txt > /o\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"chmod", "a.txt", "0600"}},
	},
	{
		name:           "bind/context-mtime",
		mtimesNotKeyed: []string{"/o"},
		df:             "FROM {base}\nRUN --mount=type=bind,target=/ctx stat -c %y /ctx/a.txt > /o\n",
		ctx:            map[string]string{"a.txt": "a\n"},
		mut:            []ctxMut{{"touch", "a.txt", "+250ms"}},
	},
	{
		name: "bind/context-symlink-target",
		df:   "FROM {base}\nRUN --mount=type=bind,target=/ctx readlink /ctx/l > /o\n",
		ctx:  map[string]string{"a.txt": "a\n", "b.txt": "b\n", "l|->": "a.txt"},
		mut:  []ctxMut{{"symlink", "l", "b.txt"}},
	},
	{
		name: "bind/context-hard-link",
		df:   "FROM {base}\nRUN --mount=type=bind,target=/ctx stat -c %h /ctx/a.txt > /o\n",
		ctx:  map[string]string{"a.txt": "a\n", "b.txt": "a\n"},
		mut:  []ctxMut{{"hardlink", "b.txt", "a.txt"}},
	},
	{
		name: "bind/from-stage-content", sample: true,
		df:    "FROM {base} AS s\nARG V=1\nRUN echo $V > /o\nFROM {base}\nRUN --mount=type=bind,from=s,target=/s cat /s/o > /seen\n",
		argsB: []string{"--build-arg", "V=2"},
	},
	{
		name: "bind/from-stage-outside-source",
		df: "FROM {base} AS s\nRUN mkdir /d && echo kept > /d/kept\nARG V=1\nRUN echo $V > /elsewhere\n" +
			"FROM {base}\nRUN --mount=type=bind,from=s,source=/d,target=/d cat /d/kept > /seen\n",
		argsB: []string{"--build-arg", "V=2"},
		hit:   []string{"cat /d/kept"},
	},
	{
		name: "bind/source-changed",
		df:   "FROM {base}\nRUN --mount=type=bind,source=a.txt,target=/m cat /m > /o\n",
		dfB:  "FROM {base}\nRUN --mount=type=bind,source=b.txt,target=/m cat /m > /o\n",
		ctx:  map[string]string{"a.txt": "a\n", "b.txt": "b\n"},
	},
	{
		name: "bind/target-changed",
		df:   "FROM {base}\nRUN --mount=type=bind,target=/m1 cat /m1/a.txt /m2/a.txt > /o 2>/dev/null; true\n",
		dfB:  "FROM {base}\nRUN --mount=type=bind,target=/m2 cat /m1/a.txt /m2/a.txt > /o 2>/dev/null; true\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "bind/ro-vs-rw",
		df:   "FROM {base}\nRUN --mount=type=bind,target=/ctx,ro (touch /ctx/probe && echo rw || echo ro) > /o 2>/dev/null\n",
		dfB:  "FROM {base}\nRUN --mount=type=bind,target=/ctx,rw (touch /ctx/probe && echo rw || echo ro) > /o 2>/dev/null\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "bind/from-changed",
		df:   "FROM {base} AS s1\nRUN echo one > /o\nFROM {base} AS s2\nRUN echo two > /o\nFROM {base}\nRUN --mount=type=bind,from=s1,target=/s cat /s/o > /seen\n",
		dfB:  "FROM {base} AS s1\nRUN echo one > /o\nFROM {base} AS s2\nRUN echo two > /o\nFROM {base}\nRUN --mount=type=bind,from=s2,target=/s cat /s/o > /seen\n",
	},
	{
		name: "cache/target-changed",
		df:   "FROM {base}\nRUN --mount=type=cache,target=/c1 grep -o ' /c[12] ' /proc/mounts > /o\n",
		dfB:  "FROM {base}\nRUN --mount=type=cache,target=/c2 grep -o ' /c[12] ' /proc/mounts > /o\n",
	},
	{
		name: "cache/uid-changed", sample: true,
		df:  "FROM {base}\nRUN --mount=type=cache,target=/c stat -c '%u %g %a' /c > /o\n",
		dfB: "FROM {base}\nRUN --mount=type=cache,target=/c,uid=1000 stat -c '%u %g %a' /c > /o\n",
	},
	{
		name: "cache/gid-changed",
		df:   "FROM {base}\nRUN --mount=type=cache,target=/c,gid=0 stat -c '%u %g %a' /c > /o\n",
		dfB:  "FROM {base}\nRUN --mount=type=cache,target=/c,gid=1000 stat -c '%u %g %a' /c > /o\n",
	},
	{
		name: "cache/mode-changed",
		df:   "FROM {base}\nRUN --mount=type=cache,target=/c,mode=0755 stat -c '%u %g %a' /c > /o\n",
		dfB:  "FROM {base}\nRUN --mount=type=cache,target=/c,mode=0700 stat -c '%u %g %a' /c > /o\n",
	},
	{
		name: "cache/ro-vs-rw",
		df:   "FROM {base}\nRUN --mount=type=cache,target=/c (touch /c/probe && rm /c/probe && echo rw || echo ro) > /o 2>/dev/null\n",
		dfB:  "FROM {base}\nRUN --mount=type=cache,target=/c,ro (touch /c/probe && rm /c/probe && echo rw || echo ro) > /o 2>/dev/null\n",
	},
	{
		name: "cache/id-changed",
		// As BuildKit, a cache mount's id is not in the key (nor its content, which
		// no key holds): the step is reused.
		df:  "FROM {base}\nRUN --mount=type=cache,id=a,target=/c echo ok > /o\n",
		dfB: "FROM {base}\nRUN --mount=type=cache,id=b,target=/c echo ok > /o\n",
		hit: []string{"*"},
	},
	{
		name: "cache/sharing-changed",
		df:   "FROM {base}\nRUN --mount=type=cache,target=/c,sharing=shared ls -A /c > /o\n",
		dfB:  "FROM {base}\nRUN --mount=type=cache,target=/c,sharing=locked ls -A /c > /o\n",
	},
	{
		name: "cache/sharing-private",
		df:   "FROM {base}\nRUN --mount=type=cache,target=/c,sharing=shared ls -A /c > /o\n",
		dfB:  "FROM {base}\nRUN --mount=type=cache,target=/c,sharing=private ls -A /c > /o\n",
	},
	{
		name: "cache/from-stage-content", sample: true,
		df: "FROM {base} AS s\nARG V=1\nRUN mkdir /d && echo $V > /d/x\n" +
			"FROM {base}\nRUN --mount=type=cache,target=/c,from=s,source=/d cat /c/x > /o\n",
		argsB: []string{"--build-arg", "V=2"},
	},
	{
		name: "cache/source-changed",
		df: "FROM {base} AS s\nRUN mkdir /d1 /d2 && echo one > /d1/x && echo two > /d2/x\n" +
			"FROM {base}\nRUN --mount=type=cache,target=/c,from=s,source=/d1 cat /c/x > /o\n",
		dfB: "FROM {base} AS s\nRUN mkdir /d1 /d2 && echo one > /d1/x && echo two > /d2/x\n" +
			"FROM {base}\nRUN --mount=type=cache,target=/c,from=s,source=/d2 cat /c/x > /o\n",
	},
	{
		name: "cache/from-changed",
		df: "FROM {base} AS s1\nRUN echo one > /x\nFROM {base} AS s2\nRUN echo two > /x\n" +
			"FROM {base}\nRUN --mount=type=cache,target=/c,from=s1 cat /c/x > /o\n",
		dfB: "FROM {base} AS s1\nRUN echo one > /x\nFROM {base} AS s2\nRUN echo two > /x\n" +
			"FROM {base}\nRUN --mount=type=cache,target=/c,from=s2 cat /c/x > /o\n",
	},
	{
		name:  "cache/content-not-in-image",
		df:    "FROM {base}\nARG V=1\nRUN --mount=type=cache,target=/c echo $V > /c/f && echo done > /o\n",
		argsB: []string{"--build-arg", "V=2"},
		want:  map[string]string{"/c/f": "<absent>"},
	},
	{
		name: "cache/relative-target-in-workdir",
		df:   "FROM {base}\nWORKDIR /w\nRUN --mount=type=cache,target=c,uid=1000 stat -c %u /w/c > /o\n",
		dfB:  "FROM {base}\nWORKDIR /v\nRUN --mount=type=cache,target=c,uid=1000 stat -c %u /w/c > /o 2>&1; true\n",
	},
	{
		name: "tmpfs/size-changed",
		df:   "FROM {base}\nRUN --mount=type=tmpfs,target=/t,size=1m df -k /t | tail -1 | awk '{print $2}' > /o\n",
		dfB:  "FROM {base}\nRUN --mount=type=tmpfs,target=/t,size=2m df -k /t | tail -1 | awk '{print $2}' > /o\n",
	},
	{
		name: "tmpfs/target-changed",
		df:   "FROM {base}\nRUN --mount=type=tmpfs,target=/t1 grep -o ' /t[12] ' /proc/mounts > /o\n",
		dfB:  "FROM {base}\nRUN --mount=type=tmpfs,target=/t2 grep -o ' /t[12] ' /proc/mounts > /o\n",
	},
	{
		name:  "tmpfs/content-not-in-image",
		df:    "FROM {base}\nARG V=1\nRUN --mount=type=tmpfs,target=/t echo $V > /t/f && echo done > /o\n",
		argsB: []string{"--build-arg", "V=2"},
		want:  map[string]string{"/t/f": "<absent>"},
	},
	{
		name: "tmpfs/vs-none",
		df:   "FROM {base}\nRUN mkdir -p /t && (grep -c ' /t ' /proc/mounts || true) > /o\n",
		dfB:  "FROM {base}\nRUN --mount=type=tmpfs,target=/t mkdir -p /t && (grep -c ' /t ' /proc/mounts || true) > /o\n",
	},
}
