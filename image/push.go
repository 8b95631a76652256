package image

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push uploads img under every tag: blobs the registry has are skipped, cross-repo
// mounts used where possible, uploads concurrent, bounded retries.
//
// ggcr does the protocol: a HEAD per blob to skip what the registry has, a mount
// request for layers marked with MountableFrom whose source is another repository of
// the same registry, uploads in parallel (Jobs, default 4), retries of transient
// failures.
//
// img is an image or an image index (a multi-platform build's), pushed with every
// manifest it lists.
func Push(ctx context.Context, img remote.Taggable, tags []string, opts PushOptions) error {
	if len(tags) == 0 {
		return fmt.Errorf("push: no tag given")
	}
	todo := map[name.Reference]remote.Taggable{}
	var hosts []string
	for _, t := range tags {
		tag, err := parseTag(t, opts.InsecureRegistry)
		if err != nil {
			return err
		}
		todo[tag] = img
		hosts = append(hosts, tag.RegistryStr())
	}

	var updates chan v1.Update
	done := make(chan struct{})
	if opts.Progress != nil {
		updates = make(chan v1.Update, 16)
		go func() {
			defer close(done)
			reportPushProgress(updates, strings.Join(tags, ", "), opts.Progress)
		}()
	} else {
		close(done)
	}
	// MultiWrite closes updates when it returns (our options cannot fail to apply,
	// which is the only path where it would not), so the reporter always ends.
	err := remote.MultiWrite(todo, opts.Client.pushOptions(ctx, opts.Jobs, opts.StallTimeout, updates)...)
	<-done
	if err != nil {
		ref := strings.Join(tags, ", ")
		return registryError("push", ref, strings.Join(dedupe(hosts), ", "), err)
	}
	return nil
}

// reportPushProgress turns ggcr's byte counts into at most a few messages a second
// plus the final one; it returns when ggcr closes updates.
func reportPushProgress(updates <-chan v1.Update, what string, report func(string)) {
	var last time.Time
	var u v1.Update
	for u = range updates {
		if u.Error != nil {
			continue
		}
		if time.Since(last) < 200*time.Millisecond && u.Complete != u.Total {
			continue
		}
		last = time.Now()
		report(fmt.Sprintf("pushing %s: %d/%d bytes", what, u.Complete, u.Total))
	}
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
