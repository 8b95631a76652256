package main

// Pairs of the differential cache harness: FROM, base images and their tags, ONBUILD.
//
// The "repointed-tag" pairs push another image under the base's tag between A and B
// and build without --pull (DESIGN.md: tags are resolved at every build); the
// "pulled-tag" ones build with --pull, to check that a new base's layers and config
// reach the steps.

// pull re-resolves the base's tag.
var pull = []string{"--pull"}

var basePairs = []cachePair{
	{
		name: "from/repointed-tag-new-layer", sample: true,
		df:   "FROM {base}\nRUN ls /etc > /etc-list\n",
		base: "plain", baseB: "layer",
	},
	{
		name: "from/pulled-tag-new-layer",
		df:   "FROM {base}\nRUN ls /etc > /etc-list\n",
		base: "plain", baseB: "layer", argsA: []string{"--pull"},
	},
	{
		name: "from/repointed-tag-no-run",
		df:   "FROM {base}\nCOPY a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		base: "plain", baseB: "layer",
	},
	{
		name: "from/pulled-tag-same-path-new-content",
		df:   "FROM {base}\nRUN cat /etc/variant.txt > /v\n",
		base: "layer", baseB: "layer2",
		argsA: pull,
	},
	{
		name: "from/pulled-tag-config-env",
		df:   "FROM {base}\nRUN echo \"foo=$FOO\" > /foo\n",
		base: "env", baseB: "env2",
		argsA: pull,
	},
	{
		name: "from/pulled-tag-config-user",
		df:   "FROM {base}\nRUN id > /tmp/id\n",
		base: "plain", baseB: "user",
		argsA: pull,
	},
	{
		name: "from/pulled-tag-config-workdir",
		df:   "FROM {base}\nRUN pwd > /tmp/pwd\n",
		base: "plain", baseB: "workdir",
		argsA: pull,
	},
	{
		name: "from/pulled-tag-config-cmd-only",
		df:   "FROM {base}\nLABEL x=1\n",
		base: "plain", baseB: "cmd",
		argsA: pull,
	},
	{
		name: "from/pulled-tag-config-entrypoint-only",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		base: "plain", baseB: "entrypoint",
		argsA: pull,
	},
	{
		name: "from/pulled-tag-config-shell",
		df:   "FROM {base}\nRUN echo \"$0\" > /zero\n",
		base: "plain", baseB: "shell",
		argsA: pull,
	},
	{
		name: "from/pulled-tag-config-labels",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		base: "label", baseB: "label2",
		argsA: pull,
	},
	{
		name: "from/pulled-tag-config-stopsignal",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		base: "plain", baseB: "stopsignal",
		argsA: pull,
	},
	{
		name: "from/repointed-tag-onbuild",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		base: "onbuild", baseB: "onbuild2",
	},
	{
		name: "from/pulled-tag-onbuild-added",
		df:   "FROM {base}\nCOPY a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		base: "plain", baseB: "onbuild",
		argsA: pull,
	},
	{
		name: "from/pulled-tag-passwd-chown",
		df:   "FROM {base}\nCOPY --chown=app a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		base: "plain", baseB: "passwd",
		argsA: pull,
	},
	{
		name: "from/pulled-tag-copy-link",
		df:   "FROM {base}\nCOPY --link a.txt /a.txt\nRUN cat /etc/variant.txt /a.txt > /both 2>&1 || true\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		base: "layer", baseB: "layer2",
		hit:   []string{"COPY --link"},
		argsA: pull,
	},
	{
		name: "from/repointed-tag-in-copy-from",
		df:   "FROM {host}/busybox:plain\nCOPY --from={base} /etc/ /base-etc/\n",
		base: "plain", baseB: "layer",
	},
	{
		name: "from/repointed-tag-in-bind-from",
		df:   "FROM {host}/busybox:plain\nRUN --mount=type=bind,from={base},target=/b ls /b/etc > /etc-list\n",
		base: "plain", baseB: "layer",
	},
	{
		name: "from/repointed-tag-unused-stage",
		df:   "FROM {base} AS unused\nRUN echo unused > /u\nFROM {host}/busybox:plain\nRUN echo final > /f\n",
		base: "plain", baseB: "layer",
		hit: []string{"RUN echo final"},
	},
	{
		name: "from/tag-vs-digest-same-image",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		dfB:  "FROM {host}/busybox@{digest:plain}\nRUN echo hi > /hi\n",
		hit:  []string{"*"},
	},
	{
		name: "from/two-tags-same-image",
		df:   "FROM {host}/busybox:plain\nRUN echo hi > /hi\n",
		dfB:  "FROM {host}/busybox:plain2\nRUN echo hi > /hi\n",
		hit:  []string{"*"},
	},
	{
		name: "from/two-tags-other-image",
		df:   "FROM {host}/busybox:layer\nRUN cat /etc/variant.txt > /v\n",
		dfB:  "FROM {host}/busybox:layer2\nRUN cat /etc/variant.txt > /v\n",
	},
	{
		name:  "from/arg-in-tag",
		df:    "# variants {host}/busybox:layer {host}/busybox:layer2\nARG TAG=layer\nFROM {host}/busybox:${TAG}\nRUN cat /etc/variant.txt > /v\n",
		argsB: []string{"--build-arg", "TAG=layer2"},
	},
	{
		name: "from/stage-renamed",
		df:   "FROM {base} AS one\nRUN echo x > /x\nFROM one\nRUN cat /x > /y\n",
		dfB:  "FROM {base} AS two\nRUN echo x > /x\nFROM two\nRUN cat /x > /y\n",
		hit:  []string{"*"},
	},
	{
		// Two stages of one name: --from reads the last, and a change to the first
		// reaches only the stage that builds on it.
		name: "from/duplicate-stage-name",
		df: "FROM {base} AS dup\nCOPY a.txt /which\nFROM dup AS mid\nRUN cat /which > /mid\n" +
			"FROM {base} AS dup\nCOPY b.txt /which\nFROM {base}\nCOPY --from=mid /mid /mid\nCOPY --from=dup /which /which\n",
		ctx: map[string]string{"a.txt": "a\n", "b.txt": "b\n"},
		mut: []ctxMut{{"write", "a.txt", "changed\n"}},
	},
	{
		name: "from/platform-flag-of-host",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		dfB:  "FROM --platform=$BUILDPLATFORM {base}\nRUN echo hi > /hi\n",
		hit:  []string{"*"},
	},
	{
		name: "from/scratch-copy",
		df:   "FROM scratch\nCOPY a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"write", "a.txt", "b\n"}},
	},
	{
		name:  "from/stage-base-content",
		df:    "FROM {base} AS s\nARG V=1\nRUN echo $V > /v\nFROM s\nRUN cat /v > /w\n",
		argsB: []string{"--build-arg", "V=2"},
	},
	{
		name: "onbuild/stage-trigger-changed",
		df:   "FROM {base} AS s\nONBUILD RUN echo one > /onbuild.txt\nFROM s\nRUN echo after > /after\n",
		dfB:  "FROM {base} AS s\nONBUILD RUN echo two > /onbuild.txt\nFROM s\nRUN echo after > /after\n",
	},
	{
		name: "onbuild/trigger-copy-content",
		df:   "FROM {base} AS s\nONBUILD COPY a.txt /a.txt\nFROM s\nRUN cat /a.txt > /b\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"write", "a.txt", "changed\n"}},
	},
	{
		name: "onbuild/final-config",
		df:   "FROM {base}\nONBUILD RUN echo one\n",
		dfB:  "FROM {base}\nONBUILD RUN echo two\n",
	},
	{
		name: "onbuild/base-trigger-unchanged",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		base: "onbuild", baseB: "onbuild",
		mut: []ctxMut{{"write", "unused.txt", "x\n"}},
		hit: []string{"*"},
	},
}
