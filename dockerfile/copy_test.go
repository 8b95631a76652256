package dockerfile

import "testing"

func TestChownByName(t *testing.T) {
	for in, want := range map[string]bool{"1000": false, "1000:1000": false, ":5": false, "app": true, "1000:staff": true, "app:5": true} {
		if got := chownByName(in); got != want {
			t.Errorf("chownByName(%q) = %v", in, got)
		}
	}
}
