package objstore

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

// newTestS3 returns a store on a fresh bucket of srv.
func newTestS3(t testing.TB, srv testenv.S3Server, prefix string) *S3 {
	t.Helper()
	s, err := NewS3(context.Background(), S3Config{
		Endpoint:     srv.Endpoint,
		Region:       srv.Region,
		Bucket:       testenv.UniqueBucket(t),
		Prefix:       prefix,
		AccessKey:    srv.AccessKey,
		SecretKey:    srv.SecretKey,
		PathStyle:    true,
		CreateBucket: true,
		PartSize:     5 << 20,
	})
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

func TestS3Contract(t *testing.T) {
	srv := testenv.S3(t)
	runContract(t, func(t *testing.T) Store { return newTestS3(t, srv, "") }, contractOptions{presign: true, overwriteRounds: 8})
}

func TestS3ContractWithPrefix(t *testing.T) {
	srv := testenv.S3(t)
	runContract(t, func(t *testing.T) Store { return newTestS3(t, srv, "/deploy/a/") }, contractOptions{presign: true, overwriteRounds: 2})
}

func TestS3LargePutUsesMultipartUpload(t *testing.T) {
	srv := testenv.S3(t)
	s := newTestS3(t, srv, "")
	body := randomBytes(12<<20, 3)
	inf, err := s.Put(context.Background(), "big", onlyReader{bytes.NewReader(body)}, -1, "video/mp4")
	if err != nil {
		t.Fatal(err)
	}
	// A multipart object's ETag is "<md5 of part md5s>-<part count>".
	if !strings.HasSuffix(inf.ETag, "-3") {
		t.Fatalf("ETag %q: want a 3-part multipart upload of 12 MiB in 5 MiB parts", inf.ETag)
	}
	small := mustPut(t, s, "small", []byte("one part"), "text/plain")
	if strings.Contains(small.ETag, "-") {
		t.Fatalf("small object ETag %q looks multipart", small.ETag)
	}
}

func TestS3PrefixesIsolateStoresSharingABucket(t *testing.T) {
	srv := testenv.S3(t)
	ctx := context.Background()
	base := newTestS3(t, srv, "")
	open := func(prefix string) *S3 {
		s, err := NewS3(ctx, S3Config{
			Endpoint: srv.Endpoint, Region: srv.Region, Bucket: base.bucket, Prefix: prefix,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := open("tenant-a"), open("tenant-b/")
	mustPut(t, a, "seg.ts", []byte("a"), "video/mp2t")
	mustPut(t, b, "seg.ts", []byte("b"), "video/mp2t")
	if got, _ := mustGet(t, a, "seg.ts"); string(got) != "a" {
		t.Fatalf("tenant a reads %q", got)
	}
	la, err := a.List(ctx, "")
	if err != nil || len(la) != 1 || la[0].Key != "seg.ts" {
		t.Fatalf("tenant a List = %+v, %v", la, err)
	}
	all, err := base.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, inf := range all {
		keys = append(keys, inf.Key)
	}
	if strings.Join(keys, ",") != "tenant-a/seg.ts,tenant-b/seg.ts" {
		t.Fatalf("bucket holds %q, want the keys under each prefix", keys)
	}
}

func TestNewS3RefusesUnusableConfigurations(t *testing.T) {
	srv := testenv.S3(t)
	ctx := context.Background()
	good := S3Config{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: testenv.UniqueBucket(t),
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true, CreateBucket: true,
	}
	if _, err := NewS3(ctx, good); err != nil {
		t.Fatalf("good configuration: %v", err)
	}
	tests := []struct {
		name   string
		change func(*S3Config)
	}{
		{"missing bucket without create", func(c *S3Config) { c.Bucket = testenv.UniqueBucket(t); c.CreateBucket = false }},
		{"wrong secret", func(c *S3Config) { c.SecretKey = "wrong" }},
		{"empty bucket name", func(c *S3Config) { c.Bucket = "" }},
		{"part size below 5 MiB", func(c *S3Config) { c.PartSize = 1 << 20 }},
		{"endpoint without scheme", func(c *S3Config) { c.Endpoint = strings.TrimPrefix(c.Endpoint, "http://") }},
		{"access key without secret", func(c *S3Config) { c.SecretKey = "" }},
		{"hostile prefix", func(c *S3Config) { c.Prefix = "../escape" }},
		{"nothing listening", func(c *S3Config) { c.Endpoint = "http://127.0.0.1:1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			// The SDK retries connection failures; no case needs that long.
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if _, err := NewS3(ctx, cfg); err == nil {
				t.Fatal("NewS3 succeeded")
			}
		})
	}
}

func TestS3GetOfMissingKeyInPresignedURLIsRefused(t *testing.T) {
	// Presigning does not check existence; fetching a missing object must
	// fail rather than return an empty body.
	srv := testenv.S3(t)
	s := newTestS3(t, srv, "")
	u, err := s.PresignGet(context.Background(), "missing.m3u8", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(context.Background(), "missing.m3u8"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get = %v, want ErrNotFound", err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("presigned GET of a missing object: %s, want 404", resp.Status)
	}
}
