package dockerfile

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte("v"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_TEST_SECRET", "x")
	tests := []struct {
		in      string
		id      string
		want    SecretSource
		wantErr bool
	}{
		{in: "id=a,src=" + file, id: "a", want: SecretSource{File: file}},
		{in: "id=a,source=" + file, id: "a", want: SecretSource{File: file}},
		{in: "id=a,env=KILN_TEST_SECRET", id: "a", want: SecretSource{Env: "KILN_TEST_SECRET"}},
		{in: "type=env,id=a,src=KILN_TEST_SECRET", id: "a", want: SecretSource{Env: "KILN_TEST_SECRET"}},
		{in: "id=KILN_TEST_SECRET", id: "KILN_TEST_SECRET", want: SecretSource{Env: "KILN_TEST_SECRET"}},
		{in: "id=a,src=" + filepath.Join(dir, "missing"), wantErr: true},
		{in: "src=" + file, wantErr: true},
		{in: "id=a,type=ssh", wantErr: true},
		{in: "id=a,bogus=1", wantErr: true},
		{in: "id=a,novalue", wantErr: true},
	}
	for _, tt := range tests {
		id, got, err := ParseSecret(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseSecret(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && (id != tt.id || got != tt.want) {
			t.Errorf("ParseSecret(%q) = %q %+v, want %q %+v", tt.in, id, got, tt.id, tt.want)
		}
	}
}

// The agent proxy relays a connection both ways and closes everything on close.
func TestAgentProxy(t *testing.T) {
	dir := t.TempDir()
	agentSock := filepath.Join(dir, "agent")
	agent, err := net.Listen("unix", agentSock)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	go func() {
		for {
			c, err := agent.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				c.Write([]byte("echo " + line))
			}()
		}
	}()
	ln, err := net.Listen("unix", filepath.Join(dir, "proxy"))
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProxy{ln: ln, agent: agentSock, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve(context.Background())
	c, err := net.Dial("unix", filepath.Join(dir, "proxy"))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hi\n"))
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "echo hi\n" {
		t.Errorf("relayed %q, %v", got, err)
	}
	c.Close()
	p.close()
	if _, err := net.Dial("unix", filepath.Join(dir, "proxy")); err == nil {
		t.Error("the proxy still accepts after close")
	}
}

// A held cache dir lock makes a private user look elsewhere and a locked user wait.
func TestLockCacheDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	held, err := lockCacheDir(context.Background(), dir, true)
	if err != nil || held == nil {
		t.Fatalf("first lock: %v %v", held, err)
	}
	if f, err := lockCacheDir(context.Background(), dir, false); err != nil || f != nil {
		t.Errorf("try-lock of a held dir = %v, %v; want nil, nil", f, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := lockCacheDir(ctx, dir, true); err == nil {
		t.Error("a waiting lock returned while the dir was held")
	}
	held.Close()
	f, err := lockCacheDir(context.Background(), dir, false)
	if err != nil || f == nil {
		t.Fatalf("lock after release: %v %v", f, err)
	}
	f.Close()
}
