package main

// Pairs of the differential cache harness: RUN --mount=type=secret and type=ssh, with
// every option (id, target, env, required, mode, uid, gid). A secret's value is not
// part of a step's identity (as BuildKit): these RUNs observe the mount, not the value.

var secretFlag = []string{"--secret", "id=tok,src={tmp}/tok"}

var secretPairs = []cachePair{
	{
		name: "secret/value-changed-not-written", sample: true,
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo present > /o\n",
		ctx:   map[string]string{"../tok": "one"},
		mut:   []ctxMut{{"write", "../tok", "two"}},
		argsA: secretFlag,
		hit:   []string{"*"},
	},
	{
		name:  "secret/source-file-moved-same-value",
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo present > /o\n",
		ctx:   map[string]string{"../tok": "one", "../tok2": "one"},
		argsA: secretFlag, argsB: []string{"--secret", "id=tok,src={tmp}/tok2"},
		hit: []string{"*"},
	},
	{
		name:  "secret/target-changed",
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok ls /run/secrets /etc/tok > /o 2>&1; true\n",
		dfB:   "FROM {base}\nRUN --mount=type=secret,id=tok,target=/etc/tok ls /run/secrets /etc/tok > /o 2>&1; true\n",
		ctx:   map[string]string{"../tok": "one"},
		argsA: secretFlag,
	},
	{
		name:  "secret/mode-changed",
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok,mode=0400 stat -c '%a %u %g' /run/secrets/tok > /o\n",
		dfB:   "FROM {base}\nRUN --mount=type=secret,id=tok,mode=0444 stat -c '%a %u %g' /run/secrets/tok > /o\n",
		ctx:   map[string]string{"../tok": "one"},
		argsA: secretFlag,
	},
	{
		name:  "secret/uid-changed",
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok stat -c '%a %u %g' /run/secrets/tok > /o\n",
		dfB:   "FROM {base}\nRUN --mount=type=secret,id=tok,uid=1000 stat -c '%a %u %g' /run/secrets/tok > /o\n",
		ctx:   map[string]string{"../tok": "one"},
		argsA: secretFlag,
	},
	{
		name:  "secret/gid-changed",
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok,gid=0 stat -c '%a %u %g' /run/secrets/tok > /o\n",
		dfB:   "FROM {base}\nRUN --mount=type=secret,id=tok,gid=1000 stat -c '%a %u %g' /run/secrets/tok > /o\n",
		ctx:   map[string]string{"../tok": "one"},
		argsA: secretFlag,
	},
	{
		name:  "secret/env-vs-file",
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok (test -n \"$TOK\" && echo env || echo noenv; ls /run/secrets) > /o 2>&1; true\n",
		dfB:   "FROM {base}\nRUN --mount=type=secret,id=tok,env=TOK (test -n \"$TOK\" && echo env || echo noenv; ls /run/secrets) > /o 2>&1; true\n",
		ctx:   map[string]string{"../tok": "one"},
		argsA: secretFlag,
	},
	{
		name:  "secret/id-changed",
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok ls /run/secrets > /o 2>&1; true\n",
		dfB:   "FROM {base}\nRUN --mount=type=secret,id=other ls /run/secrets > /o 2>&1; true\n",
		ctx:   map[string]string{"../tok": "one"},
		argsA: secretFlag,
	},
	{
		name:  "secret/given-then-not-given",
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok ls /run/secrets > /o 2>&1; true\n",
		ctx:   map[string]string{"../tok": "one"},
		argsA: secretFlag, argsB: []string{},
	},
	{
		name:  "secret/required-not-given",
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok echo ran > /o\n",
		dfB:   "FROM {base}\nRUN --mount=type=secret,id=tok,required echo ran > /o\n",
		ctx:   map[string]string{"../tok": "one"},
		argsA: secretFlag, argsB: []string{},
		fail: true,
	},
	{
		name:  "secret/env-source",
		df:    "FROM {base}\nRUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo present > /o\n",
		argsA: []string{"--secret", "id=tok,env=KILN_CC_SECRET"},
		envA:  []string{"KILN_CC_SECRET=one"}, envB: []string{"KILN_CC_SECRET=two"},
		hit: []string{"*"},
	},
	{
		name:  "ssh/target-changed",
		df:    "FROM {base}\nRUN --mount=type=ssh echo $SSH_AUTH_SOCK > /o\n",
		dfB:   "FROM {base}\nRUN --mount=type=ssh,target=/tmp/agent.sock echo $SSH_AUTH_SOCK > /o\n",
		argsA: []string{"--ssh", "default={ssh}"},
	},
	{
		name:  "ssh/mode-changed",
		df:    "FROM {base}\nRUN --mount=type=ssh stat -c '%a %u %g' $SSH_AUTH_SOCK > /o\n",
		dfB:   "FROM {base}\nRUN --mount=type=ssh,mode=0666 stat -c '%a %u %g' $SSH_AUTH_SOCK > /o\n",
		argsA: []string{"--ssh", "default={ssh}"},
	},
	{
		name:  "ssh/uid-gid-changed",
		df:    "FROM {base}\nRUN --mount=type=ssh stat -c '%a %u %g' $SSH_AUTH_SOCK > /o\n",
		dfB:   "FROM {base}\nRUN --mount=type=ssh,uid=1000,gid=1000 stat -c '%a %u %g' $SSH_AUTH_SOCK > /o\n",
		argsA: []string{"--ssh", "default={ssh}"},
	},
	{
		name:  "ssh/id-changed",
		df:    "FROM {base}\nRUN --mount=type=ssh,id=default (test -S \"$SSH_AUTH_SOCK\" && echo sock || echo none) > /o\n",
		dfB:   "FROM {base}\nRUN --mount=type=ssh,id=other (test -S \"$SSH_AUTH_SOCK\" && echo sock || echo none) > /o\n",
		argsA: []string{"--ssh", "default={ssh}"},
	},
	{
		name:  "ssh/given-then-not-given",
		df:    "FROM {base}\nRUN --mount=type=ssh (test -S \"$SSH_AUTH_SOCK\" && echo sock || echo none) > /o\n",
		argsA: []string{"--ssh", "default={ssh}"}, argsB: []string{},
	},
	{
		name:  "ssh/required-not-given",
		df:    "FROM {base}\nRUN --mount=type=ssh,required echo ran > /o\n",
		argsA: []string{"--ssh", "default={ssh}"}, argsB: []string{},
		fail: true,
	},
}
