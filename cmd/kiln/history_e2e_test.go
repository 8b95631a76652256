package main

import (
	"slices"
	"testing"
)

// The history lines `docker history` shows are BuildKit's: a COPY or ADD names the
// flags that change the files (--parents, --chown, --chmod, expanded), its sources
// as written, heredocs as <<NAME after them, and the destination; EXPOSE prints the
// parsed ports, duplicates kept, a host-port mapping reduced to the port. Every line
// below is what BuildKit v0.32.2 wrote for this Dockerfile (buildctl, OCI output).
func TestHistoryLinesAreBuildKits(t *testing.T) {
	c := newConform(t)
	dir := c.project(`FROM BASE
ARG U=3
COPY --chown=$U:4 a /x/
COPY --parents p/*/b /par/
COPY <<EOT a /h/
hello
EOT
COPY --chmod=u+x,g=r a /m
COPY --link --exclude=*.tmp a /l/
EXPOSE 80 80/tcp 8080:90/UDP 7000-7002 127.0.0.1:5000:5000
EXPOSE 53/sctp
`, map[string]string{"a": "a\n", "p/q/b": "b\n"})
	cf := config(t, c.build(dir))
	var got []string
	for _, h := range cf.History[1:] { // [0] is the base's
		got = append(got, h.CreatedBy)
	}
	want := []string{
		"ARG U=3",
		"COPY --chown=3:4 a /x/ # buildkit",
		"COPY --parents p/*/b /par/ # buildkit",
		"COPY a <<EOT /h/ # buildkit",
		"COPY --chmod=u+x,g=r a /m # buildkit",
		"COPY a /l/ # buildkit",
		"EXPOSE [5000/tcp 7000/tcp 7001/tcp 7002/tcp 80/tcp 80/tcp 90/udp]",
		"EXPOSE [53/sctp]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("history:\n got %q\nwant %q", got, want)
	}
	var ports []string
	for p := range cf.Config.ExposedPorts {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	if want := []string{"5000/tcp", "53/sctp", "7000/tcp", "7001/tcp", "7002/tcp", "80/tcp", "90/udp"}; !slices.Equal(ports, want) {
		t.Errorf("ExposedPorts %q, want %q", ports, want)
	}
}
