package live

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// BenchmarkLivePublishLatency measures weir_live_segment_publish_latency:
// from the ingest receiving the key frame that closes a segment to the live
// playlist listing it being readable. Each iteration publishes 20 s of
// 160x120 H.264 + AAC, one-second GOPs, through a publisher session on the
// embedded bus at four times real time (a segment every 250 ms, so nothing
// queues), into the packager with one-second segments. "fs" stores objects
// in files (each Put is fsynced: two per segment); "memory" keeps them in
// memory, leaving the bus, the graph and the metadata store.
//
//	go test -run XXX -bench LivePublishLatency -benchtime 1x ./internal/live
func BenchmarkLivePublishLatency(b *testing.B) {
	ts := makeTS(b, 20, 25, "libx264", 0)
	for _, store := range []string{"fs", "memory"} {
		b.Run("objects="+store, func(b *testing.B) {
			var p50, p99, max float64
			for i := 0; i < b.N; i++ {
				o := envOptions{segment: time.Second, window: 6, timeout: time.Minute}
				if store == "memory" {
					o.objects = func(objstore.Store) objstore.Store { return newMemStore() }
				}
				e := newLiveEnv(b, o)
				st := e.newStream("")
				sess := e.openSession(st.ID)
				// 4x real time: 20 s of media in 5 s, in 20 ms steps.
				step := len(ts) / 250
				tick := time.NewTicker(20 * time.Millisecond)
				for off := 0; off < len(ts); off += step {
					<-tick.C
					if err := sess.Write(ts[off:min(off+step, len(ts))], time.Now()); err != nil {
						b.Fatal(err)
					}
				}
				tick.Stop()
				if err := sess.Close(context.Background(), false); err != nil {
					b.Fatal(err)
				}
				waitFor(b, 30*time.Second, "every segment", func() bool {
					rows, _ := e.meta.ListSegments(context.Background(), st.ID, "", 0, 0)
					return len(rows) >= 20
				})
				e.end(st.ID)
				vod := e.waitStatus(st.ID, metastore.StatusVOD, 30*time.Second)
				var d Details
				if err := json.Unmarshal(vod.Details, &d); err != nil {
					b.Fatal(err)
				}
				p50, p99, max = p50+d.Latency.P50, p99+d.Latency.P99, max+d.Latency.Max
			}
			n := float64(b.N)
			b.ReportMetric(p50/n, "p50-ms")
			b.ReportMetric(p99/n, "p99-ms")
			b.ReportMetric(max/n, "max-ms")
		})
	}
}

// memStore is an in-memory object store for measurements.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Put(_ context.Context, key string, r io.Reader, _ int64, ct string) (objstore.Info, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return objstore.Info{}, err
	}
	s.mu.Lock()
	s.m[key] = b
	s.mu.Unlock()
	return objstore.Info{Key: key, Size: int64(len(b)), ContentType: ct}, nil
}

func (s *memStore) Get(_ context.Context, key string) (io.ReadCloser, objstore.Info, error) {
	s.mu.Lock()
	b, ok := s.m[key]
	s.mu.Unlock()
	if !ok {
		return nil, objstore.Info{}, objstore.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), objstore.Info{Key: key, Size: int64(len(b))}, nil
}

func (s *memStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, objstore.Info, error) {
	rc, info, err := s.Get(ctx, key)
	if err != nil {
		return nil, info, err
	}
	b, _ := io.ReadAll(rc)
	end := int64(len(b))
	if n >= 0 {
		end = min(end, off+n)
	}
	return io.NopCloser(bytes.NewReader(b[off:end])), info, nil
}

func (s *memStore) Stat(ctx context.Context, key string) (objstore.Info, error) {
	_, info, err := s.Get(ctx, key)
	return info, err
}

func (s *memStore) List(_ context.Context, prefix string) ([]objstore.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []objstore.Info
	for k, b := range s.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, objstore.Info{Key: k, Size: int64(len(b))})
		}
	}
	return out, nil
}

func (s *memStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

func (s *memStore) PresignGet(context.Context, string, time.Duration) (string, error) {
	return "", objstore.ErrPresignUnsupported
}
