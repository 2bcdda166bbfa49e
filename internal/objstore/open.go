package objstore

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// openTimeout bounds the bucket check Open performs for s3 URLs.
const openTimeout = 30 * time.Second

// Open returns the store a URL names; the package documentation lists the
// accepted forms. A plain path or a file:// URL opens an FS (creating the
// directory); an s3:// URL opens an S3 store and checks, within 30 seconds,
// that its bucket is reachable. Error messages never repeat a secret key.
func Open(rawURL string) (Store, error) {
	if rawURL == "" {
		return nil, fmt.Errorf("object store URL is empty")
	}
	if !strings.Contains(rawURL, "://") {
		return NewFS(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the input, which may hold a secret.
		return nil, fmt.Errorf("object store URL: not a valid URL")
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("object store URL %s: file URLs cannot name a host (%q)", u.Redacted(), u.Host)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("object store URL %s: empty path", u.Redacted())
		}
		return NewFS(u.Path)
	case "s3":
		cfg, err := parseS3URL(u)
		if err != nil {
			return nil, fmt.Errorf("object store URL %s: %w", redactS3(u), err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
		defer cancel()
		return NewS3(ctx, cfg)
	default:
		return nil, fmt.Errorf("object store URL: unsupported scheme %q (want a path, file:// or s3://)", u.Scheme)
	}
}

// parseS3URL turns s3://bucket/prefix?params into an S3Config.
func parseS3URL(u *url.URL) (S3Config, error) {
	cfg := S3Config{
		Bucket:    u.Host,
		Prefix:    strings.Trim(u.Path, "/"),
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
	}
	if cfg.Bucket == "" {
		return S3Config{}, fmt.Errorf("no bucket (want s3://bucket/optional/prefix)")
	}
	if u.User != nil {
		return S3Config{}, fmt.Errorf("credentials go in access_key and secret_key parameters, not user info")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return S3Config{}, fmt.Errorf("query: %w", err)
	}
	pathStyle := ""
	for name, vals := range q {
		if len(vals) != 1 {
			return S3Config{}, fmt.Errorf("parameter %s given %d times", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "endpoint":
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "path_style":
			pathStyle = v
		case "access_key":
			cfg.AccessKey = v
		case "secret_key":
			cfg.SecretKey = v
		case "create_bucket":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return S3Config{}, fmt.Errorf("create_bucket %q: want true or false", v)
			}
			cfg.CreateBucket = b
		case "part_size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return S3Config{}, fmt.Errorf("part_size %q: want a positive number of bytes", v)
			}
			cfg.PartSize = n
		default:
			return S3Config{}, fmt.Errorf("unknown parameter %q", name)
		}
	}
	cfg.PathStyle = cfg.Endpoint != ""
	if pathStyle != "" {
		b, err := strconv.ParseBool(pathStyle)
		if err != nil {
			return S3Config{}, fmt.Errorf("path_style %q: want true or false", pathStyle)
		}
		cfg.PathStyle = b
	}
	return cfg, nil
}

// redactS3 renders u with any secret_key value masked.
func redactS3(u *url.URL) string {
	c := *u
	q, err := url.ParseQuery(c.RawQuery)
	if err != nil {
		c.RawQuery = "(unparsable)"
	} else if q.Has("secret_key") {
		q.Set("secret_key", "xxxxx")
		c.RawQuery = q.Encode()
	}
	return c.Redacted()
}
