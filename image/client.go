package image

import (
	"context"
	"fmt"
	"net/http"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Client is one kiln process's side of the registries it talks to: one pool of
// connections, and per repository one authenticated transport that every pull,
// remote-cache read and remote-cache write reuses.
//
// Without it each registry call made its own transport: a new connection (on a
// real registry, a TLS handshake), a ping of /v2/ and, where the registry wants a
// token, a token request, before the call's own request. A build on an empty root
// with a --cache-from made about ten such calls before its first layer byte (W5:
// the cache's manifest and config, the base's manifest, each small cache blob);
// the idle connections of the abandoned transports stayed open until the registry
// closed them.
//
// A nil *Client is valid and makes every call start afresh, as before.
type Client struct {
	transport *http.Transport // the connections, to close at the end
	rt        http.RoundTripper
	puller    *remote.Puller
	pusher    *remote.Pusher
}

// NewClient makes a Client whose requests fail after stall without a byte (0:
// DefaultStallTimeout).
func NewClient(stall time.Duration) (*Client, error) {
	t, rt := registryTransport(stall)
	base := baseOptions(context.Background(), rt)
	puller, err := remote.NewPuller(base...)
	if err != nil {
		return nil, fmt.Errorf("registry client: %w", err)
	}
	pusher, err := remote.NewPusher(base...)
	if err != nil {
		return nil, fmt.Errorf("registry client: %w", err)
	}
	return &Client{transport: t, rt: rt, puller: puller, pusher: pusher}, nil
}

// Options are the ggcr options of one call on c, bounded by ctx. jobs and stall
// apply only to a nil c (a Client has its own).
func (c *Client) Options(ctx context.Context, jobs int, stall time.Duration) []remote.Option {
	if c == nil {
		return remoteOptions(ctx, jobs, stall, nil)
	}
	return []remote.Option{remote.WithContext(ctx), remote.Reuse(c.puller), remote.Reuse(c.pusher)}
}

// pushOptions are the options of a push (remote.MultiWrite), which reports its
// progress on updates: a reused Pusher would report on its own channel, so a push
// shares only c's connections.
func (c *Client) pushOptions(ctx context.Context, jobs int, stall time.Duration, updates chan<- v1.Update) []remote.Option {
	if c == nil {
		return remoteOptions(ctx, jobs, stall, updates)
	}
	return remoteOptionsWith(ctx, c.rt, jobs, updates)
}

// Close closes the idle connections. Calls in flight carry on.
func (c *Client) Close() {
	if c != nil {
		c.transport.CloseIdleConnections()
	}
}
