// Package remote fetches the sources that live elsewhere: http(s) downloads
// (http.go), git repositories (git.go) and the --build-context values that name
// them (named.go). Everything is fetched into a scratch dir made by the caller's
// source.TempDirFunc (the store's tmp/), so a killed build leaves nothing behind
// that the next one does not remove. It is apart from package source because it
// parses git URLs with buildkit's Dockerfile dfgitutil, which the engine (which
// copies with package source) must not depend on. Not supported: git mtime=commit,
// ssh forwarding of kiln's own for git (the host's git configuration applies).
package remote
