package parser

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func mustParse(t *testing.T, df string, opts Options) *Graph {
	t.Helper()
	g, err := Parse(strings.NewReader(df), opts)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return g
}

func TestEveryInstructionKeepsLines(t *testing.T) {
	df := `FROM busybox AS base
RUN echo one \
    two
CMD ["sh"]
LABEL a=b c="d e"
MAINTAINER someone
EXPOSE 80/tcp 443
ENV A=1 B=2
ADD --chmod=644 a.txt /a
COPY --chown=1:1 b.txt /b
ENTRYPOINT ["/bin/sh", "-c"]
VOLUME /data
USER 1000:1000
WORKDIR /work
ARG V=1
ONBUILD RUN echo child
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s CMD true
SHELL ["/bin/sh", "-ec"]
`
	g := mustParse(t, df, Options{})
	want := []struct {
		typ        any
		line, end  int
		originalAt string
	}{
		{&instructions.RunCommand{}, 2, 3, "RUN echo one"},
		{&instructions.CmdCommand{}, 4, 4, "CMD"},
		{&instructions.LabelCommand{}, 5, 5, "LABEL"},
		{&instructions.MaintainerCommand{}, 6, 6, "MAINTAINER"},
		{&instructions.ExposeCommand{}, 7, 7, "EXPOSE"},
		{&instructions.EnvCommand{}, 8, 8, "ENV"},
		{&instructions.AddCommand{}, 9, 9, "ADD"},
		{&instructions.CopyCommand{}, 10, 10, "COPY"},
		{&instructions.EntrypointCommand{}, 11, 11, "ENTRYPOINT"},
		{&instructions.VolumeCommand{}, 12, 12, "VOLUME"},
		{&instructions.UserCommand{}, 13, 13, "USER"},
		{&instructions.WorkdirCommand{}, 14, 14, "WORKDIR"},
		{&instructions.ArgCommand{}, 15, 15, "ARG"},
		{&instructions.OnbuildCommand{}, 16, 16, "ONBUILD"},
		{&instructions.StopSignalCommand{}, 17, 17, "STOPSIGNAL"},
		{&instructions.HealthCheckCommand{}, 18, 18, "HEALTHCHECK"},
		{&instructions.ShellCommand{}, 19, 19, "SHELL"},
	}
	if len(g.Stages) != 1 {
		t.Fatalf("stages = %d, want 1", len(g.Stages))
	}
	st := g.Stages[0]
	if st.Name != "base" || st.Base != "busybox" || st.BaseStage != -1 || st.Line != 1 {
		t.Errorf("stage = %+v", st)
	}
	if len(st.Commands) != len(want) {
		t.Fatalf("commands = %d, want %d", len(st.Commands), len(want))
	}
	for i, w := range want {
		c := st.Commands[i]
		if reflect.TypeOf(c.Command) != reflect.TypeOf(w.typ) {
			t.Errorf("command %d: %T, want %T", i, c.Command, w.typ)
		}
		if c.Line != w.line || c.EndLine != w.end {
			t.Errorf("command %d (%T): lines %d-%d, want %d-%d", i, c.Command, c.Line, c.EndLine, w.line, w.end)
		}
		if !strings.HasPrefix(c.Original, w.originalAt) {
			t.Errorf("command %d: Original %q, want prefix %q", i, c.Original, w.originalAt)
		}
	}
	// Commands stay unexpanded for the solver.
	if run := st.Commands[0].Command.(*instructions.RunCommand); run.CmdLine[0] != "echo one     two" {
		t.Errorf("RUN cmdline = %q", run.CmdLine)
	}
	if ob := st.Commands[13].Command.(*instructions.OnbuildCommand); ob.Expression != "RUN echo child" {
		t.Errorf("ONBUILD expression = %q", ob.Expression)
	}
}

func TestEscapeDirectiveBacktick(t *testing.T) {
	df := "# escape=`\nFROM busybox\nRUN echo a `\n    b\nCOPY c:\\src d:\\dst\n"
	g := mustParse(t, df, Options{})
	if g.EscapeToken != '`' {
		t.Errorf("EscapeToken = %q, want backtick", g.EscapeToken)
	}
	cmds := g.Stages[0].Commands
	run := cmds[0].Command.(*instructions.RunCommand)
	if got := run.CmdLine[0]; got != "echo a     b" {
		t.Errorf("RUN = %q", got)
	}
	if cmds[0].Line != 3 || cmds[0].EndLine != 4 {
		t.Errorf("RUN lines %d-%d, want 3-4", cmds[0].Line, cmds[0].EndLine)
	}
	cp := cmds[1].Command.(*instructions.CopyCommand)
	if cp.SourcePaths[0] != `c:\src` || cp.DestPath != `d:\dst` {
		t.Errorf("COPY = %q -> %q, backslash should be literal", cp.SourcePaths, cp.DestPath)
	}
}

func TestSyntaxDirective(t *testing.T) {
	const digest = "@sha256:4c68376a702446fc3c79af22de146a148bc3367e73c25a5803d453b6b3f722fb"
	tests := []struct {
		syntax string
		ok     bool
	}{
		{"docker/dockerfile:1", true},
		{"docker/dockerfile:1.7", true},
		{"docker/dockerfile:1.7.1", true},
		{"docker/dockerfile:1-labs", true},
		{"docker/dockerfile:1.4-labs", true},
		{"docker.io/docker/dockerfile:1", true},
		{"docker/dockerfile:1" + digest, true},
		{"docker/dockerfile" + digest, true},
		{"docker/dockerfile", true},
		{"tonistiigi/dockerfile:runmount20181002", false},
		{"docker/dockerfile:2", false},
		{"docker/dockerfile:0.9", false},
		{"ghcr.io/docker/dockerfile:1", false},
		{"example.com/frontend:1", false},
	}
	for _, tt := range tests {
		t.Run(tt.syntax, func(t *testing.T) {
			df := "# syntax=" + tt.syntax + "\nFROM busybox\n"
			g, err := Parse(strings.NewReader(df), Options{})
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if g.Syntax != tt.syntax {
					t.Errorf("Syntax = %q", g.Syntax)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if pe.Line != 1 || !strings.Contains(err.Error(), tt.syntax) || !strings.Contains(err.Error(), "syntax") {
				t.Errorf("err = %q (line %d), want line 1 naming %q", err, pe.Line, tt.syntax)
			}
		})
	}
	t.Run("BUILDKIT_SYNTAX overrides", func(t *testing.T) {
		_, err := Parse(strings.NewReader("FROM busybox\n"), Options{BuildArgs: map[string]string{"BUILDKIT_SYNTAX": "other/frontend:1"}})
		if err == nil || !strings.Contains(err.Error(), "other/frontend:1") {
			t.Errorf("err = %v, want refusal of other/frontend:1", err)
		}
	})
}

func TestCheckDirective(t *testing.T) {
	g := mustParse(t, "# syntax=docker/dockerfile:1\n# check=skip=all\nFROM busybox\n", Options{})
	if g.CheckDirective != "skip=all" {
		t.Errorf("CheckDirective = %q", g.CheckDirective)
	}
}

func TestHeredocRun(t *testing.T) {
	df := "FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-END /f\n\thello\n\tEND\nUSER nobody\n"
	g := mustParse(t, df, Options{})
	cmds := g.Stages[0].Commands
	run := cmds[0].Command.(*instructions.RunCommand)
	if len(run.Files) != 1 || run.Files[0].Data != "echo one\necho two\n" {
		t.Errorf("RUN heredoc = %+v", run.Files)
	}
	if cmds[0].Line != 2 || cmds[0].EndLine != 5 {
		t.Errorf("RUN lines %d-%d, want 2-5", cmds[0].Line, cmds[0].EndLine)
	}
	cp := cmds[1].Command.(*instructions.CopyCommand)
	if len(cp.SourceContents) != 1 || cp.SourceContents[0].Data != "hello\n" {
		t.Errorf("COPY heredoc = %+v", cp.SourceContents)
	}
	if cmds[2].Line != 9 {
		t.Errorf("USER line = %d, want 9", cmds[2].Line)
	}
}

func strp(s string) *string { return &s }

func TestGlobalArgs(t *testing.T) {
	df := "ARG REG=docker.io\nARG IMG=${REG}/library/busybox\nARG TAG\nARG PLAT=linux/arm64\nFROM --platform=$PLAT ${IMG}:${TAG:-latest} AS Final\nARG TAG\n"
	tests := []struct {
		name      string
		buildArgs map[string]string
		base      string
		platform  string
		args      []Arg
	}{
		{
			name:     "defaults",
			base:     "docker.io/library/busybox:latest",
			platform: "linux/arm64",
			args:     []Arg{{"REG", strp("docker.io")}, {"IMG", strp("docker.io/library/busybox")}, {"TAG", nil}, {"PLAT", strp("linux/arm64")}},
		},
		{
			name:      "overrides",
			buildArgs: map[string]string{"REG": "r.example", "TAG": "1.36", "PLAT": "linux/arm/v7"},
			base:      "r.example/library/busybox:1.36",
			platform:  "linux/arm/v7",
			args:      []Arg{{"REG", strp("r.example")}, {"IMG", strp("r.example/library/busybox")}, {"TAG", strp("1.36")}, {"PLAT", strp("linux/arm/v7")}},
		},
		{
			// A build arg replaces a default verbatim: no expansion of its value.
			name:      "override not expanded",
			buildArgs: map[string]string{"IMG": "$REG/x"},
			base:      "$REG/x:latest",
			platform:  "linux/arm64",
			args:      []Arg{{"REG", strp("docker.io")}, {"IMG", strp("$REG/x")}, {"TAG", nil}, {"PLAT", strp("linux/arm64")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustParse(t, df, Options{BuildArgs: tt.buildArgs})
			st := g.Stages[0]
			if st.Base != tt.base || st.Platform != tt.platform {
				t.Errorf("Base %q Platform %q, want %q %q", st.Base, st.Platform, tt.base, tt.platform)
			}
			if !reflect.DeepEqual(g.GlobalArgs, tt.args) {
				t.Errorf("GlobalArgs = %s, want %s", fmtArgs(g.GlobalArgs), fmtArgs(tt.args))
			}
			if st.Name != "final" {
				t.Errorf("Name = %q, want lower-cased final", st.Name)
			}
		})
	}
}

func fmtArgs(as []Arg) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(a.Key)
		if a.Value != nil {
			b.WriteString("=" + *a.Value)
		}
		b.WriteString(" ")
	}
	return b.String()
}

func TestPlatformArgsInFrom(t *testing.T) {
	df := "FROM --platform=$BUILDPLATFORM busybox AS build\nFROM busybox:$TARGETARCH$TARGETVARIANT\nFROM busybox:$TARGETSTAGE\n"
	g := mustParse(t, df, Options{TargetPlatform: "linux/arm/v6", BuildPlatform: "linux/amd64"})
	if g.Stages[0].Platform != "linux/amd64" {
		t.Errorf("build platform = %q", g.Stages[0].Platform)
	}
	if g.Stages[2].Base != "busybox:default" {
		t.Errorf("TARGETSTAGE base = %q", g.Stages[2].Base)
	}
	if g.Stages[1].Base != "busybox:armv6" {
		t.Errorf("base = %q", g.Stages[1].Base)
	}
	if g.BuildArgs["TARGETPLATFORM"] != "linux/arm/v6" || g.BuildArgs["BUILDARCH"] != "amd64" || g.BuildArgs["TARGETSTAGE"] != "default" {
		t.Errorf("BuildArgs = %v", g.BuildArgs)
	}
}

func TestPlatformArgs(t *testing.T) {
	tests := []struct {
		target, build string
		want          map[string]string
	}{
		{"linux/arm64", "linux/amd64", map[string]string{
			"TARGETPLATFORM": "linux/arm64", "TARGETOS": "linux", "TARGETARCH": "arm64", "TARGETVARIANT": "",
			"BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux", "BUILDARCH": "amd64", "BUILDVARIANT": "",
		}},
		{"linux/arm", "linux/aarch64", map[string]string{
			"TARGETPLATFORM": "linux/arm/v7", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7",
			"BUILDPLATFORM": "linux/arm64", "BUILDOS": "linux", "BUILDARCH": "arm64", "BUILDVARIANT": "",
		}},
		{"linux/arm64/v8", "linux/x86_64", map[string]string{
			"TARGETPLATFORM": "linux/arm64", "TARGETOS": "linux", "TARGETARCH": "arm64", "TARGETVARIANT": "",
			"BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux", "BUILDARCH": "amd64", "BUILDVARIANT": "",
		}},
	}
	for _, tt := range tests {
		if got := PlatformArgs(tt.target, tt.build); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("PlatformArgs(%q, %q) = %v, want %v", tt.target, tt.build, got, tt.want)
		}
	}
	host := PlatformArgs("", "")
	if host["TARGETPLATFORM"] != HostPlatform() || host["BUILDPLATFORM"] != HostPlatform() {
		t.Errorf("host args %v, host platform %q", host, HostPlatform())
	}
	for name, want := range map[string]bool{"HTTP_PROXY": true, "no_proxy": true, "TARGETARCH": true, "BUILDVARIANT": true, "FOO": false, "http_PROXY": false} {
		if got := IsPredefinedArg(name); got != want {
			t.Errorf("IsPredefinedArg(%q) = %v", name, got)
		}
	}
}

func TestUnusedBuildArgs(t *testing.T) {
	df := "ARG GLOBAL\nFROM busybox AS a\nARG INA\nFROM busybox AS b\nARG INB\n"
	args := map[string]string{"GLOBAL": "1", "INA": "1", "INB": "1", "EXTRA": "1", "HTTP_PROXY": "p", "TARGETOS": "linux", "SOURCE_DATE_EPOCH": "0", "BUILDKIT_INLINE_CACHE": "1"}
	g := mustParse(t, df, Options{BuildArgs: args, Target: "a"})
	// INB is declared only in stage b, which target a does not need.
	if want := []string{"EXTRA", "INB"}; !reflect.DeepEqual(g.UnusedBuildArgs, want) {
		t.Errorf("UnusedBuildArgs = %v, want %v", g.UnusedBuildArgs, want)
	}
	if g.BuildArgs["EXTRA"] != "1" || g.BuildArgs["TARGETARCH"] == "" {
		t.Errorf("BuildArgs = %v", g.BuildArgs)
	}
}
