package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// AnchorDebian is the Debian image the shared anchors serve
// (../shared/bench/setup-anchors.sh, which .ci/run starts before the tests).
const AnchorDebian = "127.0.0.1:5000/debian:bookworm"

// RequireAnchorDebian skips the test when the anchors' Debian image is not served
// (fails on CI, where .ci/run starts them).
func RequireAnchorDebian(t testing.TB) {
	t.Helper()
	ref, err := name.ParseReference(AnchorDebian, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := remote.Head(ref, remote.WithContext(ctx)); err != nil {
		skipOrFail(t, "%s is not reachable (%v): run ../shared/bench/setup-anchors.sh", AnchorDebian, err)
	}
}
