package main

// Pairs of the differential cache harness: the instructions that change the image
// config (ENV, USER, WORKDIR, LABEL, CMD, ENTRYPOINT, EXPOSE, VOLUME, STOPSIGNAL,
// HEALTHCHECK, MAINTAINER) and what later steps inherit from them.

var metaPairs = []cachePair{
	{
		name: "env/value-in-config",
		df:   "FROM {base}\nENV A=1\n",
		dfB:  "FROM {base}\nENV A=2\n",
	},
	{
		name: "env/one-line-vs-two",
		df:   "FROM {base}\nENV A=1 B=2\nRUN echo $A$B > /o\n",
		dfB:  "FROM {base}\nENV A=1\nENV B=2\nRUN echo $A$B > /o\n",
	},
	{
		name: "env/legacy-form",
		df:   "FROM {base}\nENV A hello world\nRUN echo \"$A\" > /o\n",
		dfB:  "FROM {base}\nENV A=\"hello world\"\nRUN echo \"$A\" > /o\n",
	},
	{
		name: "env/quoting",
		df:   "FROM {base}\nENV A=\"x  y\"\nRUN echo \"$A\" > /o\n",
		dfB:  "FROM {base}\nENV A=x\\ \\ y\nRUN echo \"$A\" > /o\n",
	},
	{
		name: "env/expansion-of-earlier-env",
		df:   "FROM {base}\nENV A=1\nENV B=${A}-x\nRUN echo $B > /o\n",
		dfB:  "FROM {base}\nENV A=2\nENV B=${A}-x\nRUN echo $B > /o\n",
	},
	{
		name: "env/path-changed",
		df:   "FROM {base}\nENV PATH=/bin\nRUN echo $PATH > /o\n",
		dfB:  "FROM {base}\nENV PATH=/usr/bin:/bin\nRUN echo $PATH > /o\n",
	},
	{
		name: "env/inherited-by-stage",
		df:   "FROM {base} AS s\nENV A=1\nFROM s\nRUN echo $A > /o\n",
		dfB:  "FROM {base} AS s\nENV A=2\nFROM s\nRUN echo $A > /o\n",
	},
	{
		name: "user/in-config",
		df:   "FROM {base}\nUSER app\n",
		dfB:  "FROM {base}\nUSER app:app\n",
	},
	{
		name: "user/owner-of-workdir",
		df:   "FROM {base}\nUSER app\nWORKDIR /w\n",
		dfB:  "FROM {base}\nUSER root\nWORKDIR /w\n",
	},
	{
		name: "user/copy-owner-unaffected",
		df:   "FROM {base}\nUSER app\nCOPY a.txt /a.txt\n",
		dfB:  "FROM {base}\nUSER nobody\nCOPY a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name: "workdir/relative",
		df:   "FROM {base}\nWORKDIR /a\nWORKDIR b\nRUN pwd > /pwd\n",
		dfB:  "FROM {base}\nWORKDIR /a/b\nRUN pwd > /pwd\n",
	},
	{
		name: "workdir/env-expansion",
		df:   "FROM {base}\nENV D=/a\nWORKDIR $D\nRUN pwd > /pwd\n",
		dfB:  "FROM {base}\nENV D=/b\nWORKDIR $D\nRUN pwd > /pwd\n",
	},
	{
		name: "workdir/existing-dir-mode",
		df:   "FROM {base}\nRUN mkdir -m 700 /w\nWORKDIR /w\n",
		dfB:  "FROM {base}\nRUN mkdir -m 755 /w\nWORKDIR /w\n",
	},
	{
		name: "workdir/then-relative-copy",
		df:   "FROM {base}\nWORKDIR /w\nCOPY a.txt sub/\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"write", "a.txt", "b\n"}},
	},
	{
		name: "label/value",
		df:   "FROM {base}\nLABEL a=1\n",
		dfB:  "FROM {base}\nLABEL a=2\n",
	},
	{
		name:  "label/flag-added",
		df:    "FROM {base}\nLABEL a=1\nRUN echo hi > /hi\n",
		argsB: []string{"--label", "b=2"},
		hit:   []string{"*"},
	},
	{
		name:  "label/flag-overrides-instruction",
		df:    "FROM {base}\nLABEL a=1\n",
		argsA: []string{"--label", "a=2"}, argsB: []string{"--label", "a=3"},
	},
	{
		name: "label/multi-vs-separate",
		df:   "FROM {base}\nLABEL a=1 b=2\n",
		dfB:  "FROM {base}\nLABEL a=1\nLABEL b=2\n",
	},
	{
		name: "cmd/shell-vs-exec",
		df:   "FROM {base}\nCMD echo hi\n",
		dfB:  "FROM {base}\nCMD [\"echo\", \"hi\"]\n",
	},
	{
		name: "cmd/exec-argv-split",
		df:   "FROM {base}\nCMD [\"echo a\"]\n",
		dfB:  "FROM {base}\nCMD [\"echo\", \"a\"]\n",
	},
	{
		name: "entrypoint/changed",
		df:   "FROM {base}\nENTRYPOINT [\"/bin/echo\"]\n",
		dfB:  "FROM {base}\nENTRYPOINT [\"/bin/cat\"]\n",
	},
	{
		name: "entrypoint/resets-inherited-cmd",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		dfB:  "FROM {base}\nRUN echo hi > /hi\nENTRYPOINT [\"/bin/echo\"]\n",
	},
	{
		name: "entrypoint/shell-form",
		df:   "FROM {base}\nENTRYPOINT echo hi\n",
		dfB:  "FROM {base}\nENTRYPOINT [\"/bin/sh\", \"-c\", \"echo hi\"]\n",
	},
	{
		name: "expose/port",
		df:   "FROM {base}\nEXPOSE 80\n",
		dfB:  "FROM {base}\nEXPOSE 81\n",
	},
	{
		name: "expose/protocol",
		df:   "FROM {base}\nEXPOSE 80\n",
		dfB:  "FROM {base}\nEXPOSE 80/udp\n",
	},
	{
		name: "volume/path",
		df:   "FROM {base}\nVOLUME /data\n",
		dfB:  "FROM {base}\nVOLUME /data2\n",
	},
	{
		name: "volume/then-run-writes-into-it",
		df:   "FROM {base}\nVOLUME /data\nRUN mkdir -p /data && echo one > /data/f\n",
		dfB:  "FROM {base}\nVOLUME /data\nRUN mkdir -p /data && echo two > /data/f\n",
	},
	{
		name: "volume/json-vs-plain",
		df:   "FROM {base}\nVOLUME /a /b\n",
		dfB:  "FROM {base}\nVOLUME [\"/a\", \"/b\"]\n",
	},
	{
		name: "stopsignal/changed",
		df:   "FROM {base}\nSTOPSIGNAL SIGTERM\n",
		dfB:  "FROM {base}\nSTOPSIGNAL SIGKILL\n",
	},
	{
		name: "stopsignal/number-vs-name",
		df:   "FROM {base}\nSTOPSIGNAL 9\n",
		dfB:  "FROM {base}\nSTOPSIGNAL SIGKILL\n",
	},
	{
		name: "healthcheck/cmd",
		df:   "FROM {base}\nHEALTHCHECK CMD true\n",
		dfB:  "FROM {base}\nHEALTHCHECK CMD false\n",
	},
	{
		name: "healthcheck/options",
		df:   "FROM {base}\nHEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD true\n",
		dfB:  "FROM {base}\nHEALTHCHECK --interval=6s --timeout=3s --start-period=1s --retries=3 CMD true\n",
	},
	{
		name: "healthcheck/none",
		df:   "FROM {base}\nHEALTHCHECK CMD true\n",
		dfB:  "FROM {base}\nHEALTHCHECK NONE\n",
	},
	{
		name: "healthcheck/exec-vs-shell",
		df:   "FROM {base}\nHEALTHCHECK CMD [\"true\"]\n",
		dfB:  "FROM {base}\nHEALTHCHECK CMD true\n",
	},
	{
		name: "maintainer/changed",
		df:   "FROM {base}\nMAINTAINER one\n",
		dfB:  "FROM {base}\nMAINTAINER two\n",
	},
}
