package image

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Kinds of registry failure; test with errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrUnauthorized = errors.New("unauthorized")
	ErrUnreachable  = errors.New("registry unreachable")
)

// RegistryError is a registry failure a user can act on: which image or registry, and
// what kind of failure (one of the Err* kinds, nil when unclassified).
type RegistryError struct {
	Op   string // "pull" or "push"
	Ref  string // normalised reference
	Host string // registry host[:port]
	Kind error
	Err  error
}

func (e *RegistryError) Error() string {
	switch e.Kind {
	case ErrNotFound:
		return fmt.Sprintf("image %s not found", e.Ref)
	case ErrUnauthorized:
		if e.Op == "push" {
			return fmt.Sprintf("push access denied to %s: not authorized; run docker login %s", e.Ref, e.Host)
		}
		return fmt.Sprintf("pull access denied for %s: repository does not exist or may require authorization; run docker login %s", e.Ref, e.Host)
	case ErrTooLarge:
		var tl *tooLargeError
		if errors.As(e.Err, &tl) {
			return fmt.Sprintf("%s %s: registry %s: %v", e.Op, e.Ref, e.Host, tl)
		}
	case ErrUnreachable:
		// ggcr tries https then http and joins both failures; the first network error
		// says it all.
		cause := e.Err
		var opErr *net.OpError
		var dnsErr *net.DNSError
		if errors.As(e.Err, &dnsErr) {
			cause = dnsErr
		} else if errors.As(e.Err, &opErr) {
			cause = opErr
		}
		return fmt.Sprintf("%s %s: cannot reach registry %s: %v", e.Op, e.Ref, e.Host, cause)
	}
	if strings.Contains(e.Err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Sprintf("%s %s: registry %s speaks plain HTTP; pass --insecure-registry %s", e.Op, e.Ref, e.Host, e.Host)
	}
	return fmt.Sprintf("%s %s (registry %s): %v", e.Op, e.Ref, e.Host, e.Err)
}

func (e *RegistryError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound) and friends work.
func (e *RegistryError) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// registryError classifies err from ggcr for the user.
func registryError(op, ref, host string, err error) error {
	if err == nil {
		return nil
	}
	return &RegistryError{Op: op, Ref: ref, Host: host, Kind: classify(err), Err: err}
}

func classify(err error) error {
	if errors.Is(err, ErrTooLarge) {
		return ErrTooLarge
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
				return ErrNotFound
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return ErrUnauthorized
			}
		}
		switch terr.StatusCode {
		case http.StatusNotFound:
			return ErrNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return ErrUnauthorized
		}
		return nil
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) || errors.As(err, &opErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return ErrUnreachable
	}
	return nil
}
