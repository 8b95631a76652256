package main

// Pairs of the differential cache harness: RUN (forms, heredocs, SHELL, what a RUN
// leaves in its layer) and the flags of RUN and of the build that change what a RUN
// sees (--network, --pids-limit, --memory, --cpus, --security).

var runPairs = []cachePair{
	{
		name: "run/exec-argv-split", sample: true,
		df:  "FROM {base}\nRUN [\"touch\", \"/x y\"]\n",
		dfB: "FROM {base}\nRUN [\"touch\", \"/x\", \"y\"]\n",
	},
	{
		name: "run/exec-argv-joined-vs-split",
		df:   "FROM {base}\nRUN [\"sh\", \"-c\", \"echo a b > /o\"]\n",
		dfB:  "FROM {base}\nRUN [\"sh\", \"-c\", \"echo a\", \"b > /o\"]\n",
	},
	{
		name: "run/exec-vs-shell-form", sample: true,
		df:  "FROM {base}\nRUN [\"sh\", \"-c\", \"echo \\\"$0\\\" > /zero\", \"zero\"]\n",
		dfB: "FROM {base}\nRUN sh -c \"echo \\\"$0\\\" > /zero\" zero\n",
	},
	{
		name: "run/shell-vs-exec-same-text",
		df:   "FROM {base}\nRUN echo $HOME > /home.txt\n",
		dfB:  "FROM {base}\nRUN [\"sh\", \"-c\", \"echo $HOME > /home.txt\"]\n",
	},
	{
		name: "run/exec-form-json-spacing",
		df:   "FROM {base}\nRUN [\"touch\",\"/a\"]\n",
		dfB:  "FROM {base}\nRUN [ \"touch\" , \"/a\" ]\n",
		hit:  []string{"*"},
	},
	{
		name: "run/exec-form-no-shell-expansion",
		df:   "FROM {base}\nENV V=env\nRUN [\"touch\", \"/$V\"]\n",
		dfB:  "FROM {base}\nENV V=env\nRUN touch /$V\n",
	},
	{
		name: "run/shell-form-double-space",
		df:   "FROM {base}\nRUN echo 'a  b' > /o\n",
		dfB:  "FROM {base}\nRUN echo 'a b' > /o\n",
	},
	{
		name: "run/line-continuation",
		df:   "FROM {base}\nRUN echo a \\\n  b > /o\n",
		dfB:  "FROM {base}\nRUN echo a b > /o\n",
	},
	{
		name: "run/comment-lines-removed",
		df:   "FROM {base}\nRUN echo a \\\n# a comment\n  b > /o\n",
		dfB:  "FROM {base}\nRUN echo a \\\n  b > /o\n",
	},
	{
		name: "run/heredoc-content",
		df:   "FROM {base}\nRUN <<EOF\necho one > /o\nEOF\n",
		dfB:  "FROM {base}\nRUN <<EOF\necho two > /o\nEOF\n",
	},
	{
		name: "run/heredoc-shebang",
		df:   "FROM {base}\nRUN <<EOF\n#!/bin/sh\necho \"$0\" > /zero\nEOF\n",
		dfB:  "FROM {base}\nRUN <<EOF\n#!/bin/busybox sh\necho \"$0\" > /zero\nEOF\n",
	},
	{
		name: "run/heredoc-file-content",
		df:   "FROM {base}\nRUN cat <<EOF > /o\nline one\nEOF\n",
		dfB:  "FROM {base}\nRUN cat <<EOF > /o\nline two\nEOF\n",
	},
	{
		name: "run/heredoc-quoted-delimiter",
		df:   "FROM {base}\nENV V=expanded\nRUN cat <<EOF > /o\n$V\nEOF\n",
		dfB:  "FROM {base}\nENV V=expanded\nRUN cat <<'EOF' > /o\n$V\nEOF\n",
	},
	{
		name: "run/heredoc-two-files",
		df:   "FROM {base}\nRUN cat /dev/stdin <<A > /o\none\nA\n",
		dfB:  "FROM {base}\nRUN cat /dev/stdin <<A > /o\ntwo\nA\n",
	},
	{
		name: "shell/changed-exec-path", sample: true,
		df:  "FROM {base}\nSHELL [\"/bin/sh\", \"-c\"]\nRUN echo \"$0\" > /zero\n",
		dfB: "FROM {base}\nSHELL [\"/bin/busybox\", \"sh\", \"-c\"]\nRUN echo \"$0\" > /zero\n",
	},
	{
		name: "shell/changed-flags",
		df:   "FROM {base}\nSHELL [\"/bin/sh\", \"-c\"]\nRUN false; echo $? > /o\n",
		dfB:  "FROM {base}\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN false; echo $? > /o\n",
		fail: true, // -e stops at false
	},
	{
		name: "shell/argv-split-differently",
		df:   "FROM {base}\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN echo \"$-\" > /flags\n",
		dfB:  "FROM {base}\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN echo \"$-\" > /flags\n",
	},
	{
		name: "shell/json-spacing",
		df:   "FROM {base}\nSHELL [\"/bin/sh\",\"-c\"]\nRUN echo hi > /o\n",
		dfB:  "FROM {base}\nSHELL [ \"/bin/sh\", \"-c\" ]\nRUN echo hi > /o\n",
		hit:  []string{"*"},
	},
	{
		name: "shell/only-affects-shell-form",
		df:   "FROM {base}\nSHELL [\"/bin/sh\", \"-c\"]\nRUN [\"sh\", \"-c\", \"echo $0 > /zero\"]\n",
		dfB:  "FROM {base}\nSHELL [\"/bin/busybox\", \"sh\", \"-c\"]\nRUN [\"sh\", \"-c\", \"echo $0 > /zero\"]\n",
	},
	{
		name: "shell/config-and-cmd",
		df:   "FROM {base}\nSHELL [\"/bin/sh\", \"-c\"]\nCMD echo hi\n",
		dfB:  "FROM {base}\nSHELL [\"/bin/busybox\", \"sh\", \"-c\"]\nCMD echo hi\n",
	},
	{
		name: "run/env-value-used",
		df:   "FROM {base}\nENV A=1\nRUN echo $A > /o\n",
		dfB:  "FROM {base}\nENV A=2\nRUN echo $A > /o\n",
	},
	{
		name: "run/env-value-unused-visible-in-env",
		df:   "FROM {base}\nENV A=1\nRUN env | grep -v '^HOSTNAME=' | sort > /env\n",
		dfB:  "FROM {base}\nENV A=2\nRUN env | grep -v '^HOSTNAME=' | sort > /env\n",
	},
	{
		name: "run/env-order",
		df:   "FROM {base}\nENV A=1\nENV B=2\nRUN env | grep -v '^HOSTNAME=' > /env\n",
		dfB:  "FROM {base}\nENV B=2\nENV A=1\nRUN env | grep -v '^HOSTNAME=' > /env\n",
	},
	{
		name: "run/user-changed",
		df:   "FROM {base}\nUSER app\nRUN id > /tmp/id\n",
		dfB:  "FROM {base}\nUSER nobody\nRUN id > /tmp/id\n",
	},
	{
		name: "run/user-name-vs-uid",
		df:   "FROM {base}\nUSER app\nRUN id > /tmp/id\n",
		dfB:  "FROM {base}\nUSER 1000\nRUN id > /tmp/id\n",
	},
	{
		name: "run/user-group-changed",
		df:   "FROM {base}\nUSER app:app\nRUN id -g > /tmp/gid\n",
		dfB:  "FROM {base}\nUSER app:root\nRUN id -g > /tmp/gid\n",
	},
	{
		name: "run/workdir-changed",
		df:   "FROM {base}\nWORKDIR /a\nRUN pwd > /pwd\n",
		dfB:  "FROM {base}\nWORKDIR /b\nRUN pwd > /pwd\n",
	},
	{
		name: "run/hard-link-vs-copy",
		df:   "FROM {base}\nRUN echo a > /a && ln /a /b\n",
		dfB:  "FROM {base}\nRUN echo a > /a && cp /a /b\n",
	},
	{
		name: "run/symlink-target",
		df:   "FROM {base}\nRUN echo a > /a && ln -s /a /l\n",
		dfB:  "FROM {base}\nRUN echo a > /a && ln -s a /l\n",
	},
	{
		name: "run/mode",
		df:   "FROM {base}\nRUN touch /f && chmod 644 /f\n",
		dfB:  "FROM {base}\nRUN touch /f && chmod 4755 /f\n",
	},
	{
		name: "run/whiteout",
		df:   "FROM {base}\nRUN rm /etc/group\n",
		dfB:  "FROM {base}\nRUN rm /etc/passwd\n",
	},
	{
		name: "run/opaque-dir",
		df:   "FROM {base}\nRUN rm -rf /home && mkdir /home\n",
		dfB:  "FROM {base}\nRUN rm -rf /home/app\n",
	},
	{
		name: "run/mkfifo-and-device",
		df:   "FROM {base}\nRUN mkfifo /fifo && mknod /null c 1 3\n",
		dfB:  "FROM {base}\nRUN mkfifo /fifo && mknod /null c 1 5\n",
	},
	{
		name: "run/observes-copied-mtime-nanoseconds",
		df:   "FROM {base}\nCOPY a.txt /a.txt\nRUN stat -c '%y' /a.txt > /a.stat\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"touch", "a.txt", "+1ns"}},
	},
	{
		name: "run/same-instruction-other-parent",
		df:   "FROM {base}\nRUN echo 1 > /p\nRUN cat /p > /q\n",
		dfB:  "FROM {base}\nRUN echo 2 > /p\nRUN cat /p > /q\n",
	},
	{
		name: "run/escape-directive",
		df:   "# escape=`\nFROM {base}\nRUN echo a `\n  b > /o\n",
		dfB:  "FROM {base}\nRUN echo a \\\n  b > /o\n",
	},
}

var runFlagPairs = []cachePair{
	{
		name: "run/network-flag-none", sample: true,
		df:  "FROM {base}\nRUN --network=default cut -d: -f1 /proc/net/dev | tr -d ' ' | sort > /ifaces\n",
		dfB: "FROM {base}\nRUN --network=none cut -d: -f1 /proc/net/dev | tr -d ' ' | sort > /ifaces\n",
	},
	{
		name:  "build/network-none",
		df:    "FROM {base}\nRUN cut -d: -f1 /proc/net/dev | tr -d ' ' | sort > /ifaces\n",
		argsB: []string{"--network", "none"},
	},
	{
		name:  "build/network-default-vs-none-flag-in-run",
		df:    "FROM {base}\nRUN --network=default cut -d: -f1 /proc/net/dev | tr -d ' ' | sort > /ifaces\n",
		argsA: []string{"--network", "none"}, argsB: []string{},
	},
	{
		name:  "build/network-host-allow",
		df:    "FROM {base}\nRUN --network=host cut -d: -f1 /proc/net/dev | tr -d ' ' | sort > /ifaces\n",
		argsA: []string{"--allow", "network.host"},
		argsB: []string{"--allow", "network.host", "--network", "none"},
	},
	{
		name:  "build/sandbox-hostname-arg",
		df:    "FROM {base}\nRUN hostname > /h\n",
		argsB: []string{"--build-arg", "BUILDKIT_SANDBOX_HOSTNAME=other"},
	},
	{
		name: "build/pids-limit", sample: true,
		df:    "FROM {base}\nRUN (for i in $(seq 40); do sleep 2 & done; wait) 2>/dev/null && echo ok > /forks || echo failed > /forks\n",
		argsB: []string{"--pids-limit", "20"},
	},
	{
		name:  "build/pids-limit-default-explicit",
		df:    "FROM {base}\nRUN echo hi > /hi\n",
		argsB: []string{"--pids-limit", "4096"},
		hit:   []string{"*"},
	},
	{
		name:  "build/memory-limit-hit-by-step",
		df:    "FROM {base}\nRUN x=$(head -c 40m /dev/zero | tr '\\0' a); echo ${#x} > /len\n",
		argsA: []string{"--memory", "512m"}, argsB: []string{"--memory", "16m"},
		fail: true, // out of memory
	},
	{
		name:  "build/memory-limit-not-hit",
		df:    "FROM {base}\nRUN echo hi > /hi\n",
		argsB: []string{"--memory", "256m"},
	},
	{
		name:  "build/cpus",
		df:    "FROM {base}\nRUN echo hi > /hi\n",
		argsB: []string{"--cpus", "1"},
	},
	{
		name:  "build/jobs",
		df:    "FROM {base} AS a\nRUN echo a > /a\nFROM {base} AS b\nRUN echo b > /b\nFROM {base}\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
		argsB: []string{"--jobs", "1"},
		hit:   []string{"*"},
	},
	{
		name:  "run/security-insecure-refused",
		df:    "FROM {base}\nRUN echo hi > /hi\n",
		dfB:   "FROM {base}\nRUN --security=insecure echo hi > /hi\n",
		argsA: []string{"--allow", "security.insecure"},
		fail:  true,
	},
	{
		name: "run/security-sandbox-is-default",
		df:   "FROM {base}\nRUN echo hi > /hi\n",
		dfB:  "FROM {base}\nRUN --security=sandbox echo hi > /hi\n",
	},
}
