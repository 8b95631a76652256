package panicsite

import (
	"strings"
	"testing"
)

// recovered runs fn and reports, from the recovering deferred function, whether its
// panic was raised in prefix.
func recovered(fn func(), prefix string) (panicked, in bool) {
	defer func() {
		if p := recover(); p != nil {
			panicked, in = true, In(prefix)
		}
	}()
	fn()
	return false, false
}

func TestIn(t *testing.T) {
	const self = "github.com/kiln-build/kiln/internal/panicsite"
	var m map[string]int
	var s []int
	for _, tc := range []struct {
		name   string
		fn     func()
		prefix string
		want   bool
	}{
		{"explicit panic here", func() { panic("x") }, self, true},
		{"nil map write here", func() { m["x"] = 1 }, self, true},
		{"index out of range here", func() { _ = s[len(s)+1] }, self, true},
		// strings.Repeat panics inside the standard library: the caller raised it.
		{"panic in the standard library counts for its caller", func() { strings.Repeat("x", -1) }, self, true},
		{"another package's prefix", func() { panic("x") }, "go.etcd.io/bbolt", false},
		{"a prefix of a longer name is not a match", func() { panic("x") }, self[:len(self)-4], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			panicked, in := recovered(tc.fn, tc.prefix)
			if !panicked || in != tc.want {
				t.Errorf("panicked %v, In(%q) = %v; want %v", panicked, tc.prefix, in, tc.want)
			}
		})
	}
	if In(self) {
		t.Error("In outside a panic reported true")
	}
}
