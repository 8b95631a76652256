package testenv

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// dockerRegistryBin is Debian's docker-registry (distribution v2).
const dockerRegistryBin = "/usr/bin/docker-registry"

// DockerRegistry starts Debian's docker-registry on a free loopback port with its
// storage in a temp dir, waits until /v2/ answers and returns host:port. The process is
// killed (by its pid) when the test ends. Without the binary the test is skipped, or
// fails on CI.
func DockerRegistry(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(dockerRegistryBin); err != nil {
		skipOrFail(t, "%s not installed (apt-get install docker-registry)", dockerRegistryBin)
	}
	dir := t.TempDir()
	var lastErr error
	// A free port found by listening may be taken again before the registry binds it;
	// a second try with another port makes that race harmless.
	for try := 0; try < 3; try++ {
		host, err := startDockerRegistry(t, dir, try)
		if err == nil {
			return host
		}
		lastErr = err
	}
	t.Fatalf("docker-registry: %v", lastErr)
	return ""
}

func startDockerRegistry(t testing.TB, dir string, try int) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), host)
	cfgPath := filepath.Join(dir, fmt.Sprintf("config-%d.yml", try))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd := exec.Command(dockerRegistryBin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return "", fmt.Errorf("exited early (%v): %s", err, out.String())
		default:
		}
		resp, err := client.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(stop)
				return host, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", fmt.Errorf("/v2/ on %s did not answer: %s", host, out.String())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
