package live

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/prom"
)

// metrics are the packager's Prometheus series:
//
//	weir_live_segments_written_total             segments written, verified and listed
//	weir_live_segment_bytes_total                their bytes
//	weir_live_gaps_total                         discontinuities listed (publisher reconnects,
//	                                             timestamp jumps, segments lost to a failure)
//	weir_live_checksum_failures_total            segments whose read-back SHA-256 did not match
//	weir_live_dropped_bytes_total                bytes dropped while waiting for a key frame
//	weir_live_streams                            streams this process packages now
//	weir_live_format_changes_total               picture size changes mid-stream (each a discontinuity)
//	weir_live_long_segment_cuts_total            segments cut before a key frame at the longest duration allowed
//	                                             because no key frame came
//	weir_live_stale_records_total                records dropped because their publisher
//	                                             had lost the stream to another
//	weir_live_segment_publish_latency_seconds    from the ingest receiving the key frame that
//	                                             closes a segment to the playlist listing it
//	                                             being readable
//	weir_live_parts_written_total                LL-HLS parts written and listed
//	weir_live_part_publish_latency_seconds       LL-HLS: from the ingest receiving the frame
//	                                             that closes a part to the live playlist
//	                                             listing it being readable
//	weir_live_stream_last_segment_timestamp_seconds{stream}
//	                                             per stream this process packages that has
//	                                             received media: Unix time of its last listed
//	                                             segment, or of its first media while it has
//	                                             none (alerts compare it with time())
type metrics struct {
	segments         prometheus.Counter
	bytes            prometheus.Counter
	gaps             prometheus.Counter
	checksumFailures prometheus.Counter
	dropped          prometheus.Counter
	streams          prometheus.Gauge
	staleRecords     prometheus.Counter
	formatChanges    prometheus.Counter
	longCuts         prometheus.Counter
	latency          prometheus.Histogram
	lastSegment      *prometheus.GaugeVec
	parts            prometheus.Counter
	partLatency      prometheus.Histogram
}

// latencyBuckets resolve the tens of milliseconds the packager aims at.
var latencyBuckets = []float64{.001, .0025, .005, .0075, .01, .015, .02, .03, .04, .05, .075, .1, .25, .5, 1, 2.5, 5}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		segments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_live_segments_written_total",
			Help: "Live segments written to the object store, verified and listed.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_live_segment_bytes_total",
			Help: "Bytes of the live segments written.",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_live_gaps_total",
			Help: "Discontinuities in live playlists: publisher reconnects, timestamp jumps, segments lost.",
		}),
		checksumFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_live_checksum_failures_total",
			Help: "Live segments whose SHA-256 read back from the object store did not match; each was rewritten.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_live_dropped_bytes_total",
			Help: "MPEG-TS bytes dropped while waiting for a key frame to start a segment.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_live_streams",
			Help: "Live streams this process is packaging.",
		}),
		formatChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_live_format_changes_total",
			Help: "Picture size changes in the middle of a live stream; each starts a segment with a discontinuity.",
		}),
		longCuts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_live_long_segment_cuts_total",
			Help: "Live segments cut before a key frame to stay within the longest duration allowed; the group of pictures continues in the next segment.",
		}),
		staleRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_live_stale_records_total",
			Help: "Stream records dropped because their publisher had lost the stream's publish lease to another.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weir_live_segment_publish_latency_seconds",
			Help:    "Time from the ingest receiving the key frame that closes a segment to the live playlist listing it being readable.",
			Buckets: latencyBuckets,
		}),
		parts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_live_parts_written_total",
			Help: "Low-Latency HLS parts written and listed in a live playlist.",
		}),
		partLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weir_live_part_publish_latency_seconds",
			Help:    "Low-Latency HLS: time from the ingest receiving the frame that closes a part to the live playlist listing it being readable.",
			Buckets: latencyBuckets,
		}),
		lastSegment: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_live_stream_last_segment_timestamp_seconds",
			Help: "Unix time of the last segment listed for each live stream this process packages, or of its first media while it has no segment yet.",
		}, []string{"stream"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.segments, err = prom.Register(reg, m.segments); err != nil {
		return nil, err
	}
	if m.staleRecords, err = prom.Register(reg, m.staleRecords); err != nil {
		return nil, err
	}
	if m.formatChanges, err = prom.Register(reg, m.formatChanges); err != nil {
		return nil, err
	}
	if m.longCuts, err = prom.Register(reg, m.longCuts); err != nil {
		return nil, err
	}
	if m.bytes, err = prom.Register(reg, m.bytes); err != nil {
		return nil, err
	}
	if m.gaps, err = prom.Register(reg, m.gaps); err != nil {
		return nil, err
	}
	if m.checksumFailures, err = prom.Register(reg, m.checksumFailures); err != nil {
		return nil, err
	}
	if m.dropped, err = prom.Register(reg, m.dropped); err != nil {
		return nil, err
	}
	if m.streams, err = prom.Register(reg, m.streams); err != nil {
		return nil, err
	}
	if m.latency, err = prom.Register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.lastSegment, err = prom.Register(reg, m.lastSegment); err != nil {
		return nil, err
	}
	if m.parts, err = prom.Register(reg, m.parts); err != nil {
		return nil, err
	}
	if m.partLatency, err = prom.Register(reg, m.partLatency); err != nil {
		return nil, err
	}
	return m, nil
}
