package main

import (
	"fmt"
	"net"
	"strings"

	units "github.com/docker/go-units"

	"github.com/kiln-build/kiln/exec"
)

// sandboxFlags are the buildx flags that shape every RUN's sandbox beyond its
// limits: --add-host, --shm-size, --ulimit. Each is part of a RUN's key.
type sandboxFlags struct {
	addHosts []string
	shmSize  string
	ulimits  []string
}

// parse checks the flags and gives the exec values.
func (f sandboxFlags) parse() ([]exec.Host, int64, []exec.Ulimit, error) {
	var hosts []exec.Host
	for _, v := range f.addHosts {
		h, err := parseAddHost(v)
		if err != nil {
			return nil, 0, nil, err
		}
		hosts = append(hosts, h)
	}
	var shm int64
	if f.shmSize != "" {
		n, err := units.RAMInBytes(f.shmSize)
		if err != nil || n <= 0 {
			return nil, 0, nil, fmt.Errorf("--shm-size=%s: want a size such as 128m or 1g", f.shmSize)
		}
		shm = n
	}
	var ulimits []exec.Ulimit
	for _, v := range f.ulimits {
		u, err := units.ParseUlimit(v)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("--ulimit %s: %w (e.g. nofile=1024:4096)", v, err)
		}
		rl, err := u.GetRlimit()
		if err != nil {
			return nil, 0, nil, fmt.Errorf("--ulimit %s: %w", v, err)
		}
		ulimits = append(ulimits, exec.Ulimit{Resource: rl.Type, Soft: rl.Soft, Hard: rl.Hard})
	}
	return hosts, shm, ulimits, nil
}

// parseAddHost reads HOST:IP or HOST=IP, as buildx (an IPv6 address may follow the
// first colon: "db:::1").
func parseAddHost(v string) (exec.Host, error) {
	name, ip, ok := strings.Cut(v, "=")
	if !ok {
		name, ip, ok = strings.Cut(v, ":")
	}
	if !ok || name == "" || ip == "" {
		return exec.Host{}, fmt.Errorf("--add-host %s: want HOST:IP", v)
	}
	if ip == "host-gateway" {
		return exec.Host{}, fmt.Errorf("--add-host %s: host-gateway is a Docker daemon setting kiln has not got; give the address", v)
	}
	if net.ParseIP(strings.Trim(ip, "[]")) == nil {
		return exec.Host{}, fmt.Errorf("--add-host %s: %q is not an IP address", v, ip)
	}
	return exec.Host{Name: name, IP: strings.Trim(ip, "[]")}, nil
}
