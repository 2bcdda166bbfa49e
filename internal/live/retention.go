package live

import (
	"context"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// topicDeletedKey is the member of a live stream's Details recording when
// its topic was deleted (RFC 3339), so the sweep does not delete it again.
const topicDeletedKey = "topic_deleted_at"

// sweepTopics deletes, every so often until ctx ends, the topics of live
// streams that ended (vod or failed) more than TopicRetention ago. Every
// packager process sweeps; deleting is idempotent, so they may overlap.
func (p *Packager) sweepTopics(ctx context.Context) {
	if p.cfg.TopicRetention <= 0 {
		return
	}
	every := min(max(p.cfg.TopicRetention/4, time.Second), 10*time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p.sweepOnce(ctx, time.Now().Add(-p.cfg.TopicRetention))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepOnce deletes the topics of live streams that ended before cutoff.
func (p *Packager) sweepOnce(ctx context.Context, cutoff time.Time) {
	for _, status := range []metastore.Status{metastore.StatusVOD, metastore.StatusFailed} {
		after := ""
		for {
			streams, next, err := p.cfg.Meta.ListStreams(ctx, metastore.StreamFilter{
				Kind: metastore.KindLive, Status: status, Limit: 500, After: after,
			})
			if err != nil {
				if ctx.Err() == nil {
					p.log.Warn("live packager: listing ended streams to delete their topics", "err", err)
				}
				return
			}
			for _, st := range streams {
				ended := st.StageTimes[st.Status]
				if ended.IsZero() || ended.After(cutoff) || metastore.DetailRaw(st.Details, topicDeletedKey) != nil {
					continue
				}
				p.deleteTopic(ctx, st)
			}
			if next == "" {
				break
			}
			after = next
		}
	}
}

// deleteTopic deletes an ended stream's topic and records that it did.
func (p *Packager) deleteTopic(ctx context.Context, st metastore.Stream) {
	topic := protocol.StreamTopic(st.ID)
	if err := p.cfg.Bus.DeleteTopic(ctx, topic); err != nil {
		p.log.Warn("live packager: deleting an ended stream's topic", "stream", st.ID, "topic", topic, "err", err)
		return
	}
	now := time.Now().UTC()
	if _, err := p.cfg.Meta.TransitionStatus(ctx, st.ID, st.Status, func(s *metastore.Stream) {
		s.Details = metastore.MergeDetails(s.Details, map[string]any{topicDeletedKey: now})
	}); err != nil {
		p.log.Warn("live packager: recording a deleted topic", "stream", st.ID, "err", err)
		return
	}
	p.log.Info("deleted the topic of an ended live stream", "stream", st.ID, "topic", topic)
}
