package dockerfile

import (
	"slices"
	"strings"
	"testing"
)

// EXPOSE words parse as BuildKit's dispatchExpose parses them (BuildKit v0.32.2
// accepted or refused each of these the same way, measured with buildctl).
func TestExposedPorts(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "80", want: []string{"80/tcp"}},
		{in: "53/UDP", want: []string{"53/udp"}},
		{in: "7000-7002/sctp", want: []string{"7000/sctp", "7001/sctp", "7002/sctp"}},
		{in: "7000-7002", want: []string{"7000/tcp", "7001/tcp", "7002/tcp"}},
		{in: "9-9", want: []string{"9/tcp"}},
		{in: "8080:90/udp", want: []string{"90/udp"}},
		{in: "127.0.0.1:5000:5000", want: []string{"5000/tcp"}},
		{in: "[::1]:81:80", want: []string{"80/tcp"}},
		{in: "8000-8001:80", want: []string{"80/tcp"}},
		{in: "0", want: []string{"0/tcp"}},
		{in: "80/icmp", wantErr: "invalid proto"},
		{in: "/tcp", wantErr: "no port specified"},
		{in: "x", wantErr: "invalid containerPort"},
		{in: "65536", wantErr: "invalid containerPort"},
		{in: "90-80", wantErr: "invalid containerPort"},
		{in: "nothost:80", wantErr: "invalid hostPort"},
		{in: "300.1.1.1:80:80", wantErr: "invalid IP address"},
		{in: "8000-8001:80-82", wantErr: "invalid ranges"},
	} {
		got, err := exposedPorts([]string{tc.in})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("%q: err = %v, want one naming the word and %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
