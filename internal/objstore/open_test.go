package objstore

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

func TestOpenPathsAndFileURLsGiveAFileStore(t *testing.T) {
	base := t.TempDir()
	tests := []struct {
		name, url, wantDir string
	}{
		{"absolute path", filepath.Join(base, "a"), filepath.Join(base, "a")},
		{"file URL", "file://" + filepath.Join(base, "b"), filepath.Join(base, "b")},
		{"file URL with localhost", "file://localhost" + filepath.Join(base, "c"), filepath.Join(base, "c")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Open(tt.url)
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.url, err)
			}
			fsStore, ok := st.(*FS)
			if !ok {
				t.Fatalf("Open(%q) = %T, want *FS", tt.url, st)
			}
			defer fsStore.Close()
			if fsStore.Dir() != tt.wantDir {
				t.Fatalf("Dir = %q, want %q", fsStore.Dir(), tt.wantDir)
			}
			mustPut(t, st, "k", []byte("v"), "")
		})
	}
}

func TestOpenS3URLTalksToTheServer(t *testing.T) {
	srv := testenv.S3(t)
	bucket := testenv.UniqueBucket(t)
	st, err := Open(srv.URL(bucket))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s3Store, ok := st.(*S3)
	if !ok {
		t.Fatalf("Open = %T, want *S3", st)
	}
	if s3Store.bucket != bucket {
		t.Fatalf("bucket %q, want %q", s3Store.bucket, bucket)
	}
	mustPut(t, st, "live/x/seg.ts", []byte("seg"), "video/mp2t")

	// Credentials from the standard AWS variables, and a key prefix from
	// the URL path.
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	q := url.Values{"endpoint": {srv.Endpoint}, "region": {srv.Region}}
	prefixed, err := Open("s3://" + bucket + "/live?" + q.Encode())
	if err != nil {
		t.Fatalf("Open with environment credentials: %v", err)
	}
	if got, _ := mustGet(t, prefixed, "x/seg.ts"); string(got) != "seg" {
		t.Fatalf("prefixed store read %q", got)
	}
}

func TestParseS3URL(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "env-ak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-sk")
	tests := []struct {
		url  string
		want S3Config
	}{
		{"s3://media", S3Config{Bucket: "media", AccessKey: "env-ak", SecretKey: "env-sk"}},
		{"s3://media/weir/prod/?region=eu-west-1", S3Config{Bucket: "media", Prefix: "weir/prod", Region: "eu-west-1", AccessKey: "env-ak", SecretKey: "env-sk"}},
		{"s3://media?endpoint=http://127.0.0.1:7070", S3Config{Bucket: "media", Endpoint: "http://127.0.0.1:7070", PathStyle: true, AccessKey: "env-ak", SecretKey: "env-sk"}},
		{"s3://media?endpoint=https://s3.example.com&path_style=false", S3Config{Bucket: "media", Endpoint: "https://s3.example.com", AccessKey: "env-ak", SecretKey: "env-sk"}},
		{"s3://media?path_style=true&access_key=ak&secret_key=sk&create_bucket=true&part_size=16777216",
			S3Config{Bucket: "media", PathStyle: true, AccessKey: "ak", SecretKey: "sk", CreateBucket: true, PartSize: 16 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseS3URL(u)
			if err != nil {
				t.Fatalf("parseS3URL: %v", err)
			}
			if got != tt.want {
				t.Fatalf("parseS3URL = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestOpenRejectsBadURLsWithoutEchoingSecrets(t *testing.T) {
	tests := []struct {
		name, url, wantInErr string
	}{
		{"empty", "", "empty"},
		{"unknown scheme", "gs://bucket", "unsupported scheme"},
		{"no bucket", "s3:///prefix?secret_key=hunter2", "no bucket"},
		{"unknown parameter", "s3://b?endpiont=http://x&secret_key=hunter2", `unknown parameter "endpiont"`},
		{"repeated parameter", "s3://b?region=a&region=b", "given 2 times"},
		{"bad boolean", "s3://b?path_style=yes please", "path_style"},
		{"bad part size", "s3://b?part_size=-5", "part_size"},
		{"credentials as user info", "s3://ak:hunter2@b", "user info"},
		{"file URL with a host", "file://server/share", "host"},
		{"endpoint without scheme", "s3://b?endpoint=127.0.0.1:7070&access_key=a&secret_key=hunter2", "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Open(tt.url)
			if err == nil {
				t.Fatalf("Open(%q) = %T, want an error", tt.url, st)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantInErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q repeats the secret", err)
			}
		})
	}
}

func TestOpenS3ChecksTheBucketUpFront(t *testing.T) {
	srv := testenv.S3(t)
	u := srv.URL(testenv.UniqueBucket(t))
	u = strings.Replace(u, "create_bucket=true", "create_bucket=false", 1)
	if _, err := Open(u); err == nil {
		t.Fatal("Open of a missing bucket without create_bucket succeeded")
	} else if strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("error %q repeats the secret", err)
	}
}
