package main

// Pairs of the differential cache harness: COPY and its flags (--from, --chown,
// --chmod, --link, --parents, --exclude), sources and destinations.

var copyPairs = []cachePair{
	{
		// Two matches of a wildcard holding links of one inode are two copies
		// (BuildKit v0.32.2); kiln linked across them, to a path being written
		// (A failed) or one a later match had replaced (b got d2/a's content).
		name: "copy/wildcard-matches-share-an-inode",
		df:   "FROM {base}\nCOPY d* /c1/\nCOPY * /c2/\n",
		ctx:  map[string]string{"d1/a": "one\n", "d2/a": "two\n", "d3/b|=>": "d1/a"},
		mut:  []ctxMut{{"write", "d2/a", "three\n"}},
		want: map[string]string{"/c1/a": "three\n", "/c1/b": "one\n"},
	},
	{
		name: "copy/content", sample: true,
		df:  "FROM {base}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n",
		ctx: map[string]string{"a.txt": "a\n"},
		mut: []ctxMut{{"write", "a.txt", "changed\n"}},
	},
	{
		name: "copy/touch-same-content", sample: true,
		mtimesNotKeyed: []string{},
		df:             "FROM {base}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n",
		ctx:            map[string]string{"a.txt": "a\n"},
		mut:            []ctxMut{{"touch", "a.txt", "2022-02-02T02:02:02.5Z"}},
		hit:            []string{"*"},
	},
	{
		name: "copy/touch-nanoseconds-only",
		df:   "FROM {base}\nCOPY a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"touch", "a.txt", "+1ns"}},
	},
	{
		name: "copy/chmod-of-source",
		df:   "FROM {base}\nCOPY a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"chmod", "a.txt", "0755"}},
	},
	{
		name: "copy/chmod-flag-755-vs-0755", sample: true,
		df:  "FROM {base}\nCOPY --chmod=755 a.txt /a.txt\nRUN stat -c %a /a.txt > /mode\n",
		dfB: "FROM {base}\nCOPY --chmod=0755 a.txt /a.txt\nRUN stat -c %a /a.txt > /mode\n",
		ctx: map[string]string{"a.txt": "a\n"},
		hit: []string{"*"},
	},
	{
		name: "copy/chmod-flag-changed",
		df:   "FROM {base}\nCOPY --chmod=755 a.txt /a.txt\n",
		dfB:  "FROM {base}\nCOPY --chmod=700 a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "copy/chmod-flag-on-dir",
		df:   "FROM {base}\nCOPY --chmod=755 d/ /d/\n",
		dfB:  "FROM {base}\nCOPY --chmod=700 d/ /d/\n",
		ctx:  map[string]string{"d/x": "x\n", "d/sub/y": "y\n"},
	},
	{
		name: "copy/chown-name-vs-uid",
		df:   "FROM {base}\nCOPY --chown=app a.txt /a.txt\n",
		dfB:  "FROM {base}\nCOPY --chown=1000 a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "copy/chown-changed",
		df:   "FROM {base}\nCOPY --chown=app a.txt /a.txt\n",
		dfB:  "FROM {base}\nCOPY --chown=nobody a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "copy/chown-group-changed",
		df:   "FROM {base}\nCOPY --chown=app:app a.txt /a.txt\n",
		dfB:  "FROM {base}\nCOPY --chown=app:root a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "copy/chown-after-passwd-edit",
		df:   "FROM {base}\nRUN sed -i 's/app:x:1000:1000/app:x:1000:1000/' /etc/passwd\nCOPY --chown=app a.txt /a.txt\n",
		dfB:  "FROM {base}\nRUN sed -i 's/app:x:1000:1000/app:x:3000:3000/' /etc/passwd\nCOPY --chown=app a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "copy/source-owner-in-context",
		df:   "FROM {base}\nCOPY a.txt /a.txt\nRUN stat -c %u:%g /a.txt > /owner\n",
		ctx:  map[string]string{"a.txt|1234:1234": "a\n"},
		mut:  []ctxMut{{"chown", "a.txt", "4321:4321"}},
		want: map[string]string{"/owner": "0:0\n"},
	},
	{
		name:  "copy/from-stage-content",
		df:    "FROM {base} AS s\nARG V=1\nRUN echo $V > /o\nFROM {base}\nCOPY --from=s /o /o\n",
		argsB: []string{"--build-arg", "V=2"},
	},
	{
		name: "copy/from-index-vs-name", sample: true,
		df:  "FROM {base} AS s\nRUN echo s > /o\nFROM {base}\nCOPY --from=0 /o /o\n",
		dfB: "FROM {base} AS s\nRUN echo s > /o\nFROM {base}\nCOPY --from=s /o /o\n",
		hit: []string{"*"},
	},
	{
		name: "copy/from-stage-outside-source-changed", sample: true,
		df: "FROM {base} AS s\nRUN mkdir /o && echo kept > /o/kept\nARG V=1\nRUN echo $V > /elsewhere\n" +
			"FROM {base}\nCOPY --from=s /o/ /o/\nRUN cat /o/kept > /seen\n",
		argsB: []string{"--build-arg", "V=2"},
		hit:   []string{"COPY --from=s", "RUN cat /o/kept"},
	},
	{
		name: "copy/from-stage-file-mode-changed",
		df:   "FROM {base} AS s\nRUN echo x > /o && chmod 600 /o\nFROM {base}\nCOPY --from=s /o /o\n",
		dfB:  "FROM {base} AS s\nRUN echo x > /o && chmod 644 /o\nFROM {base}\nCOPY --from=s /o /o\n",
	},
	{
		name: "copy/from-stage-with-chown",
		df:   "FROM {base} AS s\nRUN echo x > /o\nFROM {base}\nCOPY --from=s --chown=app /o /o\n",
		dfB:  "FROM {base} AS s\nRUN echo x > /o\nFROM {base}\nCOPY --from=s --chown=nobody /o /o\n",
	},
	{
		name: "copy/from-image",
		df:   "FROM {host}/busybox:plain\nCOPY --from={host}/busybox:layer /etc/variant.txt /v\n",
		dfB:  "FROM {host}/busybox:plain\nCOPY --from={host}/busybox:layer2 /etc/variant.txt /v\n",
	},
	{
		name: "copy/dir-file-added",
		df:   "FROM {base}\nCOPY src/ /src/\n",
		ctx:  map[string]string{"src/a": "a\n"},
		mut:  []ctxMut{{"write", "src/b", "b\n"}},
	},
	{
		name: "copy/dir-file-removed",
		df:   "FROM {base}\nCOPY src/ /src/\n",
		ctx:  map[string]string{"src/a": "a\n", "src/b": "b\n"},
		mut:  []ctxMut{{"rm", "src/b", ""}},
	},
	{
		name: "copy/dir-empty-subdir-added",
		df:   "FROM {base}\nCOPY src/ /src/\n",
		ctx:  map[string]string{"src/a": "a\n"},
		mut:  []ctxMut{{"mkdir", "src/empty", ""}},
	},
	{
		name: "copy/dir-file-renamed",
		df:   "FROM {base}\nCOPY src/ /src/\n",
		ctx:  map[string]string{"src/a": "a\n"},
		mut:  []ctxMut{{"mv", "src/a", "src/b"}},
	},
	{
		name: "copy/dir-mode",
		df:   "FROM {base}\nCOPY src/ /src/\nCOPY src /src2\n",
		ctx:  map[string]string{"src/sub/a": "a\n"},
		mut:  []ctxMut{{"chmod", "src/sub", "0700"}},
	},
	{
		name: "copy/wildcard-match-added",
		df:   "FROM {base}\nCOPY *.txt /d/\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"write", "b.txt", "b\n"}},
	},
	{
		name: "copy/wildcard-non-match-added",
		df:   "FROM {base}\nCOPY *.txt /d/\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"write", "b.md", "b\n"}},
		hit:  []string{"*"},
	},
	{
		name: "copy/symlink-target-changed",
		df:   "FROM {base}\nCOPY l /l\nCOPY d/ /d/\n",
		ctx:  map[string]string{"a.txt": "a\n", "b.txt": "b\n", "l|->": "a.txt", "d/l|->": "../a.txt"},
		mut:  []ctxMut{{"symlink", "l", "b.txt"}, {"symlink", "d/l", "../b.txt"}},
	},
	{
		name: "copy/symlink-replaced-by-file",
		df:   "FROM {base}\nCOPY d/ /d/\n",
		ctx:  map[string]string{"d/a.txt": "a\n", "d/l|->": "a.txt"},
		mut:  []ctxMut{{"rm", "d/l", ""}, {"write", "d/l", "a\n"}},
	},
	{
		name: "copy/hard-link-broken",
		df:   "FROM {base}\nCOPY d/ /d/\n",
		ctx:  map[string]string{"d/a.txt": "a\n", "d/h.txt|=>": "d/a.txt"},
		mut:  []ctxMut{{"rm", "d/h.txt", ""}, {"write", "d/h.txt", "a\n"}},
	},
	{
		name: "copy/hard-link-made",
		df:   "FROM {base}\nCOPY d/ /d/\n",
		ctx:  map[string]string{"d/a.txt": "a\n", "d/h.txt": "a\n"},
		mut:  []ctxMut{{"hardlink", "d/h.txt", "d/a.txt"}},
	},
	{
		name: "copy/xattr-added",
		df:   "FROM {base}\nCOPY a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"xattr", "a.txt", "user.kiln=1"}},
	},
	{
		name: "copy/setuid-bit",
		df:   "FROM {base}\nCOPY a.sh /a.sh\n",
		ctx:  map[string]string{"a.sh|0755": "#!/bin/sh\n"},
		mut:  []ctxMut{{"chmod", "a.sh", "4755"}},
	},
	{
		name: "copy/link-vs-plain",
		df:   "FROM {base}\nCOPY a.txt /a.txt\n",
		dfB:  "FROM {base}\nCOPY --link a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "copy/link-content",
		df:   "FROM {base}\nCOPY --link a.txt /a.txt\nRUN cat /a.txt > /b\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"write", "a.txt", "changed\n"}},
	},
	{
		name:  "copy/link-over-changed-parent",
		df:    "FROM {base}\nARG V=1\nRUN echo $V > /v\nCOPY --link a.txt /a.txt\n",
		ctx:   map[string]string{"a.txt": "a\n"},
		argsB: []string{"--build-arg", "V=2"},
		hit:   []string{"COPY --link"},
	},
	{
		name: "copy/link-dest-dir-from-parent",
		df:   "FROM {base}\nRUN mkdir -p /d && chmod 700 /d\nCOPY --link a.txt /d/a.txt\n",
		dfB:  "FROM {base}\nRUN mkdir -p /d && chmod 755 /d\nCOPY --link a.txt /d/a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "copy/parents-file-added",
		df:   "FROM {base}\nCOPY --parents a/*/f.txt /dst/\n",
		ctx:  map[string]string{"a/x/f.txt": "x\n"},
		mut:  []ctxMut{{"write", "a/y/f.txt", "y\n"}},
	},
	{
		name: "copy/parents-vs-plain",
		df:   "FROM {base}\nCOPY a/x/f.txt /dst/\n",
		dfB:  "FROM {base}\nCOPY --parents a/x/f.txt /dst/\n",
		ctx:  map[string]string{"a/x/f.txt": "x\n"},
	},
	{
		name: "copy/exclude-excluded-file-changed",
		df:   "FROM {base}\nCOPY --exclude=*.log . /app/\n",
		ctx:  map[string]string{"a.txt": "a\n", "debug.log": "one\n"},
		mut:  []ctxMut{{"write", "debug.log", "two, longer\n"}},
		hit:  []string{"COPY --exclude"},
	},
	{
		name: "copy/exclude-kept-file-changed",
		df:   "FROM {base}\nCOPY --exclude=*.log . /app/\n",
		ctx:  map[string]string{"a.txt": "a\n", "debug.log": "one\n"},
		mut:  []ctxMut{{"write", "a.txt", "changed\n"}},
	},
	{
		name: "copy/exclude-pattern-changed",
		df:   "FROM {base}\nCOPY --exclude=*.log . /app/\n",
		dfB:  "FROM {base}\nCOPY --exclude=*.tmp . /app/\n",
		ctx:  map[string]string{"a.txt": "a\n", "debug.log": "one\n", "x.tmp": "t\n"},
	},
	{
		name: "copy/heredoc-content",
		df:   "FROM {base}\nCOPY <<EOF /f.txt\none\nEOF\n",
		dfB:  "FROM {base}\nCOPY <<EOF /f.txt\ntwo\nEOF\n",
	},
	{
		name: "copy/heredoc-chmod",
		df:   "FROM {base}\nCOPY --chmod=644 <<EOF /f.sh\necho\nEOF\n",
		dfB:  "FROM {base}\nCOPY --chmod=755 <<EOF /f.sh\necho\nEOF\n",
	},
	{
		name: "copy/dest-trailing-slash",
		df:   "FROM {base}\nCOPY a.txt /d\n",
		dfB:  "FROM {base}\nCOPY a.txt /d/\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "copy/sources-order",
		df:   "FROM {base}\nCOPY a.txt b.txt /d/\n",
		dfB:  "FROM {base}\nCOPY b.txt a.txt /d/\n",
		ctx:  map[string]string{"a.txt": "a\n", "b.txt": "b\n"},
	},
	{
		name: "copy/same-basename-other-source",
		df:   "FROM {base}\nCOPY x/f.txt /f.txt\n",
		dfB:  "FROM {base}\nCOPY y/f.txt /f.txt\n",
		ctx:  map[string]string{"x/f.txt": "same\n", "y/f.txt": "same\n"},
	},
	{
		name:  "copy/arg-in-source",
		df:    "FROM {base}\nARG F=a.txt\nCOPY $F /f\n",
		ctx:   map[string]string{"a.txt": "a\n", "b.txt": "b\n"},
		argsB: []string{"--build-arg", "F=b.txt"},
	},
	{
		name: "copy/relative-dest-in-workdir",
		df:   "FROM {base}\nWORKDIR /w\nCOPY a.txt .\n",
		dfB:  "FROM {base}\nWORKDIR /v\nCOPY a.txt .\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "copy/large-file-middle-changed",
		df:   "FROM {base}\nCOPY big.bin /big.bin\n",
		ctx:  map[string]string{"big.bin": "@repeat:3145728:0123456789abcdef"},
		mut:  []ctxMut{{"keep", "big.bin", "@repeat:3145728:0123456789abcdeF"}},
	},
	{
		name:  "copy/named-context-content",
		df:    "FROM {base}\nCOPY --from=other x.txt /x.txt\n",
		ctx:   map[string]string{"../other/x.txt": "x\n"},
		argsA: []string{"--build-context", "other={tmp}/other"},
		mut:   []ctxMut{{"write", "../other/x.txt", "changed\n"}},
	},
	{
		name:  "copy/named-context-other-file-changed",
		df:    "FROM {base}\nCOPY --from=other x.txt /x.txt\n",
		ctx:   map[string]string{"../other/x.txt": "x\n", "../other/y.txt": "y\n"},
		argsA: []string{"--build-context", "other={tmp}/other"},
		mut:   []ctxMut{{"write", "../other/y.txt", "changed\n"}},
		hit:   []string{"*"},
	},
}

// pendingPairs: A ends in a COPY, which kiln makes straight into a layer without a
// snapshot; B adds a step that reads what it copied, so B after A gets the COPY's
// files back from its layer while B on a fresh root copies them. What the later step
// sees must be the same.
var pendingPairs = []cachePair{
	{
		name: "pending/then-run-reads-mtime", sample: true,
		df:  "FROM {base}\nCOPY a.txt /a.txt\n",
		dfB: "FROM {base}\nCOPY a.txt /a.txt\nRUN stat -c '%y' /a.txt > /a.stat\n",
		ctx: map[string]string{"a.txt": "a\n"},
		hit: []string{"COPY a.txt"},
	},
	{
		name: "pending/then-run-lists-tree",
		df:   "FROM {base}\nCOPY src/ /src/\n",
		dfB:  "FROM {base}\nCOPY src/ /src/\nRUN find /src -mindepth 1 -exec stat -c '%n %y %a %u %g %h' {} + | sort > /ls\n",
		ctx:  map[string]string{"src/a|0755": "a\n", "src/sub/b": "b\n", "src/l|->": "a", "src/empty/": ""},
		hit:  []string{"COPY src/"},
	},
	{
		name: "pending/then-run-counts-links",
		df:   "FROM {base}\nCOPY d/ /d/\n",
		dfB:  "FROM {base}\nCOPY d/ /d/\nRUN stat -c '%h %i' /d/a /d/b | sort -u | wc -l > /inodes\n",
		ctx:  map[string]string{"d/a": "x\n", "d/b|=>": "d/a"},
		hit:  []string{"COPY d/"},
	},
	{
		name: "pending/then-run-reads-owner",
		df:   "FROM {base}\nCOPY --chown=app:app --chmod=640 a.txt /a.txt\n",
		dfB:  "FROM {base}\nCOPY --chown=app:app --chmod=640 a.txt /a.txt\nRUN stat -c '%u %g %a' /a.txt > /st\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		hit:  []string{"COPY --chown"},
	},
	{
		name: "pending/then-copied-from-stage",
		df:   "FROM {base} AS s\nCOPY a.txt /a.txt\n",
		dfB:  "FROM {base} AS s\nCOPY a.txt /a.txt\nFROM {base}\nCOPY --from=s /a.txt /b.txt\nRUN stat -c '%y' /b.txt > /b.stat\n",
		ctx:  map[string]string{"a.txt|xattr:user.kiln=1": "a\n"},
		hit:  []string{"COPY a.txt"},
	},
	{
		name: "pending/then-dir-over-it",
		df:   "FROM {base}\nCOPY d/ /d/\n",
		dfB:  "FROM {base}\nCOPY d/ /d/\nCOPY e/ /d/\nRUN find /d -mindepth 1 -exec stat -c '%n %y %a %u %g %h' {} + | sort > /ls\n",
		ctx:  map[string]string{"d/x": "x\n", "d/sub/y": "y\n", "e/sub/z": "z\n"},
		hit:  []string{"COPY d/"},
	},
	{
		// Several sources onto a path that is no directory: each over the one before.
		name: "copy/several-sources-onto-one-path",
		df:   "FROM {base}\nCOPY a.txt b.txt /out\nRUN cat /out > /seen\n",
		ctx:  map[string]string{"a.txt": "a\n", "b.txt": "b\n"},
		mut:  []ctxMut{{"write", "b.txt", "changed\n"}},
	},
	{
		name: "copy/several-sources-onto-one-path-order",
		df:   "FROM {base}\nCOPY a.txt b.txt /out\n",
		dfB:  "FROM {base}\nCOPY b.txt a.txt /out\n",
		ctx:  map[string]string{"a.txt": "a\n", "b.txt": "b\n"},
	},
	{
		// A --chown name the image lacks is uid 0; the same COPY over an image that
		// has it is not the same step.
		name: "copy/chown-name-missing-then-in-image",
		df:   "FROM {base}\nCOPY --chown=svc a.txt /a.txt\nRUN stat -c '%u %g' /a.txt > /owner\n",
		dfB:  "FROM {base}\nRUN echo 'svc:x:3000:3000::/:/bin/sh' >> /etc/passwd\nCOPY --chown=svc a.txt /a.txt\nRUN stat -c '%u %g' /a.txt > /owner\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
}
