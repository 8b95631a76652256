package main

import (
	"strings"
	"testing"
)

// --platform a,b,…: containerd's normalisation, each platform once, in order.
func TestTargetPlatforms(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "", want: "linux/" + hostArch()},
		{in: "linux/amd64,linux/arm64", want: "linux/amd64 linux/arm64"},
		{in: " linux/arm64 , linux/aarch64,linux/arm64/v8", want: "linux/arm64"},
		{in: "linux/arm,linux/arm/v6,linux/x86_64", want: "linux/arm/v7 linux/arm/v6 linux/amd64"},
		{in: "linux/amd64,,linux/arm64", err: "empty platform"},
		{in: "windows/amd64", err: "Linux images only"},
		{in: "linux/amd64,linux/no/such/thing", err: "--platform linux/no/such/thing"},
	} {
		got, err := buildOptions{platform: tc.in}.targetPlatforms()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		var names []string
		for _, p := range got {
			names = append(names, p.String())
		}
		if err != nil || strings.Join(names, " ") != tc.want {
			t.Errorf("%q: %v (%v), want %s", tc.in, names, err, tc.want)
		}
	}
}
