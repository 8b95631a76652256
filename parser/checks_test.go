package parser

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The expectations are what BuildKit v0.34's DockerfileLint reports for the same
// files (rule, line); stages on an image have no static UndefinedVar.
func TestChecks(t *testing.T) {
	tests := []struct {
		name, df string
		check    bool
		want     []string
	}{
		{"secrets json platform", "FROM busybox AS Build\nARG MY_PASSWORD=x\nENV API_KEY=y\nFROM --platform=linux/amd64 busybox\nCMD echo hi\nENTRYPOINT echo hi\n", true,
			[]string{"StageNameCasing:1", "SecretsUsedInArgOrEnv:2", "SecretsUsedInArgOrEnv:3", "FromPlatformFlagConstDisallowed:4", "JSONArgsRecommended:5", "JSONArgsRecommended:6"}},
		{"many rules", "ARG BASE=busybox\nFROM $BASE AS base\nENV FOO=1\nFROM base\nWORKDIR rel\nCMD [\"a\"]\nCMD [\"b\"]\nEXPOSE 80/TCP\nENV LEG val\nfrom scratch AS context\nARG X\nCOPY $X $Y /\nSHELL [\"/bin/sh\",\"-c\"]\nCMD echo\nFROM --platform=$TARGETPLATFORM scratch\n", true,
			[]string{"FromAsCasing:10", "ConsistentInstructionCasing:10", "WorkdirRelativePath:5", "MultipleInstructionsDisallowed:6", "ExposeProtoCasing:8", "LegacyKeyValueFormat:9", "ReservedStageName:10", "UndefinedVar:12", "RedundantTargetPlatform:15"}},
		{"directive and comment skip", "# check=skip=JSONArgsRecommended;error=true\nFROM scratch\nENV PASSWORD=1\nCMD echo\n# check=skip=SecretsUsedInArgOrEnv\nARG TOKEN\n", true,
			[]string{"SecretsUsedInArgOrEnv:3"}},
		{"allowed secret-like names", "FROM scratch\nARG PUBLIC_KEY\nENV KEY_FILE=x MONKEY=1\n", true, nil},
		{"build checks only needed stages", "FROM scratch AS a\nENV TOKEN=1\nFROM scratch\nENV PASSWORD=1\n", false, []string{"SecretsUsedInArgOrEnv:4"}},
		{"undefined var needs check mode", "FROM scratch\nCOPY $NOPE /\n", false, nil},
		{"undefined var", "FROM scratch\nENV A=1\nARG B\nCOPY $A $B $NOPE /\n", true, []string{"UndefinedVar:4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Parse(strings.NewReader(tt.df), Options{Check: tt.check})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range g.Checks {
				got = append(got, c.Rule+":"+itoa(c.Line))
				if c.Message == "" || !slices.Contains(g.Warnings, c.format("Dockerfile")) {
					t.Errorf("check %+v: no message or not in Warnings", c)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("checks = %v\nwant %v", got, tt.want)
			}
		})
	}
	if !CheckErrors("skip=A;error=true") || CheckErrors("skip=A") {
		t.Error("CheckErrors does not read error=true")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
