package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/kiln-build/kiln/parser"
)

// historyComment marks history entries as BuildKit's Dockerfile frontend does.
const historyComment = "buildkit.dockerfile.v0"

// dispatch expands one instruction against the stage's env and runs it.
func (b *build) dispatch(ctx context.Context, sc *stepCtx) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := sc.cmd.Command
	lex := shell.NewLex(b.g.EscapeToken)
	env := shell.EnvsFromSlice(sc.st.env)
	unmatched := map[string]struct{}{}
	if _, isArg := c.(*instructions.ArgCommand); !isArg {
		if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok {
			err := ex.Expand(func(word string) (string, error) {
				s, um, err := lex.ProcessWord(word, env)
				maps.Copy(unmatched, um)
				return s, err
			})
			if err != nil {
				return sc.errorf(b.opts.Filename, "%w", err)
			}
		}
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		raw := shell.NewLex('\\')
		raw.SkipProcessQuotes = true
		err := ex.ExpandRaw(func(word string) (string, error) {
			s, um, err := raw.ProcessWord(word, env)
			maps.Copy(unmatched, um)
			return s, err
		})
		if err != nil {
			return sc.errorf(b.opts.Filename, "%w", err)
		}
	}
	b.reportUndefined(sc, unmatched, env)
	// Again now that the mounts are parsed (a secret's env var is masked in it).
	sc.name = stepTitle(sc, sc.st.env, b.g.EscapeToken)

	st := sc.st
	switch c := c.(type) {
	case *instructions.EnvCommand:
		var msg strings.Builder
		msg.WriteString("ENV")
		for _, kv := range c.Env {
			st.env = setEnv(st.env, kv.Key, kv.Value)
			st.cfg.Config.Env = setEnv(st.cfg.Config.Env, kv.Key, kv.Value)
			msg.WriteString(" " + kv.String())
		}
		b.history(st, msg.String())
	case *instructions.LabelCommand:
		if st.cfg.Config.Labels == nil {
			st.cfg.Config.Labels = map[string]string{}
		}
		var msg strings.Builder
		msg.WriteString("LABEL")
		for _, kv := range c.Labels {
			st.cfg.Config.Labels[kv.Key] = kv.Value
			msg.WriteString(" " + kv.String())
		}
		b.history(st, msg.String())
	case *instructions.MaintainerCommand:
		st.cfg.Author = c.Maintainer
		b.history(st, "MAINTAINER "+c.Maintainer)
	case *instructions.CmdCommand:
		args := c.CmdLine
		if c.PrependShell {
			args = withShell(st.cfg, args)
		}
		st.cfg.Config.Cmd = args
		st.cfg.Config.ArgsEscaped = true
		st.cmdSet = true
		b.history(st, fmt.Sprintf("CMD %q", args))
	case *instructions.EntrypointCommand:
		args := c.CmdLine
		if c.PrependShell {
			args = withShell(st.cfg, args)
		}
		st.cfg.Config.Entrypoint = args
		if !st.cmdSet {
			st.cfg.Config.Cmd = nil
		}
		b.history(st, fmt.Sprintf("ENTRYPOINT %q", args))
	case *instructions.ExposeCommand:
		// EXPOSE is expanded here, not through Expand: a variable may hold several
		// ports (BuildKit's dispatchExpose uses ProcessWords).
		var specs []string
		for _, p := range c.Ports {
			words, err := lex.ProcessWords(p, env)
			if err != nil {
				return sc.errorf(b.opts.Filename, "EXPOSE: %w", err)
			}
			specs = append(specs, words...)
		}
		ports, err := exposedPorts(specs)
		if err != nil {
			return sc.errorf(b.opts.Filename, "EXPOSE: %w", err)
		}
		if st.cfg.Config.ExposedPorts == nil {
			st.cfg.Config.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ports {
			st.cfg.Config.ExposedPorts[p] = struct{}{}
		}
		// BuildKit formats the parsed list as given, duplicates and all.
		b.history(st, fmt.Sprintf("EXPOSE %v", ports))
	case *instructions.VolumeCommand:
		if st.cfg.Config.Volumes == nil {
			st.cfg.Config.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return sc.errorf(b.opts.Filename, "VOLUME specified can not be an empty string")
			}
			st.cfg.Config.Volumes[v] = struct{}{}
		}
		b.history(st, fmt.Sprintf("VOLUME %v", c.Volumes))
	case *instructions.UserCommand:
		st.cfg.Config.User = c.User
		b.history(st, "USER "+c.User)
	case *instructions.StopSignalCommand:
		if err := validateSignal(c.Signal); err != nil {
			return sc.errorf(b.opts.Filename, "STOPSIGNAL: %w", err)
		}
		st.cfg.Config.StopSignal = c.Signal
		b.history(st, "STOPSIGNAL "+c.Signal)
	case *instructions.ShellCommand:
		st.cfg.Config.Shell = c.Shell
		b.history(st, fmt.Sprintf("SHELL %v", c.Shell))
	case *instructions.HealthCheckCommand:
		h := c.Health
		st.cfg.Config.Healthcheck = &v1.HealthConfig{
			Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, Retries: h.Retries,
		}
		// v1.HealthConfig has no StartInterval: it travels beside the config.
		st.cfgExtras.HealthStartInterval = h.StartInterval
		b.history(st, fmt.Sprintf("HEALTHCHECK %+v", *h))
	case *instructions.OnbuildCommand:
		st.cfg.Config.OnBuild = append(st.cfg.Config.OnBuild, c.Expression)
		st.triggers = append(st.triggers, c.Expression)
	case *instructions.ArgCommand:
		return b.dispatchArg(sc, c, lex)
	case *instructions.RunCommand:
		return b.dispatchRun(ctx, sc, c)
	case *instructions.WorkdirCommand:
		return b.dispatchWorkdir(ctx, sc, c)
	case *instructions.CopyCommand:
		return b.dispatchCopy(ctx, sc, copySpec{
			sd: c.SourcesAndDest, from: c.From, chown: c.Chown, chmod: c.Chmod, link: c.Link,
			parents: c.Parents, excludes: c.ExcludePatterns, name: "COPY",
		})
	case *instructions.AddCommand:
		return b.dispatchCopy(ctx, sc, copySpec{
			sd: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod, link: c.Link,
			excludes: c.ExcludePatterns, add: true, name: "ADD",
			checksum: c.Checksum, keepGitDir: c.KeepGitDir, unpack: c.Unpack,
		})
	default:
		return sc.errorf(b.opts.Filename, "instruction %s is not supported", c.Name())
	}
	return nil
}

// dispatchArg declares build args as BuildKit does: a --build-arg value wins, then the
// default (expanded), then the global value of the same name; a declared arg with a
// value becomes visible to later expansion and RUN, never to the image config.
func (b *build) dispatchArg(sc *stepCtx, c *instructions.ArgCommand, lex *shell.Lex) error {
	st := sc.st
	var parts []string
	for _, arg := range c.Args {
		given, hasGiven := b.g.BuildArgs[arg.Key]
		switch {
		case hasGiven:
			arg.Value = &given
		case arg.Value != nil:
			env := shell.EnvsFromSlice(st.env)
			v, unmatched, err := lex.ProcessWord(*arg.Value, env)
			b.reportUndefined(sc, unmatched, env)
			if err != nil {
				return sc.errorf(b.opts.Filename, "ARG %s: %w", arg.Key, err)
			}
			arg.Value = &v
		default:
			if v, ok := b.globalArg(arg.Key); ok {
				arg.Value = &v
			}
		}
		if arg.Value != nil {
			st.env = setEnv(st.env, arg.Key, *arg.Value)
			parts = append(parts, arg.Key+"="+*arg.Value)
		} else {
			parts = append(parts, arg.Key)
		}
		st.args = append(st.args, arg)
	}
	b.history(st, "ARG "+strings.Join(parts, " "))
	return nil
}

// globalArg is the value of an ARG from the global scope (before the first FROM, after
// --build-arg) or a predefined platform arg.
func (b *build) globalArg(key string) (string, bool) {
	for i := len(b.g.GlobalArgs) - 1; i >= 0; i-- {
		if a := b.g.GlobalArgs[i]; a.Key == key {
			if a.Value == nil {
				return "", false
			}
			return *a.Value, true
		}
	}
	v, ok := b.platformArgs()[key]
	return v, ok
}

func (b *build) platformArgs() map[string]string {
	return parser.PlatformArgs(b.opts.Platform.String(), "")
}

// history appends a metadata-only history entry.
func (b *build) history(st *stageState, createdBy string) {
	st.cfg.History = append(st.cfg.History, v1.History{
		Created: v1.Time{Time: st.fs.Created}, CreatedBy: createdBy,
		Comment: historyComment, EmptyLayer: true,
	})
}

// withShell wraps a shell-form command line in the stage's SHELL (default /bin/sh -c).
func withShell(cfg *v1.ConfigFile, args []string) []string {
	sh := cfg.Config.Shell
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	return append(append([]string(nil), sh...), args...)
}

// exposedPorts normalises EXPOSE arguments to "PORT/proto" keys; a range "8000-8002"
// exposes each port of it.
func exposedPorts(specs []string) ([]string, error) {
	var out []string
	for _, spec := range specs {
		ports, err := exposedPort(spec)
		if err != nil {
			return nil, fmt.Errorf("invalid port %q: %w", spec, err)
		}
		out = append(out, ports...)
	}
	return out, nil
}

// exposedPort parses one EXPOSE word, [[ip:]hostport:]port[-end][/proto], into its
// "port/proto" entries in order, as BuildKit's dispatchExpose does: the protocol is
// lowercased (tcp by default), a range gives every port, and an ip or host port
// (meaningless in an image, which BuildKit only warns about) is checked and dropped.
func exposedPort(spec string) ([]string, error) {
	parts := strings.Split(spec, ":")
	var ip, hostPort string
	container := parts[len(parts)-1]
	if len(parts) >= 2 {
		hostPort = parts[len(parts)-2]
	}
	if len(parts) >= 3 {
		ip = strings.Join(parts[:len(parts)-2], ":")
	}
	port, proto, _ := strings.Cut(container, "/")
	if port == "" {
		return nil, errors.New("no port specified")
	}
	switch strings.ToLower(proto) {
	case "":
		proto = "tcp"
	case "tcp", "udp", "sctp":
		proto = strings.ToLower(proto)
	default:
		return nil, fmt.Errorf("invalid proto: %s", proto)
	}
	if strings.HasPrefix(ip, "[") {
		ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
	}
	if ip != "" && net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("invalid IP address: %s", ip)
	}
	start, end, err := portRange(port)
	if err != nil {
		return nil, fmt.Errorf("invalid containerPort: %s", port)
	}
	if hostPort != "" {
		hs, he, err := portRange(hostPort)
		if err != nil {
			return nil, fmt.Errorf("invalid hostPort: %s", hostPort)
		}
		if end-start != he-hs && end != start {
			return nil, fmt.Errorf("invalid ranges specified for container and host Ports: %s and %s", port, hostPort)
		}
	}
	out := make([]string, 0, end-start+1)
	for p := start; p <= end; p++ {
		out = append(out, strconv.Itoa(p)+"/"+proto)
	}
	return out, nil
}

// portRange parses "N" or "N-M" (0 ≤ N ≤ M ≤ 65535).
func portRange(s string) (start, end int, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	n, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return 0, 0, err
	}
	start, end = int(n), int(n)
	if isRange && hi != lo {
		m, err := strconv.ParseUint(hi, 10, 16)
		if err != nil || int(m) < start {
			return 0, 0, fmt.Errorf("invalid port range: %s", s)
		}
		end = int(m)
	}
	return start, end, nil
}

// validateSignal accepts what Docker accepts for STOPSIGNAL: a number or a signal name
// with or without the SIG prefix.
func validateSignal(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return fmt.Errorf("invalid signal number %d", n)
		}
		return nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if strings.HasPrefix(name, "RTMIN") || strings.HasPrefix(name, "RTMAX") {
		return nil
	}
	switch name {
	case "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
		"KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
		"TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ":
		return nil
	}
	return fmt.Errorf("invalid signal: %s", s)
}
