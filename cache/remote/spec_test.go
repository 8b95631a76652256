package remote

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		value  string
		export bool
		want   Spec
		err    string
	}{
		{value: "type=registry,ref=r.example/app:cache", want: Spec{Type: "registry", Ref: "r.example/app:cache", Mode: ModeMin, Tag: "latest", OCIMediaTypes: true}},
		{value: "r.example/app:cache", want: Spec{Type: "registry", Ref: "r.example/app:cache", Mode: ModeMin, Tag: "latest", OCIMediaTypes: true}},
		{value: "type=registry,ref=r/x,mode=max,image-manifest=true,oci-mediatypes=true,ignore-error=true,compression=zstd", export: true,
			want: Spec{Type: "registry", Ref: "r/x", Mode: ModeMax, Tag: "latest", ImageManifest: true, OCIMediaTypes: true, IgnoreError: true, Compression: "zstd"}},
		{value: "type=local,dest=/c,tag=ci", export: true, want: Spec{Type: "local", Dir: "/c", Tag: "ci", Mode: ModeMin, OCIMediaTypes: true}},
		{value: "type=local,src=/c", want: Spec{Type: "local", Dir: "/c", Tag: "latest", Mode: ModeMin, OCIMediaTypes: true}},
		{value: "type=local,dest=/c", err: "dest= is for --cache-to"},
		{value: "type=local,src=/c", export: true, err: "src= is for --cache-from"},
		{value: "type=local", export: true, err: "needs dest=DIR"},
		{value: "type=registry", err: "needs ref="},
		{value: "type=registry,ref=r/x,colour=red", err: `unknown key "colour"`},
		{value: "type=registry,ref=r/x,mode=all", err: "mode=all: want min or max"},
		{value: "type=registry,ref=r/x,ignore-error=perhaps", err: "want true or false"},
		{value: "type=registry,ref=r/x,compression=lz4", err: "compression=lz4"},
		{value: "type=s3,bucket=b,region=r,endpoint_url=http://s3.local,prefix=ci/", export: true,
			want: Spec{Type: "s3", Mode: ModeMin, Tag: "latest", OCIMediaTypes: true, S3: S3Spec{Bucket: "b", Region: "r", Endpoint: "http://s3.local", Prefix: "ci/", Name: "buildkit"}}},
		{value: "type=s3,bucket=b", err: "needs bucket= and region="},
		{value: "type=inline", export: true, want: Spec{Type: "inline", Mode: ModeMin, Tag: "latest", OCIMediaTypes: true}},
		{value: "type=inline", err: "--cache-from type=registry,ref=IMAGE"},
		{value: "type=inline,mode=max", export: true, err: "mode=max is not supported"},
		{value: "type=registry,ref=r/x,compression=gzip,compression-level=1,oci-mediatypes=false", export: true,
			want: Spec{Type: "registry", Ref: "r/x", Mode: ModeMin, Tag: "latest", Compression: "gzip", CompressionLevel: 1}},
		{value: "type=registry,ref=r/x,compression=zstd,oci-mediatypes=false", export: true, err: "needs oci-mediatypes=true"},
		{value: "type=registry,ref=r/x,image-manifest=true,oci-mediatypes=false", export: true, err: "needs oci-mediatypes=true"},
		{value: "type=registry,ref=r/x,compression=zstd,force-compression=false", export: true, err: "force-compression=false is not supported"},
		{value: "type=registry,ref=r/x,compression=zstd,compression-level=fast", export: true, err: "compression-level=fast"},
		{value: "type=ftp,ref=x", err: "type=ftp is unknown"},
		{value: "ref=r/x", err: "type= is missing"},
		{value: "type=registry,ref", err: `"ref" is not KEY=VALUE`},
	} {
		got, err := Parse(tc.value, tc.export)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q, %v) = %+v, %v; want an error with %q", tc.value, tc.export, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q, %v) = %+v, %v; want %+v", tc.value, tc.export, got, err, tc.want)
		}
	}
}
