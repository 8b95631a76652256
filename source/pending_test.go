package source

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// A pending copy skips the lstat of files that land in directories the step itself
// made; the rules must stay those of a copy that writes: a file over a directory an
// earlier source made is refused, a file over a file is replaced by the later one.
func TestPendingCopyInMadeDirectories(t *testing.T) {
	for _, pending := range []bool{false, true} {
		for _, tc := range []struct {
			name    string
			ctx     map[string]string
			wantErr string
			want    string // the pending source (or written content) of d/sub/x
		}{
			{name: "file over made dir", ctx: map[string]string{"a/sub/x/f": "F", "b/sub/x": "X"},
				wantErr: "cannot replace directory /d/sub/x with a file"},
			{name: "file over file", ctx: map[string]string{"a/sub/x": "first", "b/sub/x": "second"}, want: "second"},
		} {
			ctxDir, root := t.TempDir(), t.TempDir()
			writeTree(t, ctxDir, tc.ctx)
			opts := CopyOptions{Sources: []string{"a", "b"}, Dest: "/d/"}
			var p *Pending
			if pending {
				p = NewPending(root)
				opts.Pending = p
			}
			err := Copy(context.Background(), Source{Root: ctxDir, Context: openCtx(t, ctxDir)}, root, opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s (pending %v): error %v, want %q", tc.name, pending, err, tc.wantErr)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s (pending %v): %v", tc.name, pending, err)
			}
			got := readTree(t, root)["d/sub/x"]
			if pending {
				got = ""
				for _, f := range p.Files() {
					if f.Name == "d/sub/x" {
						got = readTree(t, filepath.Dir(f.Source))[filepath.Base(f.Source)]
					}
				}
			}
			if got != tc.want {
				t.Fatalf("%s (pending %v): d/sub/x is %q, want %q", tc.name, pending, got, tc.want)
			}
		}
	}
}
