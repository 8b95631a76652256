package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"strings"
)

// Load is --load: the image into the local image store people run it from. A Docker
// daemon when its socket answers (the docker tarball posted to its /images/load, as
// `docker load` does); else podman's and buildah's containers-storage through
// skopeo; else an error that says what to install or which output to use instead.
type Load struct {
	// DockerHost is the daemon's address: "" means $DOCKER_HOST, else
	// unix:///var/run/docker.sock.
	DockerHost string
	// TempDir holds the docker tarball skopeo reads (the store's tmp/).
	TempDir string
}

func (o Load) Write(ctx context.Context, b Built) error {
	if len(b.Tags) == 0 {
		return fmt.Errorf("--load needs a name for the image: give -t NAME:TAG")
	}
	sock, err := dockerSocket(o.DockerHost)
	if err != nil {
		return err
	}
	if sock != "" && socketAnswers(ctx, sock) {
		return wrapOutput("load", "the Docker daemon at "+sock, loadIntoDocker(ctx, sock, b))
	}
	if skopeo, err := osexec.LookPath("skopeo"); err == nil {
		return wrapOutput("load", "containers-storage", loadIntoContainersStorage(ctx, skopeo, o.TempDir, b))
	}
	where := "no Docker daemon answers"
	if sock != "" {
		where = "no Docker daemon answers at " + sock
	}
	return fmt.Errorf("--load: %s and skopeo (for podman's containers-storage) is not installed; "+
		"start Docker, install skopeo, or write the image with -o type=docker,dest=FILE and load it with docker load -i FILE", where)
}

// dockerSocket is the unix socket of DOCKER_HOST (or host), "" when it names none.
func dockerSocket(host string) (string, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		return "/var/run/docker.sock", nil
	}
	if p, ok := strings.CutPrefix(host, "unix://"); ok {
		return p, nil
	}
	return "", fmt.Errorf("--load: DOCKER_HOST=%s: kiln loads into a Docker daemon over its unix socket only; use -o type=docker,dest=FILE and docker load", host)
}

func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// socketAnswers says whether a Docker daemon answers its ping at sock.
func socketAnswers(ctx context.Context, sock string) bool {
	if _, err := os.Stat(sock); err != nil {
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return false
	}
	resp, err := unixClient(sock).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// loadIntoDocker streams the docker tarball of b to the daemon, as docker load.
func loadIntoDocker(ctx context.Context, sock string, b Built) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteDockerArchive(ctx, b.Image, b.Tags, pw)) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://docker/images/load?quiet=1", pr)
	if err != nil {
		pr.Close()
		return err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := unixClient(sock).Do(req)
	if err != nil {
		pr.Close()
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the daemon answered %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	// The answer is JSON messages; an error is one of them.
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			break
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
	return nil
}

// loadIntoContainersStorage writes b as a docker tarball and has skopeo copy it
// into containers-storage under each tag (podman images lists it).
func loadIntoContainersStorage(ctx context.Context, skopeo, tmpDir string, b Built) error {
	f, err := os.CreateTemp(tmpDir, "load-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = WriteDockerArchive(ctx, b.Image, b.Tags[:1], f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	for _, tag := range b.Tags {
		ref, err := parseTag(tag, nil)
		if err != nil {
			return err
		}
		cmd := osexec.CommandContext(ctx, skopeo, "copy", "--quiet", "docker-archive:"+f.Name(), "containers-storage:"+ref.Name())
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("skopeo copy into containers-storage:%s: %w: %s", ref.Name(), err, bytes.TrimSpace(out))
		}
	}
	return nil
}
