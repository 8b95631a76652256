package image

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestConfigExtras(t *testing.T) {
	health := &v1.HealthConfig{Test: []string{"CMD-SHELL", "true"}, Interval: 5 * time.Second}
	cfg := func(h *v1.HealthConfig) *v1.ConfigFile {
		return &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{Healthcheck: h, Env: []string{"A=1"}}}
	}
	raw := func(c *v1.ConfigFile, x ConfigExtras) []byte {
		t.Helper()
		img, err := AssembleWith(c, nil, AssembleOptions{Extras: x})
		if err != nil {
			t.Fatal(err)
		}
		b, err := img.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// No extras, or an extra without the Healthcheck it belongs to: the config is
	// what Assemble always wrote, byte for byte.
	want := raw(cfg(health), ConfigExtras{})
	if got := raw(cfg(health), ConfigExtras{}); !bytes.Equal(got, want) {
		t.Errorf("no extras changed the config")
	}
	noHealth := raw(cfg(nil), ConfigExtras{})
	if got := raw(cfg(nil), ConfigExtras{HealthStartInterval: time.Second}); !bytes.Equal(got, noHealth) {
		t.Errorf("StartInterval without a Healthcheck was written: %s", got)
	}

	// With one: written beside the Healthcheck's own members, read back, and the
	// rest of the config intact.
	got := raw(cfg(health), ConfigExtras{HealthStartInterval: 2 * time.Second})
	x, err := ReadConfigExtras(got)
	if err != nil || x.HealthStartInterval != 2*time.Second {
		t.Fatalf("ReadConfigExtras = %+v, %v; want 2s", x, err)
	}
	back, err := v1.ParseConfigFile(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	if h := back.Config.Healthcheck; h == nil || h.Interval != 5*time.Second || len(h.Test) != 2 || back.Config.Env[0] != "A=1" || back.OS != "linux" {
		t.Errorf("config after the extras: %+v", back)
	}
	var named struct {
		Config struct {
			Healthcheck map[string]json.RawMessage
		} `json:"config"`
	}
	if err := json.Unmarshal(got, &named); err != nil {
		t.Fatal(err)
	}
	if v := string(named.Config.Healthcheck["StartInterval"]); v != "2000000000" {
		t.Errorf("config.Healthcheck.StartInterval = %s, want 2000000000 (nanoseconds, as Docker writes it)", v)
	}
	if x, err := ReadConfigExtras(want); err != nil || x != (ConfigExtras{}) {
		t.Errorf("extras of a config without them = %+v, %v", x, err)
	}
	if _, err := ReadConfigExtras([]byte("{")); err == nil {
		t.Errorf("a malformed config was read")
	}
}
