package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// DefaultS3PartSize is the multipart upload part size used when
// S3Config.PartSize is zero. Objects up to this size go up in one PutObject.
const DefaultS3PartSize int64 = 8 << 20

// maxPresignTTL is the longest validity S3 accepts for a presigned URL.
const maxPresignTTL = 7 * 24 * time.Hour

// S3Config configures NewS3.
type S3Config struct {
	// Endpoint is the base URL of an S3-compatible server such as
	// "http://127.0.0.1:7070". Empty means AWS S3.
	Endpoint string
	// Region is the signing region; empty means "us-east-1".
	Region string
	// Bucket holds the objects. Required.
	Bucket string
	// Prefix, when set, is put in front of every key ("weir" stores key
	// "a/b" as "weir/a/b"), so several deployments can share a bucket.
	// Leading and trailing slashes are ignored.
	Prefix string
	// AccessKey and SecretKey are static credentials. When both are empty
	// the AWS SDK's default chain (environment, shared files, instance
	// role) supplies them.
	AccessKey string
	SecretKey string
	// PathStyle addresses buckets as endpoint/bucket/key instead of
	// bucket.endpoint/key; most self-hosted servers need it.
	PathStyle bool
	// CreateBucket creates the bucket when it does not exist yet.
	CreateBucket bool
	// PartSize is the multipart part size in bytes: 0 means
	// DefaultS3PartSize, otherwise at least 5 MiB. Objects of unknown size
	// or larger than one part are uploaded in parts, several in parallel.
	PartSize int64
}

// S3 stores objects in a bucket of an S3-compatible service.
//
// Put goes through the SDK's upload manager: bodies up to one part are sent
// with a single PutObject, larger or unknown-size bodies as a multipart
// upload that is aborted on failure, so a failed Put leaves no object and no
// dangling parts. S3 itself makes every completed upload atomically visible.
// The Info returned by Put carries the local time as ModTime; Stat reports
// the server's. List pages through ListObjectsV2 and leaves ContentType
// empty because listings do not carry it.
type S3 struct {
	client   *s3.Client
	presign  *s3.PresignClient
	uploader *manager.Uploader
	bucket   string
	prefix   string // "" or ends with "/"
}

var _ Store = (*S3)(nil)

// NewS3 connects to the bucket described by cfg and checks that it is
// reachable (creating it first when cfg.CreateBucket is set), so a wrong
// endpoint, bucket or credential fails here rather than on the first Put.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3 object store: empty bucket name")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultS3PartSize
	}
	if cfg.PartSize < manager.MinUploadPartSize {
		return nil, fmt.Errorf("s3 object store: part size %d below the minimum %d", cfg.PartSize, manager.MinUploadPartSize)
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3 object store: endpoint %q is not an http(s) URL", cfg.Endpoint)
		}
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("s3 object store: access key and secret key must be given together")
	}

	var awsCfg aws.Config
	if cfg.AccessKey != "" {
		awsCfg = aws.Config{
			Region:      cfg.Region,
			Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		}
	} else {
		var err error
		awsCfg, err = config.LoadDefaultConfig(ctx, config.WithRegion(cfg.Region))
		if err != nil {
			return nil, fmt.Errorf("s3 object store: load AWS configuration: %w", err)
		}
	}
	// Checksums only where the API demands them: many S3-compatible
	// servers reject or ignore the newer flexible checksum headers.
	awsCfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	awsCfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})

	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := ValidatePrefix(prefix + "/"); err != nil {
			return nil, fmt.Errorf("s3 object store: %w", err)
		}
		prefix += "/"
	}
	s := &S3{
		client:  client,
		presign: s3.NewPresignClient(client),
		uploader: manager.NewUploader(client, func(u *manager.Uploader) {
			u.PartSize = cfg.PartSize
			u.Concurrency = 4
			u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		}),
		bucket: cfg.Bucket,
		prefix: prefix,
	}
	if err := s.ensureBucket(ctx, cfg); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *S3) ensureBucket(ctx context.Context, cfg S3Config) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		return nil
	}
	var apiErr smithy.APIError
	missing := errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NotFound" || apiErr.ErrorCode() == "NoSuchBucket")
	if missing && !cfg.CreateBucket {
		return fmt.Errorf("s3 object store: bucket %s does not exist at %s (create it, or set create_bucket=true): %w",
			s.bucket, endpointName(cfg.Endpoint), err)
	}
	if !missing {
		return fmt.Errorf("s3 object store: bucket %s at %s: %w", s.bucket, endpointName(cfg.Endpoint), err)
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}
	if cfg.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(cfg.Region),
		}
	}
	_, err = s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("s3 object store: create bucket %s at %s: %w", s.bucket, endpointName(cfg.Endpoint), err)
	}
	return nil
}

func endpointName(endpoint string) string {
	if endpoint == "" {
		return "AWS"
	}
	return endpoint
}

// isNotFound reports whether err is S3's answer for a missing key. HEAD
// responses have no body, so their code is the generic "NotFound".
func isNotFound(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	return false
}

func isInvalidRange(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidRange"
}

// mapErr wraps err for key, translating a missing object into ErrNotFound.
func (s *S3) mapErr(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%s %s in bucket %s: %w", op, key, s.bucket, ErrNotFound)
	}
	return fmt.Errorf("%s %s in bucket %s: %w", op, key, s.bucket, err)
}

func unquote(etag *string) string {
	return strings.Trim(aws.ToString(etag), `"`)
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	if size < -1 {
		return Info{}, fmt.Errorf("put %s: negative size %d", key, size)
	}
	if contentType == "" {
		contentType = defaultContentType
	}
	body := &countingReader{r: bodyReader(ctx, r, size)}
	out, err := s.uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(s.prefix + key),
		Body:        body,
		ContentType: aws.String(contentType),
	})
	if err != nil {
		return Info{}, s.mapErr("put", key, err)
	}
	return Info{
		Key:         key,
		Size:        body.n.Load(),
		ContentType: contentType,
		ModTime:     time.Now().UTC(),
		ETag:        unquote(out.ETag),
	}, nil
}

// countingReader counts the bytes the uploader consumed.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Info{}, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		return nil, Info{}, s.mapErr("get", key, err)
	}
	return out.Body, Info{
		Key:         key,
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ModTime:     aws.ToTime(out.LastModified),
		ETag:        unquote(out.ETag),
	}, nil
}

// GetRange implements Store.
func (s *S3) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Info, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Info{}, err
	}
	if offset < 0 || length < -1 {
		return nil, Info{}, fmt.Errorf("key %q: offset %d length %d: %w", key, offset, length, ErrInvalidRange)
	}
	if length == 0 {
		// HTTP ranges cannot express zero bytes; answer from Stat.
		return s.emptyRange(ctx, key, offset)
	}
	rng := fmt.Sprintf("bytes=%d-", offset)
	if length > 0 {
		rng = fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
		Range:  aws.String(rng),
	})
	if isInvalidRange(err) {
		// S3 refuses a range starting at the end; the contract reads
		// nothing there and refuses only offsets past the end.
		return s.emptyRange(ctx, key, offset)
	}
	if err != nil {
		return nil, Info{}, s.mapErr("get", key, err)
	}
	inf := Info{
		Key:         key,
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ModTime:     aws.ToTime(out.LastModified),
		ETag:        unquote(out.ETag),
	}
	if cr := aws.ToString(out.ContentRange); cr != "" {
		// "bytes 0-9/100": the total after the slash is the object size.
		_, totalStr, _ := strings.Cut(cr, "/")
		total, perr := strconv.ParseInt(totalStr, 10, 64)
		if perr != nil {
			out.Body.Close()
			return nil, Info{}, fmt.Errorf("get %s in bucket %s: unparsable Content-Range %q", key, s.bucket, cr)
		}
		inf.Size = total
	} else if offset > 0 {
		// A server that ignored the range sent the whole object.
		out.Body.Close()
		return nil, Info{}, fmt.Errorf("get %s in bucket %s: server ignored range %s", key, s.bucket, rng)
	}
	return out.Body, inf, nil
}

// emptyRange returns an empty reader when offset is within or at the end
// of the object, and ErrInvalidRange past it.
func (s *S3) emptyRange(ctx context.Context, key string, offset int64) (io.ReadCloser, Info, error) {
	inf, err := s.Stat(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	if offset > inf.Size {
		return nil, Info{}, fmt.Errorf("key %q: offset %d past size %d: %w", key, offset, inf.Size, ErrInvalidRange)
	}
	return io.NopCloser(strings.NewReader("")), inf, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		return Info{}, s.mapErr("stat", key, err)
	}
	return Info{
		Key:         key,
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ModTime:     aws.ToTime(out.LastModified),
		ETag:        unquote(out.ETag),
	}, nil
}

// List implements Store. Keys under the store's prefix that are not valid
// keys (written by other tools) are skipped.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.prefix + prefix),
	})
	var out []Info
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %q in bucket %s: %w", prefix, s.bucket, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if ValidateKey(key) != nil {
				continue
			}
			out = append(out, Info{
				Key:     key,
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified),
				ETag:    unquote(o.ETag),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil && !isNotFound(err) {
		return s.mapErr("delete", key, err)
	}
	return nil
}

// PresignGet implements Store. ttl must be positive and at most 7 days (the
// S3 limit). The URL is signed without checking that the object exists.
func (s *S3) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > maxPresignTTL {
		return "", fmt.Errorf("presign %s: ttl %s outside (0, %s]", key, ttl, maxPresignTTL)
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign %s in bucket %s: %w", key, s.bucket, err)
	}
	return req.URL, nil
}
