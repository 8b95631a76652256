package remote

import (
	"context"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// TestS3RoundTrip exports a step to an in-process S3 server and reads it back on an
// empty store, lazily, as a CI runner does.
func TestS3RoundTrip(t *testing.T) {
	ctx := context.Background()
	mem := s3mem.New()
	if err := mem.CreateBucket("ci"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(mem).Server())
	defer srv.Close()
	spec, err := Parse("type=s3,bucket=ci,region=us-east-1,endpoint_url="+srv.URL+",prefix=kiln,name=main,access_key_id=k,secret_access_key=s", true)
	if err != nil {
		t.Fatal(err)
	}
	local, want := localWithStep(t, "k1", []byte("layer bytes"))
	src, err := Open(ctx, local, nil, StoreOptions{KeyVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Export(ctx, spec, src, []string{"k1"}, ExportOptions{KeyVersion: "v1"}); err != nil {
		t.Fatal(err)
	}
	from, _ := Parse("type=s3,bucket=ci,region=us-east-1,endpoint_url="+srv.URL+",prefix=kiln,name=main,access_key_id=k,secret_access_key=s", false)
	fresh := emptyLocal(t)
	s, err := Open(ctx, fresh, []Spec{from}, StoreOptions{KeyVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	e, ok, err := s.GetStep(ctx, "k1")
	if err != nil || !ok || e.Layer.Digest != want.Layer.Digest {
		t.Fatalf("GetStep from s3: %+v, %v, %v; want layer %s", e, ok, err, want.Layer.Digest)
	}
	l, _ := s.StepLayer(e.Layer)
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, rc) // streamed: kept once read to its end
	rc.Close()
	if err != nil {
		t.Fatalf("read the layer from s3: %v", err)
	}
	if d, _ := l.Digest(); !fresh.HasBlob(d) {
		t.Error("the layer read from s3 is not in the local store")
	}
	// A missing root is no cache yet, not an error.
	none, _ := Parse("type=s3,bucket=ci,region=us-east-1,endpoint_url="+srv.URL+",name=other,access_key_id=k,secret_access_key=s", false)
	if _, err := Open(ctx, emptyLocal(t), []Spec{none}, StoreOptions{KeyVersion: "v1"}); err != nil {
		t.Errorf("an empty s3 cache failed the build: %v", err)
	}
}
