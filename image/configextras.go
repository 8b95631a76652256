package image

import (
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ConfigExtras are the members of Docker's image config that go-containerregistry's
// v1.ConfigFile has no field for. kiln carries them beside the ConfigFile: read from
// a base image's raw config (ReadConfigExtras), set by the Dockerfile, and written
// into the config's JSON by Assemble. Without them a base image's values would be
// dropped on the way through, and the Dockerfile could not set them.
type ConfigExtras struct {
	// HealthStartInterval is config.Healthcheck.StartInterval: the time between
	// checks during the start period (HEALTHCHECK --start-interval, Docker 25). It
	// belongs to the Healthcheck: without one it is not written.
	HealthStartInterval time.Duration
}

// ReadConfigExtras reads the extras of an image's raw config.
func ReadConfigExtras(raw []byte) (ConfigExtras, error) {
	var c struct {
		Config struct {
			Healthcheck *struct {
				StartInterval time.Duration
			}
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return ConfigExtras{}, fmt.Errorf("read image config: %w", err)
	}
	var x ConfigExtras
	if h := c.Config.Healthcheck; h != nil {
		x.HealthStartInterval = h.StartInterval
	}
	return x, nil
}

// write adds the extras to raw, the JSON of cfg. Without any, raw is returned as it
// is, so an image that has none keeps the bytes (and digest) it always had.
func (x ConfigExtras) write(raw []byte, cfg *v1.ConfigFile) ([]byte, error) {
	if x.HealthStartInterval == 0 || cfg.Config.Healthcheck == nil {
		return raw, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	var config map[string]json.RawMessage
	if err := json.Unmarshal(top["config"], &config); err != nil {
		return nil, err
	}
	var health map[string]json.RawMessage
	if err := json.Unmarshal(config["Healthcheck"], &health); err != nil {
		return nil, err
	}
	var err error
	if health["StartInterval"], err = json.Marshal(x.HealthStartInterval); err != nil {
		return nil, err
	}
	if config["Healthcheck"], err = json.Marshal(health); err != nil {
		return nil, err
	}
	if top["config"], err = json.Marshal(config); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}
