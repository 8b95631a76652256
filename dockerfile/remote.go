package dockerfile

import (
	"context"

	"github.com/kiln-build/kiln/source/remote"

	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"

	"github.com/kiln-build/kiln/source"
)

// gitPart prepares an ADD of a git repository (package source resolves and checks it
// out): keyed by the commit before anything is fetched.
func (b *build) gitPart(ctx context.Context, cs copySpec, base source.CopyOptions, src string, ref *dfgitutil.GitRef) (*copyPart, error) {
	g, err := remote.ResolveGitRef(ctx, ref, cs.checksum, cs.keepGitDir, b.eng.TempDir)
	if err != nil {
		return nil, err
	}
	b.recordGit(src, g.Commit())
	opts := base
	opts.Sources = []string{"."} // the checkout's contents go into dest
	opts.KeepArchives = true     // BuildKit's git copy never extracts
	p := &copyPart{
		opts: opts, content: g.Key(), release: g.Release,
		files: map[string]string{src: g.Commit()},
	}
	p.fetch = func(ctx context.Context) (source.Source, error) {
		root, err := g.Checkout(ctx)
		if err != nil {
			return source.Source{}, err
		}
		return source.Source{Root: root}, nil
	}
	return p, nil
}

// urlPart prepares an ADD of a URL. With --checksum the key is the checksum and
// the file name, and the download waits for a miss; without, the URL is fetched on
// every build and keyed by its content (see package source).
func (b *build) urlPart(ctx context.Context, cs copySpec, base source.CopyOptions, raw string) (*copyPart, error) {
	name := remote.URLFileName(raw)
	opts := base
	opts.Sources = []string{name}
	// Remote files are not extracted unless --unpack=true.
	opts.KeepArchives = cs.unpack == nil || !*cs.unpack
	p := &copyPart{opts: opts, release: func() {}}
	tmp := b.eng.TempDir
	if cs.checksum != "" {
		if err := remote.CheckSHA256(cs.checksum); err != nil {
			return nil, err
		}
		p.content = digestOf("url-checksum", name, cs.checksum)
		b.recordHTTP(raw, cs.checksum)
		p.files = map[string]string{raw: cs.checksum}
		p.fetch = func(ctx context.Context) (source.Source, error) {
			d, err := remote.FetchURL(ctx, raw, name, cs.checksum, tmp)
			if err != nil {
				return source.Source{}, err
			}
			p.release = d.Release
			return source.Source{Root: d.Dir}, nil
		}
		return p, nil
	}
	d, err := remote.FetchURL(ctx, raw, name, "", tmp)
	if err != nil {
		return nil, err
	}
	p.release = d.Release
	p.src = source.Source{Root: d.Dir}
	p.content = digestOf("url", name, d.Digest, d.LastMod)
	p.files = map[string]string{raw: d.Digest}
	b.recordHTTP(raw, d.Digest)
	return p, nil
}

// remoteContext materialises a git or URL --build-context for COPY --from.
func (b *build) remoteContext(ctx context.Context, nc remote.NamedContext) (*copySource, error) {
	f, err := remote.FetchNamed(ctx, nc, b.eng.TempDir)
	if err != nil {
		return nil, err
	}
	return &copySource{src: source.Source{Root: f.Root}, content: f.Content, release: f.Release}, nil
}
