package remote

import (
	"context"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"

	"github.com/kiln-build/kiln/source"
)

// ContextKind says what a named build context is.
type ContextKind int

const (
	ContextDir       ContextKind = iota // a local directory (COPY --from=NAME)
	ContextOCILayout                    // an image in an OCI layout dir: path[:tag|@digest]
	ContextImage                        // an image reference in a registry
	ContextGit                          // a git repository (COPY --from=NAME): URL#ref:subdir
	ContextURL                          // a file at an http(s) URL, as /context (COPY --from=NAME)
)

// NamedContext is one --build-context value.
type NamedContext struct {
	Kind ContextKind
	Ref  string // the dir, the layout path with its tag/digest, or the image reference
}

// ParseNamedContext parses a --build-context value as buildx and BuildKit's dockerui
// do: oci-layout:///path[:tag|@digest], docker-image://REF, a git repository
// (git@host:repo, git://, ssh://, or http(s)://…/repo.git, with #ref:subdir), any
// other http(s) URL (a file, seen by COPY --from=NAME as /context, not extracted), or
// a local directory.
func ParseNamedContext(value string) (NamedContext, error) {
	switch {
	case strings.HasPrefix(value, "oci-layout://"):
		return NamedContext{Kind: ContextOCILayout, Ref: strings.TrimPrefix(value, "oci-layout://")}, nil
	case strings.HasPrefix(value, "docker-image://"):
		return NamedContext{Kind: ContextImage, Ref: strings.TrimPrefix(value, "docker-image://")}, nil
	}
	if kind, _, err := Classify(value); err != nil {
		return NamedContext{}, fmt.Errorf("build context %q: %w", value, err)
	} else if kind == KindGit {
		return NamedContext{Kind: ContextGit, Ref: value}, nil
	} else if kind == KindHTTP {
		return NamedContext{Kind: ContextURL, Ref: value}, nil
	}
	if strings.Contains(value, "://") {
		return NamedContext{}, fmt.Errorf("build context %q: only oci-layout://, docker-image://, git repositories, http(s) URLs and local directories are supported", value)
	}
	return NamedContext{Kind: ContextDir, Ref: value}, nil
}

// Kind is where a COPY/ADD source is read from.
type Kind int

const (
	KindLocal Kind = iota // the context, a stage, an image or a named context
	KindHTTP              // an http(s) URL
	KindGit               // a git repository
)

// Classify classifies a source as BuildKit's dispatchCopy does: a git reference
// (dfgitutil, not the deprecated "github.com/x/y" form, which is a local path here),
// else an http(s) URL, else a local path. A malformed git URL is an error.
func Classify(src string) (Kind, *dfgitutil.GitRef, error) {
	ref, isGit, err := dfgitutil.ParseGitRef(src)
	if err != nil && isGit {
		return KindGit, nil, fmt.Errorf("invalid git source %s: %w", src, err)
	}
	if err == nil && !ref.IndistinguishableFromLocal {
		return KindGit, ref, nil
	}
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		return KindHTTP, nil, nil
	}
	return KindLocal, nil, nil
}

// Fetched is a remote named context on disk.
type Fetched struct {
	Root string
	// Content names what Root holds, for a cache key: the download's digest or the
	// git commit.
	Content string
	Release func()
}

// FetchNamed materialises a --build-context that is a git repository or a URL, for
// COPY --from. A URL context is a directory holding the downloaded file as "context"
// (BuildKit's dockerui named contexts: llb.HTTP with Filename "context"); a git
// context is the checkout (its subdir when the URL names one).
func FetchNamed(ctx context.Context, nc NamedContext, tmp source.TempDirFunc) (*Fetched, error) {
	switch nc.Kind {
	case ContextURL:
		d, err := FetchURL(ctx, nc.Ref, "context", "", tmp)
		if err != nil {
			return nil, err
		}
		return &Fetched{Root: d.Dir, Content: source.DigestOf("url", "context", d.Digest, d.LastMod), Release: d.Release}, nil
	case ContextGit:
		g, err := ResolveGit(ctx, nc.Ref, "", nil, tmp)
		if err != nil {
			return nil, err
		}
		root, err := g.Checkout(ctx)
		if err != nil {
			g.Release()
			return nil, err
		}
		return &Fetched{Root: root, Content: g.Key(), Release: g.Release}, nil
	}
	return nil, fmt.Errorf("build context %s is not a git repository or a URL", nc.Ref)
}
