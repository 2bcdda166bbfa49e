package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// contractOptions describes what differs between implementations.
type contractOptions struct {
	// presign is true when PresignGet must return a working URL, false
	// when it must return ErrPresignUnsupported.
	presign bool
	// overwriteRounds is how many replacements the concurrent reader test
	// makes (fewer for a networked store).
	overwriteRounds int
}

// runContract checks the behaviour every Store must have. newStore returns
// an empty store private to the calling test.
func runContract(t *testing.T, newStore func(t *testing.T) Store, opts contractOptions) {
	ctx := context.Background()

	t.Run("PutThenGetReturnsTheBytesAndContentType", func(t *testing.T) {
		s := newStore(t)
		body := []byte("#EXTM3U\n#EXT-X-VERSION:3\n")
		put, err := s.Put(ctx, "live/abc/index.m3u8", bytes.NewReader(body), int64(len(body)), "application/vnd.apple.mpegurl")
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		if put.Key != "live/abc/index.m3u8" || put.Size != int64(len(body)) ||
			put.ContentType != "application/vnd.apple.mpegurl" || put.ETag == "" || put.ModTime.IsZero() {
			t.Fatalf("Put returned %+v", put)
		}
		if strings.Contains(put.ETag, `"`) {
			t.Errorf("ETag %s is quoted", put.ETag)
		}
		got, inf := mustGet(t, s, "live/abc/index.m3u8")
		if !bytes.Equal(got, body) {
			t.Fatalf("Get = %q, want %q", got, body)
		}
		if inf.Size != put.Size || inf.ContentType != put.ContentType || inf.ETag != put.ETag || inf.Key != put.Key {
			t.Fatalf("Get info %+v, Put info %+v", inf, put)
		}
	})

	t.Run("PutBytesReportsTheSHA256OfTheBytes", func(t *testing.T) {
		s := newStore(t)
		body := randomBytes(300<<10, 7)
		sum := sha256.Sum256(body)
		want := fmt.Sprintf("%x", sum)
		put, err := s.Put(ctx, "seg/a.ts", bytes.NewReader(body), int64(len(body)), "video/mp2t")
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		if put.SHA256 != "" && put.SHA256 != want {
			t.Fatalf("Put's SHA256 %s, want %s or none", put.SHA256, want)
		}
		inf, err := PutBytes(ctx, s, "seg/b.ts", body, "video/mp2t")
		if err != nil {
			t.Fatalf("PutBytes: %v", err)
		}
		if inf.SHA256 != want || inf.Size != int64(len(body)) || inf.Key != "seg/b.ts" {
			t.Fatalf("PutBytes returned %+v, want SHA256 %s and size %d", inf, want, len(body))
		}
		if got, _ := mustGet(t, s, "seg/b.ts"); !bytes.Equal(got, body) {
			t.Fatal("PutBytes stored other bytes")
		}
		if _, err := PutBytes(ctx, s, "../escape", body, ""); err == nil {
			t.Fatal("PutBytes accepted a hostile key")
		}
	})

	t.Run("EmptyContentTypeIsStoredAsOctetStream", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "blob", []byte("x"), "")
		inf, err := s.Stat(ctx, "blob")
		if err != nil {
			t.Fatal(err)
		}
		if inf.ContentType != "application/octet-stream" {
			t.Fatalf("content type %q, want application/octet-stream", inf.ContentType)
		}
	})

	t.Run("EmptyObjectRoundTrips", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "empty", nil, "text/plain")
		got, inf := mustGet(t, s, "empty")
		if len(got) != 0 || inf.Size != 0 {
			t.Fatalf("Get = %q (size %d), want empty", got, inf.Size)
		}
		rc, inf, err := s.GetRange(ctx, "empty", 0, -1)
		if err != nil {
			t.Fatalf("GetRange(0, -1) of an empty object: %v", err)
		}
		got, _ = io.ReadAll(rc)
		rc.Close()
		if len(got) != 0 || inf.Size != 0 {
			t.Fatalf("GetRange = %q (size %d), want empty", got, inf.Size)
		}
		if _, _, err := s.GetRange(ctx, "empty", 1, -1); !errors.Is(err, ErrInvalidRange) {
			t.Fatalf("GetRange(1, -1) of an empty object: %v, want ErrInvalidRange", err)
		}
	})

	t.Run("UnknownSizePutStoresEverything", func(t *testing.T) {
		s := newStore(t)
		body := bytes.Repeat([]byte("weir"), 5000)
		// HalfReader hides Len and Seek and returns short reads, as an HTTP body would.
		put, err := s.Put(ctx, "upload/u1", iotest.HalfReader(bytes.NewReader(body)), -1, "video/mp4")
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		if put.Size != int64(len(body)) {
			t.Fatalf("Put size %d, want %d", put.Size, len(body))
		}
		got, _ := mustGet(t, s, "upload/u1")
		if !bytes.Equal(got, body) {
			t.Fatalf("Get returned %d bytes, want %d", len(got), len(body))
		}
	})

	t.Run("OverwriteReplacesContentAndChangesETag", func(t *testing.T) {
		s := newStore(t)
		first := mustPut(t, s, "seg.ts", []byte("version one"), "video/mp2t")
		second := mustPut(t, s, "seg.ts", []byte("version two"), "video/MP2T")
		if first.ETag == second.ETag {
			t.Fatalf("ETag %s did not change when the content did", first.ETag)
		}
		got, inf := mustGet(t, s, "seg.ts")
		if string(got) != "version two" || inf.ETag != second.ETag || inf.ContentType != "video/MP2T" {
			t.Fatalf("after overwrite Get = %q %+v", got, inf)
		}
	})

	t.Run("ConcurrentReadersSeeOldOrNewNeverPartial", func(t *testing.T) {
		s := newStore(t)
		// Version v is 128 KiB + 4 KiB*v copies of byte v: a reader can
		// tell from the first byte which version it got and what it must be.
		versionLen := func(v int) int { return 128<<10 + v<<12 }
		version := func(v int) []byte { return bytes.Repeat([]byte{byte(v)}, versionLen(v)) }
		complete := func(b []byte) bool {
			return len(b) > 0 && len(b) == versionLen(int(b[0])) && bytes.Count(b, b[:1]) == len(b)
		}
		mustPut(t, s, "hot/seg.ts", version(0), "video/mp2t")
		done := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					rc, _, err := s.Get(ctx, "hot/seg.ts")
					if err != nil {
						errs <- fmt.Errorf("Get during overwrite: %w", err)
						return
					}
					b, err := io.ReadAll(rc)
					rc.Close()
					if err != nil {
						errs <- fmt.Errorf("read during overwrite: %w", err)
						return
					}
					if !complete(b) {
						errs <- fmt.Errorf("read %d bytes that are no complete version", len(b))
						return
					}
				}
			}()
		}
		for v := 1; v <= opts.overwriteRounds; v++ {
			if _, err := s.Put(ctx, "hot/seg.ts", bytes.NewReader(version(v)), int64(len(version(v))), "video/mp2t"); err != nil {
				t.Errorf("Put version %d: %v", v, err)
				break
			}
		}
		close(done)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		got, _ := mustGet(t, s, "hot/seg.ts")
		if !bytes.Equal(got, version(opts.overwriteRounds)) {
			t.Errorf("final object is not the last version")
		}
	})

	t.Run("GetRangeReadsTheRequestedBytes", func(t *testing.T) {
		s := newStore(t)
		body := []byte("0123456789abcdefghij")
		put := mustPut(t, s, "r", body, "text/plain")
		size := int64(len(body))
		tests := []struct {
			name           string
			offset, length int64
			want           string
			wantErr        error
		}{
			{"prefix", 0, 5, "01234", nil},
			{"middle", 5, 5, "56789", nil},
			{"to the end", 15, -1, "fghij", nil},
			{"whole", 0, -1, string(body), nil},
			{"length past the end is cut", 18, 100, "ij", nil},
			{"last byte", size - 1, 1, "j", nil},
			{"zero length", 3, 0, "", nil},
			{"offset at the end reads nothing", size, -1, "", nil},
			{"offset at the end with a length reads nothing", size, 4, "", nil},
			{"offset past the end", size + 1, -1, "", ErrInvalidRange},
			{"negative offset", -1, 3, "", ErrInvalidRange},
			{"length below -1", 0, -2, "", ErrInvalidRange},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rc, inf, err := s.GetRange(ctx, "r", tt.offset, tt.length)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("GetRange(%d, %d) error %v, want %v", tt.offset, tt.length, err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("GetRange(%d, %d): %v", tt.offset, tt.length, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tt.want {
					t.Fatalf("GetRange(%d, %d) = %q, want %q", tt.offset, tt.length, got, tt.want)
				}
				if inf.Size != size || inf.ETag != put.ETag || inf.ContentType != "text/plain" {
					t.Fatalf("GetRange info %+v, want the whole object's (size %d, ETag %s)", inf, size, put.ETag)
				}
			})
		}
	})

	t.Run("StatDescribesWithoutReading", func(t *testing.T) {
		s := newStore(t)
		before := time.Now().Add(-time.Hour)
		put := mustPut(t, s, "thumbs/1.jpg", []byte("\xff\xd8\xff\xe0jpeg"), "image/jpeg")
		inf, err := s.Stat(ctx, "thumbs/1.jpg")
		if err != nil {
			t.Fatal(err)
		}
		if inf.Key != "thumbs/1.jpg" || inf.Size != 8 || inf.ContentType != "image/jpeg" || inf.ETag != put.ETag {
			t.Fatalf("Stat = %+v, Put = %+v", inf, put)
		}
		if inf.ModTime.Before(before) || inf.ModTime.After(time.Now().Add(time.Hour)) {
			t.Fatalf("ModTime %v is not about now", inf.ModTime)
		}
	})

	t.Run("ListReturnsKeysWithThePrefixSorted", func(t *testing.T) {
		s := newStore(t)
		keys := []string{
			"live/s1/seg_002.ts", "live/s1/seg_001.ts", "live/s1/index.m3u8",
			"live/s10/seg_001.ts", "live/s2/deep/er/seg.ts", "vod/x/master.m3u8",
			"live.txt", "a/b", "a.b", "a-b",
		}
		etags := map[string]string{}
		for i, k := range keys {
			etags[k] = mustPut(t, s, k, []byte(strings.Repeat("x", i+1)), "text/plain").ETag
		}
		tests := []struct {
			prefix string
			want   []string
		}{
			// Byte order: '-' < '.' < '/'.
			{"", []string{"a-b", "a.b", "a/b", "live.txt", "live/s1/index.m3u8", "live/s1/seg_001.ts", "live/s1/seg_002.ts", "live/s10/seg_001.ts", "live/s2/deep/er/seg.ts", "vod/x/master.m3u8"}},
			{"live/s1/", []string{"live/s1/index.m3u8", "live/s1/seg_001.ts", "live/s1/seg_002.ts"}},
			{"live/s1", []string{"live/s1/index.m3u8", "live/s1/seg_001.ts", "live/s1/seg_002.ts", "live/s10/seg_001.ts"}},
			{"live/s1/seg_", []string{"live/s1/seg_001.ts", "live/s1/seg_002.ts"}},
			{"live", []string{"live.txt", "live/s1/index.m3u8", "live/s1/seg_001.ts", "live/s1/seg_002.ts", "live/s10/seg_001.ts", "live/s2/deep/er/seg.ts"}},
			{"live/s2/", []string{"live/s2/deep/er/seg.ts"}},
			{"vod/x/master.m3u8", []string{"vod/x/master.m3u8"}},
			{"a", []string{"a-b", "a.b", "a/b"}},
			{"nothing/", nil},
			{"live/s1/seg_001.ts/", nil},
		}
		for _, tt := range tests {
			t.Run("prefix "+tt.prefix, func(t *testing.T) {
				got, err := s.List(ctx, tt.prefix)
				if err != nil {
					t.Fatalf("List(%q): %v", tt.prefix, err)
				}
				var gotKeys []string
				for _, inf := range got {
					gotKeys = append(gotKeys, inf.Key)
					want := int64(slices.Index(keys, inf.Key) + 1)
					if inf.Size != want || inf.ETag != etags[inf.Key] || inf.ModTime.IsZero() {
						t.Errorf("List entry %+v, want size %d ETag %s", inf, want, etags[inf.Key])
					}
				}
				if !slices.Equal(gotKeys, tt.want) {
					t.Fatalf("List(%q) = %q, want %q", tt.prefix, gotKeys, tt.want)
				}
			})
		}
	})

	t.Run("DeleteRemovesAndIsIdempotent", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "live/s/a.ts", []byte("a"), "video/mp2t")
		mustPut(t, s, "live/s/b.ts", []byte("b"), "video/mp2t")
		if err := s.Delete(ctx, "live/s/a.ts"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Stat(ctx, "live/s/a.ts"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Stat after Delete: %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "live/s/a.ts"); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
		if err := s.Delete(ctx, "never/was"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
		// A prefix of other keys is not an object: deleting it is a no-op.
		if err := s.Delete(ctx, "live/s"); err != nil {
			t.Fatalf("Delete of a prefix: %v", err)
		}
		if got, _ := mustGet(t, s, "live/s/b.ts"); string(got) != "b" {
			t.Fatalf("sibling changed to %q", got)
		}
		if err := s.Delete(ctx, "live/s/b.ts"); err != nil {
			t.Fatal(err)
		}
		if l, err := s.List(ctx, ""); err != nil || len(l) != 0 {
			t.Fatalf("List after deleting everything = %v, %v", l, err)
		}
		mustPut(t, s, "live/s/c.ts", []byte("c"), "video/mp2t")
		if got, _ := mustGet(t, s, "live/s/c.ts"); string(got) != "c" {
			t.Fatalf("Put after emptying a directory: got %q", got)
		}
	})

	t.Run("MissingKeysAreErrNotFound", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "dir/obj", []byte("x"), "")
		for _, key := range []string{"missing", "dir", "dir/obj/below", "dir/other"} {
			if _, _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%q) = %v, want ErrNotFound", key, err)
			}
			if _, _, err := s.GetRange(ctx, key, 0, 1); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetRange(%q) = %v, want ErrNotFound", key, err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Errorf("Stat(%q) = %v, want ErrNotFound", key, err)
			}
		}
	})

	t.Run("HostileKeysAreRejected", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "x", []byte("keep"), "")
		for _, key := range hostileKeys {
			t.Run(fmt.Sprintf("%.24q", key), func(t *testing.T) {
				if _, err := s.Put(ctx, key, strings.NewReader("evil"), 4, ""); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Put: %v, want ErrInvalidKey", err)
				}
				if _, _, err := s.Get(ctx, key); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Get: %v, want ErrInvalidKey", err)
				}
				if _, _, err := s.GetRange(ctx, key, 0, 1); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("GetRange: %v, want ErrInvalidKey", err)
				}
				if _, err := s.Stat(ctx, key); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Stat: %v, want ErrInvalidKey", err)
				}
				if err := s.Delete(ctx, key); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Delete: %v, want ErrInvalidKey", err)
				}
				if _, err := s.PresignGet(ctx, key, time.Minute); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("PresignGet: %v, want ErrInvalidKey", err)
				}
			})
		}
		for _, prefix := range []string{"../", "/abs", `a\`, "a\x00", "a//", "./"} {
			if _, err := s.List(ctx, prefix); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("List(%q): %v, want ErrInvalidKey", prefix, err)
			}
		}
		if got, _ := mustGet(t, s, "x"); string(got) != "keep" {
			t.Fatalf("x changed to %q", got)
		}
	})

	t.Run("DeclaredSizeMismatchStoresNothing", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "old", []byte("previous"), "text/plain")
		tests := []struct {
			name string
			key  string
			body string
			size int64
		}{
			{"short body, new key", "new", "12345", 10},
			{"long body, new key", "new", "1234567890", 5},
			{"short body, existing key", "old", "12345", 10},
			{"long body, existing key", "old", "1234567890", 5},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := s.Put(ctx, tt.key, strings.NewReader(tt.body), tt.size, "text/plain"); err == nil {
					t.Fatalf("Put of %d bytes declared as %d succeeded", len(tt.body), tt.size)
				}
			})
		}
		if _, err := s.Stat(ctx, "new"); !errors.Is(err, ErrNotFound) {
			t.Errorf("failed Put left an object: %v", err)
		}
		if got, _ := mustGet(t, s, "old"); string(got) != "previous" {
			t.Errorf("failed overwrite changed the object to %q", got)
		}
	})

	t.Run("FailedOrCancelledPutKeepsTheOldObject", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "seg", []byte("old"), "video/mp2t")
		boom := errors.New("source went away")
		failing := io.MultiReader(strings.NewReader("partial new content"), iotest.ErrReader(boom))
		if _, err := s.Put(ctx, "seg", failing, -1, "video/mp2t"); !errors.Is(err, boom) {
			t.Errorf("Put with a failing reader: %v, want %v", err, boom)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Put(cctx, "seg", strings.NewReader("new"), 3, "video/mp2t"); err == nil {
			t.Errorf("Put with a cancelled context succeeded")
		}
		if _, err := s.Put(cctx, "fresh", strings.NewReader("new"), 3, "video/mp2t"); err == nil {
			t.Errorf("Put of a new key with a cancelled context succeeded")
		}
		if got, _ := mustGet(t, s, "seg"); string(got) != "old" {
			t.Errorf("object is %q after failed Puts, want old", got)
		}
		if _, err := s.Stat(ctx, "fresh"); !errors.Is(err, ErrNotFound) {
			t.Errorf("cancelled Put left an object: %v", err)
		}
	})

	t.Run("LargeObjectsRoundTripWithKnownAndUnknownSize", func(t *testing.T) {
		s := newStore(t)
		body := randomBytes(20<<20+12345, 1)
		want := sha256.Sum256(body)
		for _, size := range []int64{int64(len(body)), -1} {
			t.Run(fmt.Sprintf("size %d", size), func(t *testing.T) {
				key := fmt.Sprintf("vod/big/%d.mp4", size)
				put, err := s.Put(ctx, key, onlyReader{bytes.NewReader(body)}, size, "video/mp4")
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				if put.Size != int64(len(body)) {
					t.Fatalf("Put size %d, want %d", put.Size, len(body))
				}
				rc, inf, err := s.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				n, err := io.Copy(h, rc)
				rc.Close()
				if err != nil || n != int64(len(body)) || !bytes.Equal(h.Sum(nil), want[:]) {
					t.Fatalf("Get read %d bytes (err %v), content matches: %v", n, err, bytes.Equal(h.Sum(nil), want[:]))
				}
				if inf.Size != int64(len(body)) || inf.ETag != put.ETag {
					t.Fatalf("Get info %+v, Put info %+v", inf, put)
				}
				rc, _, err = s.GetRange(ctx, key, 10<<20, 100)
				if err != nil {
					t.Fatal(err)
				}
				part, _ := io.ReadAll(rc)
				rc.Close()
				if !bytes.Equal(part, body[10<<20:10<<20+100]) {
					t.Fatalf("range in the middle of a large object differs")
				}
			})
		}
	})

	t.Run("PresignGet", func(t *testing.T) {
		s := newStore(t)
		body := []byte("presigned bytes")
		mustPut(t, s, "vod/v1/master.m3u8", body, "application/vnd.apple.mpegurl")
		u, err := s.PresignGet(ctx, "vod/v1/master.m3u8", 5*time.Minute)
		if !opts.presign {
			if !errors.Is(err, ErrPresignUnsupported) || u != "" {
				t.Fatalf("PresignGet = %q, %v; want ErrPresignUnsupported", u, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("PresignGet: %v", err)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
			t.Fatalf("GET presigned URL: %s %q, want 200 %q", resp.Status, got, body)
		}
		// The signature covers the key: another key with the same query fails.
		other := strings.Replace(u, "master.m3u8", "other.m3u8", 1)
		resp, err = http.Get(other)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("presigned URL edited to another key was accepted")
		}
		for _, ttl := range []time.Duration{0, -time.Second, 8 * 24 * time.Hour} {
			if _, err := s.PresignGet(ctx, "vod/v1/master.m3u8", ttl); err == nil {
				t.Errorf("PresignGet with ttl %s succeeded", ttl)
			}
		}
	})
}

// hostileKeys must be rejected with ErrInvalidKey by every operation.
var hostileKeys = []string{
	"", "../x", "/abs", "a/../../b", "a/..", "..", ".", "./a", "a/./b",
	`a\b`, `..\x`, "a\x00b", "a//b", "a/", "/", "a\nb", "bad\xffutf8",
	strings.Repeat("k", MaxKeyLen+1),
}

// onlyReader hides every method but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func mustPut(t testing.TB, s Store, key string, body []byte, contentType string) Info {
	t.Helper()
	inf, err := s.Put(context.Background(), key, bytes.NewReader(body), int64(len(body)), contentType)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return inf
}

func mustGet(t testing.TB, s Store, key string) ([]byte, Info) {
	t.Helper()
	rc, inf, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b, inf
}
