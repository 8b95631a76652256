package parser

import (
	"reflect"
	"strings"
	"testing"
)

func TestStageGraph(t *testing.T) {
	tests := []struct {
		name     string
		df       string
		target   string
		bases    []int   // BaseStage per stage
		deps     [][]int // Deps per stage
		wantT    int
		needed   []int
		warnings int
	}{
		{
			name:  "FROM stage by name",
			df:    "FROM busybox AS base\nFROM base\n",
			bases: []int{-1, 0}, deps: [][]int{nil, {0}}, wantT: 1, needed: []int{0, 1},
		},
		{
			name:  "FROM stage by index",
			df:    "FROM busybox\nFROM busybox\nFROM 1\n",
			bases: []int{-1, -1, 1}, deps: [][]int{nil, nil, {1}}, wantT: 2, needed: []int{1, 2},
		},
		{
			// BuildKit: a stage's own name in its FROM is the image (FROM alpine AS alpine).
			name:  "FROM own name is an image",
			df:    "FROM busybox AS busybox\n",
			bases: []int{-1}, deps: [][]int{nil}, wantT: 0, needed: []int{0},
		},
		{
			name:  "FROM later name is an image, with a warning",
			df:    "FROM tools\nFROM busybox AS tools\n",
			bases: []int{-1, -1}, deps: [][]int{nil, nil}, wantT: 1, needed: []int{1}, warnings: 1,
		},
		{
			name: "COPY --from name, index, image and RUN --mount from",
			df: "FROM busybox AS a\nFROM busybox AS b\nFROM busybox AS c\nFROM busybox\n" +
				"COPY --from=C /x /x\nCOPY --from=0 /y /y\nCOPY --from=alpine:3 /z /z\n" +
				"RUN --mount=type=bind,from=b,target=/b --mount=type=cache,target=/c true\nCOPY --from=c /x /w\n",
			bases: []int{-1, -1, -1, -1}, deps: [][]int{nil, nil, nil, {2, 0, 1}}, wantT: 3, needed: []int{0, 1, 2, 3},
		},
		{
			name: "target prunes unneeded stages",
			df: "FROM busybox AS a\nFROM busybox AS b\nCOPY --from=a / /\n" +
				"FROM busybox AS unrelated\nFROM b AS final\n" +
				"FROM busybox AS uses\nRUN --mount=from=final,target=/f false\n" +
				// broken: reads itself and a later stage, and inherits a bad ONBUILD
				"FROM busybox AS broken\nCOPY --from=broken / /\nRUN --mount=from=last,target=/l true\nONBUILD COPPY a b\n" +
				"FROM broken AS last\n",
			target: "final",
			bases:  []int{-1, -1, -1, 1, -1, -1, 5}, deps: [][]int{nil, {0}, nil, {1}, {3}, nil, {5}}, wantT: 3, needed: []int{0, 1, 3},
		},
		{
			name:   "independent stages keep file order",
			df:     "FROM busybox AS x\nFROM busybox AS y\nFROM busybox AS z\nCOPY --from=y / /\nCOPY --from=x / /\n",
			target: "Z",
			bases:  []int{-1, -1, -1}, deps: [][]int{nil, nil, {1, 0}}, wantT: 2, needed: []int{0, 1, 2},
		},
		{
			// BuildKit: a FROM builds on the latest earlier stage of the name, and
			// --from and --target name the last one; a warning for the second name.
			name: "a name two stages have",
			df: "FROM busybox AS dup\nFROM dup AS mid\nFROM busybox AS dup\nFROM dup AS top\n" +
				"FROM busybox\nCOPY --from=dup /x /x\n",
			bases: []int{-1, 0, -1, 2, -1}, deps: [][]int{nil, {0}, nil, {2}, {2}}, wantT: 4, needed: []int{2, 4}, warnings: 1,
		},
		{
			name:   "a name two stages have as the target",
			df:     "FROM busybox AS dup\nFROM busybox AS dup\nFROM busybox\n",
			target: "dup",
			bases:  []int{-1, -1, -1}, deps: [][]int{nil, nil, nil}, wantT: 1, needed: []int{1}, warnings: 1,
		},
		{
			name:  "ONBUILD trigger of a base stage adds its deps",
			df:    "FROM busybox AS assets\nFROM busybox AS tmpl\nONBUILD COPY --from=assets /a /a\nFROM tmpl\n",
			bases: []int{-1, -1, 1}, deps: [][]int{nil, nil, {1, 0}}, wantT: 2, needed: []int{0, 1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustParse(t, tt.df, Options{Target: tt.target})
			if len(g.Stages) != len(tt.bases) {
				t.Fatalf("stages = %d, want %d", len(g.Stages), len(tt.bases))
			}
			for i, st := range g.Stages {
				if st.Index != i || st.BaseStage != tt.bases[i] {
					t.Errorf("stage %d: Index %d BaseStage %d, want %d", i, st.Index, st.BaseStage, tt.bases[i])
				}
				if !reflect.DeepEqual(st.Deps, tt.deps[i]) {
					t.Errorf("stage %d: Deps %v, want %v", i, st.Deps, tt.deps[i])
				}
			}
			if g.Target != tt.wantT || !reflect.DeepEqual(g.Needed, tt.needed) {
				t.Errorf("Target %d Needed %v, want %d %v", g.Target, g.Needed, tt.wantT, tt.needed)
			}
			if len(g.Warnings) != tt.warnings {
				t.Errorf("Warnings = %q, want %d", g.Warnings, tt.warnings)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		df     string
		opts   Options
		line   int
		substr []string
	}{
		{
			name: "unknown instruction", df: "FROM busybox\n\nCOPPY a b\n",
			line: 3, substr: []string{"Dockerfile:3: unknown instruction: COPPY (did you mean COPY?)"},
		},
		{name: "empty file", df: "", substr: []string{"Dockerfile: ", "no instructions"}},
		{name: "only comments", df: "# hello\n\n   \n", substr: []string{"no instructions"}},
		{
			name: "missing FROM", df: "ARG X=1\nRUN echo hi\n", line: 2,
			substr: []string{"Dockerfile:2: no build stage in current context", "RUN"},
		},
		{name: "only ARG", df: "ARG X=1\n", substr: []string{"no FROM"}},
		{
			name: "target not found", df: "FROM busybox AS build\nFROM busybox AS final\n",
			opts:   Options{Target: "biuld"},
			substr: []string{`target stage "biuld" could not be found`, "did you mean build?", "stages: build, final"},
		},
		{
			name: "COPY --from later stage", df: "FROM busybox AS a\nCOPY --from=b / /\nFROM busybox AS b\n", line: 2,
			opts:   Options{Target: "a"},
			substr: []string{"Dockerfile:2:", `stage "b"`, "defined after"},
		},
		{
			name: "COPY --from itself", df: "FROM busybox AS a\nCOPY --from=a / /\n", line: 2,
			substr: []string{"current stage"},
		},
		{
			name: "RUN --mount from later stage", df: "FROM busybox AS r\nRUN --mount=from=x,target=/x true\nFROM busybox AS x\n", line: 2,
			opts:   Options{Target: "r"},
			substr: []string{"RUN --mount from=x"},
		},
		{
			name: "needed stage inherits a bad ONBUILD", df: "FROM busybox AS t\nONBUILD COPPY a b\nFROM t\n", line: 3,
			substr: []string{"Dockerfile:3: ONBUILD trigger from line 2: unknown instruction: COPPY"},
		},
		{
			name: "needed stage depends on a broken one", df: "FROM busybox AS a\nCOPY --from=a / /\nFROM a\n", line: 2,
			substr: []string{"Dockerfile:2: COPY --from=a", "current stage"},
		},
		{
			name: "FROM later index", df: "FROM 1\nFROM busybox\n", line: 1,
			substr: []string{"stage index 1 is not an earlier stage"},
		},
		{
			name: "COPY --from bad index", df: "FROM busybox\nCOPY --from=7 / /\n", line: 2,
			substr: []string{"invalid stage index 7"},
		},
		{
			name: "COPY --from variable", df: "FROM busybox\nARG S=a\nCOPY --from=$S / /\n", line: 3,
			substr: []string{"variable expansion is not supported for --from"},
		},
		{
			name: "blank base", df: "ARG IMG\nFROM $IMG\n", line: 2,
			substr: []string{"base name ($IMG) should not be blank"},
		},
		{
			name: "bad stage name", df: "FROM busybox AS 1st\n", line: 1,
			substr: []string{"invalid name for build stage"},
		},
		{
			name: "bad flag", df: "FROM busybox\nCOPY --nope=1 a b\n", line: 2,
			substr: []string{"Dockerfile:2:", "unknown flag: --nope"},
		},
		{
			name: "unterminated heredoc", df: "FROM busybox\nRUN <<EOF\necho\n", line: 2,
			substr: []string{"unterminated heredoc"},
		},
		{
			name: "bad escape directive", df: "# syntax=docker/dockerfile:1\n# escape=x\nFROM busybox\n", line: 2,
			substr: []string{"Dockerfile:2: invalid escape token 'x'"},
		},
		{
			name: "repeated directive", df: "# escape=`\n# escape=`\nFROM busybox\n", line: 2,
			substr: []string{"Dockerfile:2: only one escape parser directive can be used"},
		},
		{
			name: "bad target platform", df: "FROM busybox\n", opts: Options{TargetPlatform: "a/b/c/d"},
			substr: []string{"target platform", "a/b/c/d"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Parse(strings.NewReader(tt.df), tt.opts)
			if err == nil {
				t.Fatalf("no error; graph %+v", g)
			}
			pe, ok := err.(*Error)
			if !ok {
				t.Fatalf("err is %T, want *Error: %v", err, err)
			}
			if pe.File != "Dockerfile" || pe.Line != tt.line {
				t.Errorf("File %q Line %d, want Dockerfile %d (err %q)", pe.File, pe.Line, tt.line, err)
			}
			if tt.line > 0 {
				if want := strings.Split(tt.df, "\n")[tt.line-1]; pe.Src != want {
					t.Errorf("Src = %q, want %q", pe.Src, want)
				}
			}
			for _, s := range tt.substr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestFilenameInErrors(t *testing.T) {
	_, err := Parse(strings.NewReader("FROM busybox\nBOGUS x\n"), Options{Filename: "build/Containerfile"})
	if err == nil || !strings.HasPrefix(err.Error(), "build/Containerfile:2: unknown instruction: BOGUS") {
		t.Errorf("err = %v", err)
	}
}

func TestInvalidJSONFallsBackToShellForm(t *testing.T) {
	g := mustParse(t, "FROM busybox\nCMD [\"echo\", hi]\n", Options{})
	cmd := g.Stages[0].Commands[0].Command
	if got := reflect.ValueOf(cmd).Elem().FieldByName("PrependShell").Bool(); !got {
		t.Errorf("CMD with invalid JSON should be shell form: %+v", cmd)
	}
}

func TestGarbageDoesNotPanic(t *testing.T) {
	inputs := []string{
		"\x00\x01\x02\xff\xfe",
		"FROM \x00\nRUN \xff\n",
		"FROM busybox\nRUN <<\n",
		"FROM busybox\nONBUILD\n",
		"\\\n\\\n\\",
		"# check=skip=all\nFROM a\n# check=error=true;skip=x\nRUN x\n",
		"FROM a AS b\nFROM b\nONBUILD COPY --from=\x00 / /\nFROM 1\n",
	}
	for _, in := range inputs {
		g, err := Parse(strings.NewReader(in), Options{})
		if err == nil && g == nil {
			t.Errorf("%q: nil graph and nil error", in)
		}
		if err != nil && strings.ContainsRune(err.Error(), 0) {
			t.Errorf("%q: error carries a NUL byte: %q", in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"FROM busybox\nRUN echo hi\n",
		"# syntax=docker/dockerfile:1\n# escape=`\nARG A=b\nFROM $A AS x\nCOPY --from=x / /\n",
		"FROM a AS b\nRUN <<EOF\nx\nEOF\nFROM b\nONBUILD COPY --from=b / /\nFROM 1\n",
		"FROM busybox\nRUN --mount=type=cache,target=/c,from=x true\nHEALTHCHECK --interval=1s CMD true\n",
		"",
		"\x00",
	} {
		f.Add(s, "")
	}
	f.Add("FROM a AS one\nFROM b AS two\n", "one")
	f.Fuzz(func(t *testing.T, df, target string) {
		g, err := Parse(strings.NewReader(df), Options{Target: target})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error is %T, not *Error: %v", err, err)
			}
			return
		}
		if len(g.Needed) == 0 || g.Needed[len(g.Needed)-1] != g.Target {
			t.Fatalf("Needed %v does not end with target %d", g.Needed, g.Target)
		}
		for _, st := range g.Stages {
			for _, d := range st.Deps {
				if d >= st.Index {
					t.Fatalf("stage %d depends on later stage %d", st.Index, d)
				}
			}
		}
	})
}
