package main

// Pairs of the differential cache harness: ARG and --build-arg, --target,
// --no-cache(-filter), SOURCE_DATE_EPOCH, the output's compression, -f, --platform
// and changes to the Dockerfile that do not change any step.

var epoch = []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"}

var argPairs = []cachePair{
	{
		name: "arg/unused-build-arg", sample: true,
		df:    "FROM {base}\nARG USED\nRUN echo \"used=$USED\" > /used\nCOPY a.txt /a.txt\n",
		ctx:   map[string]string{"a.txt": "a\n"},
		argsB: []string{"--build-arg", "UNUSED=1"},
		hit:   []string{"*"},
	},
	{
		name:  "arg/used-build-arg",
		df:    "FROM {base}\nARG USED\nRUN echo \"used=$USED\" > /used\n",
		argsA: []string{"--build-arg", "USED=1"}, argsB: []string{"--build-arg", "USED=2"},
	},
	{
		name:  "arg/declared-not-referenced",
		df:    "FROM {base}\nARG X\nRUN env | grep -v '^HOSTNAME=' | sort > /env\n",
		argsA: []string{"--build-arg", "X=1"}, argsB: []string{"--build-arg", "X=2"},
	},
	{
		name:  "arg/declared-after-the-run",
		df:    "FROM {base}\nRUN echo hi > /hi\nARG X\nRUN echo \"$X\" > /x\n",
		argsA: []string{"--build-arg", "X=1"}, argsB: []string{"--build-arg", "X=2"},
		hit: []string{"RUN echo hi"},
	},
	{
		name:  "arg/default-equals-given",
		df:    "FROM {base}\nARG V=1\nRUN echo $V > /v\n",
		argsB: []string{"--build-arg", "V=1"},
		hit:   []string{"*"},
	},
	{
		name: "arg/default-changed",
		df:   "FROM {base}\nARG V=1\nRUN echo $V > /v\n",
		dfB:  "FROM {base}\nARG V=2\nRUN echo $V > /v\n",
	},
	{
		name:  "arg/empty-vs-unset",
		df:    "FROM {base}\nARG V\nRUN (env | grep -c '^V=' || true) > /v\n",
		argsB: []string{"--build-arg", "V="},
	},
	{
		name:  "arg/global-scope-not-redeclared",
		df:    "ARG V=1\nFROM {base}\nRUN echo \"v=$V\" > /v\n",
		argsB: []string{"--build-arg", "V=2"},
	},
	{
		name:  "arg/global-redeclared-in-stage",
		df:    "ARG V=1\nFROM {base}\nARG V\nRUN echo \"v=$V\" > /v\n",
		argsB: []string{"--build-arg", "V=2"},
	},
	{
		name:  "arg/from-environment",
		df:    "FROM {base}\nARG V\nRUN echo \"v=$V\" > /v\n",
		argsA: []string{"--build-arg", "V"},
		envA:  []string{"V=one"}, envB: []string{"V=two"},
	},
	{
		name:  "arg/in-env",
		df:    "FROM {base}\nARG V=1\nENV E=$V\n",
		argsB: []string{"--build-arg", "V=2"},
	},
	{
		name:  "arg/proxy-not-in-key",
		df:    "FROM {base}\nRUN echo hi > /hi\n",
		argsA: []string{"--build-arg", "HTTP_PROXY=http://one.invalid"},
		argsB: []string{"--build-arg", "HTTP_PROXY=http://two.invalid"},
		hit:   []string{"*"},
	},
	{
		name:  "arg/predefined-platform",
		df:    "FROM {base}\nARG TARGETPLATFORM\nRUN echo $TARGETPLATFORM > /p\n",
		argsB: []string{"--platform", "{platform}"},
	},
	{
		name:  "target/other-stage",
		df:    "FROM {base} AS a\nRUN echo shared > /s\nRUN echo a > /a\nFROM a AS b\nRUN echo b > /b\n",
		argsA: []string{"--target", "a"}, argsB: []string{"--target", "b"},
		hit: []string{"RUN echo shared", "RUN echo a"},
	},
	{
		name:  "target/earlier-stage",
		df:    "FROM {base} AS a\nRUN echo a > /a\nFROM a AS b\nRUN echo b > /b\n",
		argsA: []string{"--target", "b"}, argsB: []string{"--target", "a"},
		hit: []string{"*"},
	},
	{
		name:  "build/no-cache",
		df:    "FROM {base}\nRUN echo hi > /hi\nCOPY a.txt /a.txt\n",
		ctx:   map[string]string{"a.txt": "a\n"},
		argsB: []string{"--no-cache"},
		miss:  []string{"*"},
	},
	{
		name:  "build/no-cache-filter",
		df:    "FROM {base} AS deps\nRUN echo deps > /deps\nFROM {base} AS app\nRUN echo app > /app\nCOPY --from=deps /deps /deps\n",
		argsB: []string{"--no-cache-filter", "app"},
		hit:   []string{"RUN echo deps"}, miss: []string{"RUN echo app", "COPY --from=deps"},
	},
	{
		name: "epoch/changed", sample: true,
		df:    "FROM {base}\nRUN echo hi > /hi\nCOPY a.txt /a.txt\n",
		ctx:   map[string]string{"a.txt": "a\n"},
		argsA: []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"},
		argsB: []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000001"},
	},
	{
		name:  "epoch/added",
		df:    "FROM {base}\nRUN echo hi > /hi\nCOPY a.txt /a.txt\n",
		ctx:   map[string]string{"a.txt": "a\n"},
		argsA: []string{}, argsB: epoch,
	},
	{
		name:  "epoch/removed",
		df:    "FROM {base}\nRUN echo hi > /hi\nCOPY a.txt /a.txt\n",
		ctx:   map[string]string{"a.txt": "a\n"},
		argsA: epoch, argsB: []string{},
	},
	{
		name: "epoch/env-var",
		df:   "FROM {base}\nRUN echo hi > /hi\nCOPY a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		envA: []string{"SOURCE_DATE_EPOCH=1700000000"}, envB: []string{"SOURCE_DATE_EPOCH=1600000000"},
	},
	{
		name:  "epoch/visible-in-run",
		df:    "FROM {base}\nARG SOURCE_DATE_EPOCH\nRUN echo \"epoch=$SOURCE_DATE_EPOCH\" > /epoch\n",
		argsA: []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"},
		argsB: []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000005"},
	},
	{
		name:  "epoch/touched-files-after-epoch",
		df:    "FROM {base}\nCOPY a.txt /a.txt\n",
		ctx:   map[string]string{"a.txt": "a\n"},
		mut:   []ctxMut{{"touch", "a.txt", "2022-03-03T03:03:03.3Z"}},
		argsA: []string{"--build-arg", "SOURCE_DATE_EPOCH=1500000000"},
		hit:   []string{"*"},
	},
	{
		name:  "epoch/untouched-files-before-epoch",
		df:    "FROM {base}\nRUN echo hi > /hi\nCOPY a.txt /a.txt\n",
		ctx:   map[string]string{"a.txt": "a\n"},
		mut:   []ctxMut{{"write", "b.txt", "unrelated\n"}},
		argsA: epoch,
		hit:   []string{"*"},
	},
	{
		name: "output/compression-gzip-to-zstd", sample: true,
		df:   "FROM {base}\nRUN echo hi > /hi\nCOPY a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		outB: ",compression=zstd",
		hit:  []string{"*"},
	},
	{
		name: "output/compression-zstd-to-uncompressed",
		df:   "FROM {base}\nRUN echo hi > /hi\nCOPY a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		outA: ",compression=zstd", outB: ",compression=uncompressed",
		hit: []string{"*"},
	},
	{
		// A step's cached layer is made at the codec's default level and an
		// output's level is an export transform: B's layers are at B's level
		// whichever level A asked for (kiln kept A's, as BuildKit does).
		name: "output/compression-level-changed", sample: true,
		df:   "FROM {base}\nCOPY a.txt /a\nRUN seq 1 3000 > /n\n",
		ctx:  map[string]string{"a.txt": "@repeat:100000:abcdefgh"},
		outA: ",compression-level=1", outB: ",compression-level=9",
		hit: []string{"*"},
	},
	{
		name: "output/zstd-level-changed",
		df:   "FROM {base}\nCOPY a.txt /a\nRUN seq 1 3000 > /n\n",
		ctx:  map[string]string{"a.txt": "@repeat:100000:abcdefgh"},
		outA: ",compression=zstd,compression-level=1", outB: ",compression=zstd,compression-level=19",
		hit: []string{"*"},
	},
	{
		name: "output/level-then-default",
		df:   "FROM {base}\nCOPY a.txt /a\n",
		ctx:  map[string]string{"a.txt": "@repeat:100000:abcdefgh"},
		outA: ",compression-level=1", outB: ",compression=gzip",
		hit: []string{"*"},
	},
	{
		name: "output/compression-with-epoch",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		outA: ",compression=gzip", outB: ",compression=zstd",
		argsA: epoch,
		hit:   []string{"*"},
	},
	{
		name:  "file/other-name-same-content",
		df:    "FROM {base}\nRUN echo hi > /hi\n",
		ctx:   map[string]string{"other.Dockerfile": "FROM {base}\nRUN echo hi > /hi\n"},
		argsB: []string{"-f", "other.Dockerfile"},
		hit:   []string{"*"},
	},
	{
		name:  "file/beside-dockerignore-wins",
		df:    "FROM {base}\nCOPY . /app/\n",
		ctx:   map[string]string{"a.txt": "a\n", "b.txt": "b\n", ".dockerignore": "a.txt\n", "other.Dockerfile": "FROM {base}\nCOPY . /app/\n", "other.Dockerfile.dockerignore": "b.txt\n"},
		argsB: []string{"-f", "other.Dockerfile"},
	},
	{
		name: "file/comment-changed",
		df:   "FROM {base}\n# one\nRUN echo hi > /hi\n",
		dfB:  "FROM {base}\n# two, longer\n\nRUN echo hi > /hi\n",
		hit:  []string{"*"},
	},
	{
		name: "file/syntax-directive-added",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		dfB:  "# syntax=docker/dockerfile:1\nFROM {base}\nRUN echo hi > /hi\n",
		hit:  []string{"*"},
	},
	{
		name: "file/instruction-case",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		dfB:  "from {base}\nrun echo hi > /hi\n",
	},
	{
		name: "file/stage-added-unused",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		dfB:  "FROM {base} AS unused\nRUN echo unused > /u\nFROM {base}\nRUN echo hi > /hi\n",
	},
	{
		name:  "platform/explicit-host",
		df:    "FROM {base}\nRUN echo hi > /hi\n",
		argsB: []string{"--platform", "{platform}"},
		hit:   []string{"*"},
	},
}
