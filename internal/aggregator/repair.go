package aggregator

import (
	"context"
	"fmt"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// repair produces the stored windows missing from the job's windows topic:
// an aggregator that died between storing a window and producing it left
// the topic one short. It reads the topic to its end first, so a window
// is produced once.
func (a *Aggregator) repair(ctx context.Context, marks []metastore.Window) error {
	if len(marks) == 0 {
		return nil
	}
	topic := protocol.WindowsTopic(a.cfg.JobID)
	if err := a.cfg.Bus.CreateTopic(ctx, topic, 1); err != nil {
		return err
	}
	produced := map[int64]bool{}
	err := a.cfg.Bus.Consume(ctx, bus.ConsumeOptions{Topics: []string{topic}, FromBeginning: true, UntilEOF: true,
		Handler: func(_ context.Context, rec *bus.Record) error {
			if m, err := protocol.Decode(rec.Key, rec.Value); err == nil {
				if w, ok := m.(*protocol.ResultWindow); ok {
					produced[w.WindowStartMs] = true
				}
			}
			return nil
		}})
	if err != nil {
		return err
	}
	for _, m := range marks {
		if !produced[m.StartMs] {
			if err := a.reproduce(ctx, m.StartMs); err != nil {
				return err
			}
		}
	}
	return nil
}

// reproduce produces the stored window starting at startMs.
func (a *Aggregator) reproduce(ctx context.Context, startMs int64) error {
	ws, _, err := a.cfg.Store.ListWindows(ctx, metastore.WindowQuery{JobID: a.cfg.JobID, FromMs: startMs, ToMs: startMs + 1, Limit: 1})
	if err != nil {
		return err
	}
	if len(ws) != 1 || ws[0].StartMs != startMs {
		return fmt.Errorf("stored window at %d ms not found", startMs)
	}
	a.log.Info("window stored but not produced by an earlier aggregator; producing it", "start_ms", startMs)
	return a.produce(ctx, ws[0])
}
