package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(dir, "missing"), "no such file"},
		{file, "not a directory"},
	} {
		if _, err := Open(tc.dir, ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s) = %v, want %q", tc.dir, err, tc.want)
		}
	}
}

func TestIgnoreRules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ignore   string // dir/.dockerignore
		dfIgnore string // Dockerfile.dockerignore, wins when set
		excluded []string
		included []string
	}{
		{
			name:     "double star",
			ignore:   "**/*.log\n",
			excluded: []string{"a.log", "x/y/z.log"},
			included: []string{"a.txt", "x/y/z.txt"},
		},
		{
			name:     "exception",
			ignore:   "docs\n!docs/keep.md\n",
			excluded: []string{"docs", "docs/other.md"},
			included: []string{"docs/keep.md", "src/a.go"},
		},
		{
			name:     "last match wins",
			ignore:   "*.md\n!README.md\nREADME.md\n",
			excluded: []string{"README.md", "a.md"},
			included: []string{"a.go"},
		},
		{
			name:     "Dockerfile and ignore file not implicit",
			ignore:   "tmp\n",
			excluded: []string{"tmp"},
			included: []string{"Dockerfile", ".dockerignore"},
		},
		{
			name:     "dockerfile-specific file wins",
			ignore:   "*.go\n",
			dfIgnore: "*.txt\n",
			excluded: []string{"a.txt"},
			included: []string{"a.go"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(tc.ignore), 0o644); err != nil {
				t.Fatal(err)
			}
			// The Dockerfile lives outside the context, as with -f.
			dfDir := t.TempDir()
			df := filepath.Join(dfDir, "Dockerfile")
			if tc.dfIgnore != "" {
				if err := os.WriteFile(df+".dockerignore", []byte(tc.dfIgnore), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Open(dir, df)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.excluded {
				if !c.Excluded(p) {
					t.Errorf("%s not excluded", p)
				}
			}
			for _, p := range tc.included {
				if c.Excluded(p) {
					t.Errorf("%s excluded", p)
				}
			}
		})
	}
}
