package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// semanticsCase is one Dockerfile rule, pinned by building it: BASE in the Dockerfile
// is replaced by the busybox test image.
type semanticsCase struct {
	name       string
	dockerfile string
	args       []string          // extra kiln build flags
	files      map[string]string // context files
	want       map[string]string // image path → exact content
	absent     []string          // image paths that must not exist
	check      func(t *testing.T, cf *v1.ConfigFile)
	wantErr    string // the build must fail and stderr contain this
}

func TestDockerfileSemantics(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	cases := []semanticsCase{
		// ARG and ENV scoping.
		{name: "global arg needs redeclare", dockerfile: `ARG V=global
FROM BASE
RUN echo "[$V]" > /before
ARG V
RUN echo "[$V]" > /after`, want: map[string]string{"/before": "[]\n", "/after": "[global]\n"}},
		{name: "build arg overrides default and is not persisted", dockerfile: `FROM BASE
ARG V=default
RUN echo "$V" > /v`, args: []string{"--build-arg", "V=given"}, want: map[string]string{"/v": "given\n"},
			check: func(t *testing.T, cf *v1.ConfigFile) {
				for _, e := range cf.Config.Env {
					if strings.HasPrefix(e, "V=") {
						t.Errorf("build arg persisted in Env: %s", e)
					}
				}
			}},
		{name: "env overrides earlier arg", dockerfile: `FROM BASE
ARG X=fromarg
ENV X=fromenv
RUN echo $X > /x`, want: map[string]string{"/x": "fromenv\n"}},
		{name: "env expands in later instructions", dockerfile: `FROM BASE
ENV DIR=/srv NAME=app
WORKDIR $DIR/${NAME}
COPY f.txt ./${NAME}.txt
LABEL where="$DIR"`, files: map[string]string{"f.txt": "F"}, want: map[string]string{"/srv/app/app.txt": "F"},
			check: func(t *testing.T, cf *v1.ConfigFile) {
				if cf.Config.WorkingDir != "/srv/app" || cf.Config.Labels["where"] != "/srv" {
					t.Errorf("workdir %q labels %v", cf.Config.WorkingDir, cf.Config.Labels)
				}
			}},
		{name: "arg inherited by child stage", dockerfile: `FROM BASE AS parent
ARG P=1
FROM parent
RUN echo "[$P]" > /p`, want: map[string]string{"/p": "[1]\n"}},
		{name: "unused build arg is only a warning", dockerfile: `FROM BASE
RUN true`, args: []string{"--build-arg", "NOBODY=x"}},
		// CMD, ENTRYPOINT, SHELL.
		{name: "shell form wrapped in SHELL", dockerfile: `FROM BASE
SHELL ["/bin/sh", "-xc"]
CMD echo hi
RUN echo $0 > /shell`, check: func(t *testing.T, cf *v1.ConfigFile) {
			if !reflect.DeepEqual(cf.Config.Cmd, []string{"/bin/sh", "-xc", "echo hi"}) {
				t.Errorf("Cmd = %q", cf.Config.Cmd)
			}
			if !reflect.DeepEqual(cf.Config.Shell, []string{"/bin/sh", "-xc"}) {
				t.Errorf("Shell = %q", cf.Config.Shell)
			}
		}},
		{name: "entrypoint resets inherited cmd", dockerfile: `FROM BASE
ENTRYPOINT ["/bin/echo"]`, check: func(t *testing.T, cf *v1.ConfigFile) {
			if cf.Config.Cmd != nil {
				t.Errorf("Cmd = %q, want reset", cf.Config.Cmd)
			}
		}},
		{name: "cmd before entrypoint in the same stage is kept", dockerfile: `FROM BASE
CMD ["a"]
ENTRYPOINT ["/bin/echo"]`, check: func(t *testing.T, cf *v1.ConfigFile) {
			if !reflect.DeepEqual(cf.Config.Cmd, []string{"a"}) {
				t.Errorf("Cmd = %q", cf.Config.Cmd)
			}
		}},
		// WORKDIR and USER.
		{name: "workdir relative to previous and owned by user", dockerfile: `FROM BASE
USER app
WORKDIR /w
WORKDIR sub
RUN pwd > /tmp/pwd && id -u >> /tmp/pwd`, want: map[string]string{"/tmp/pwd": "/w/sub\n1000\n"},
			check: func(t *testing.T, cf *v1.ConfigFile) {
				if cf.Config.WorkingDir != "/w/sub" || cf.Config.User != "app" {
					t.Errorf("workdir %q user %q", cf.Config.WorkingDir, cf.Config.User)
				}
			}},
		{name: "user does not change copy ownership", dockerfile: `FROM BASE
USER app
COPY f.txt /f.txt
USER root
RUN stat -c %u:%g /f.txt > /owner`, files: map[string]string{"f.txt": "x"}, want: map[string]string{"/owner": "0:0\n"}},
		{name: "copy chown by name", dockerfile: `FROM BASE
COPY --chown=app:app f.txt /f.txt
RUN stat -c %u:%g /f.txt > /owner`, files: map[string]string{"f.txt": "x"}, want: map[string]string{"/owner": "1000:1000\n"}},
		{name: "unknown user fails", dockerfile: `FROM BASE
USER nosuchuser
RUN true`, wantErr: "nosuchuser"},
		// COPY destinations.
		{name: "copy relative dest uses workdir", dockerfile: `FROM BASE
WORKDIR /app
COPY f.txt .
COPY f.txt sub/`, files: map[string]string{"f.txt": "F"}, want: map[string]string{"/app/f.txt": "F", "/app/sub/f.txt": "F"}},
		// BuildKit v0.32: each over the one before, where Docker's reference asks
		// for a directory.
		{name: "several sources onto a new path keep the last", dockerfile: `FROM BASE
COPY a b /dest`, files: map[string]string{"a": "a", "b": "b"}, want: map[string]string{"/dest": "b"}},
		// ONBUILD, HEALTHCHECK, VOLUME, EXPOSE, STOPSIGNAL.
		{name: "onbuild runs in child stage only", dockerfile: `FROM BASE AS parent
ONBUILD RUN echo child > /onbuild
RUN test ! -e /onbuild
FROM parent
RUN cat /onbuild > /seen`, want: map[string]string{"/seen": "child\n"},
			check: func(t *testing.T, cf *v1.ConfigFile) {
				if len(cf.Config.OnBuild) != 0 {
					t.Errorf("child OnBuild = %q, want none", cf.Config.OnBuild)
				}
			}},
		{name: "healthcheck none and cmd-shell", dockerfile: `FROM BASE AS a
HEALTHCHECK CMD curl -f http://localhost/
FROM BASE
HEALTHCHECK NONE`, check: func(t *testing.T, cf *v1.ConfigFile) {
			if cf.Config.Healthcheck == nil || !reflect.DeepEqual(cf.Config.Healthcheck.Test, []string{"NONE"}) {
				t.Errorf("Healthcheck = %+v", cf.Config.Healthcheck)
			}
		}},
		{name: "expose range and volumes", dockerfile: `FROM BASE
EXPOSE 8000-8002/tcp 9000/udp
VOLUME /a /b
VOLUME ["/c"]`, check: func(t *testing.T, cf *v1.ConfigFile) {
			wantPorts := map[string]struct{}{"8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}, "9000/udp": {}}
			if !reflect.DeepEqual(cf.Config.ExposedPorts, wantPorts) {
				t.Errorf("ExposedPorts = %v", cf.Config.ExposedPorts)
			}
			if len(cf.Config.Volumes) != 3 {
				t.Errorf("Volumes = %v", cf.Config.Volumes)
			}
		}},
		{name: "invalid stopsignal fails", dockerfile: `FROM BASE
STOPSIGNAL SIGNOPE`, wantErr: "SIGNOPE"},
		// Heredocs.
		{name: "heredoc copy and run", dockerfile: "FROM BASE\nCOPY <<EOF /greeting\nhello\nEOF\nRUN <<EOT\necho one > /one\necho two >> /one\nEOT\n",
			want: map[string]string{"/greeting": "hello\n", "/one": "one\ntwo\n"}},
		// Whiteouts across stages.
		{name: "deleted base file stays deleted in child stage", dockerfile: `FROM BASE AS p
RUN rm /etc/group && mkdir -p /d && touch /d/x
FROM p
RUN rm -r /d && mkdir /d && touch /d/y`, want: map[string]string{"/d/y": ""}, absent: []string{"/etc/group", "/d/x"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"Dockerfile": strings.ReplaceAll(tc.dockerfile, "BASE", host+"/busybox:latest")}
			for k, v := range tc.files {
				files[k] = v
			}
			dir := project(t, files)
			dest := filepath.Join(out, strings.ReplaceAll(tc.name, " ", "_")+".tar")
			args := append([]string{"build", "--root", root, "--progress", "plain", "-o", "type=oci,dest=" + dest}, tc.args...)
			r := kiln(t, dir, append(args, ".")...)
			if tc.wantErr != "" {
				if r.code == 0 || !strings.Contains(r.stderr, tc.wantErr) {
					t.Fatalf("want failure mentioning %q, got exit %d:\n%s", tc.wantErr, r.code, r.stderr)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("case %d: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
			}
			img := readOCI(t, dest)
			got := flatten(t, img)
			for p, want := range tc.want {
				if f, ok := got[p]; !ok || f.content != want {
					t.Errorf("%s = %q (present %v), want %q", p, f.content, ok, want)
				}
			}
			for _, p := range tc.absent {
				if _, ok := got[p]; ok {
					t.Errorf("%s should be absent", p)
				}
			}
			if tc.check != nil {
				tc.check(t, config(t, img))
			}
		})
	}
}
