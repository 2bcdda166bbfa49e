package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// This file delivers alert events: one deliverer across every process
// (the lease DelivererLeaseName) sends the deliveries the metadata store
// holds as due, to the weir.alerts topic and to webhooks, and records
// each attempt.

// DelivererLeaseName is the lease of the process delivering alerts.
const DelivererLeaseName = "alerts/deliverer"

// deliveryBatch is how many due deliveries one look takes, and
// deliveryParallel how many are sent at once.
const (
	deliveryBatch    = 100
	deliveryParallel = 8
)

// runDeliverer delivers while this process holds the deliverer's lease,
// trying to take it every few seconds while another has it.
func (s *Service) runDeliverer(ctx context.Context) {
	if err := s.cfg.Bus.CreateTopic(ctx, protocol.TopicAlerts, 4); err != nil && ctx.Err() == nil {
		s.log.Warn("creating the alerts topic; producing creates it", "topic", protocol.TopicAlerts, "err", err)
	}
	for {
		held, err := metastore.Hold(ctx, s.cfg.Store, DelivererLeaseName, s.holder(), evalLeaseTTL, s.log)
		if err == nil {
			s.log.Info("delivering alerts")
			s.deliverWhileHeld(held.Context())
			held.Release(context.WithoutCancel(ctx))
			s.m.setPending(nil)
		}
		if !sleep(ctx, 2*time.Second) {
			return
		}
	}
}

// deliverWhileHeld sends due deliveries until ctx ends: at once when this
// process queued some, else every Poll.
func (s *Service) deliverWhileHeld(ctx context.Context) {
	lastCount := time.Time{}
	for ctx.Err() == nil {
		n, err := s.deliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("delivering alerts", "err", err)
		}
		if time.Since(lastCount) >= time.Second {
			lastCount = time.Now()
			s.countPending(ctx)
		}
		if n == deliveryBatch {
			continue // more are due
		}
		t := time.NewTimer(s.cfg.Poll)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// countPending sets weir_alert_deliveries_pending for every rule (0 for
// those with nothing pending, so each rule has its series).
func (s *Service) countPending(ctx context.Context) {
	counts, err := s.cfg.Store.CountAlertDeliveries(ctx, metastore.DeliveryPending)
	if err != nil {
		return
	}
	if rules, err := s.allRules(ctx); err == nil {
		for _, r := range rules {
			counts[r.ID] += 0
		}
	}
	s.m.setPending(counts)
}

// deliverDue sends the deliveries due now, deliveryParallel at a time,
// and reports how many there were.
func (s *Service) deliverDue(ctx context.Context) (int, error) {
	due, err := s.cfg.Store.DueAlertDeliveries(ctx, time.Now(), deliveryBatch)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	secrets := map[string]*Rule{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, deliveryParallel)
	for _, d := range due {
		r, ok := secrets[d.RuleID]
		if !ok {
			r, err = s.rule(ctx, d.RuleID)
			if err != nil && !errors.Is(err, metastore.ErrNotFound) {
				return 0, err
			}
			secrets[d.RuleID] = r
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.attempt(ctx, r, d)
		})
	}
	wg.Wait()
	return len(due), nil
}

// attempt sends one delivery once and records the outcome: delivered, or
// due again after a backoff, or dead once its retry time is up.
func (s *Service) attempt(ctx context.Context, r *Rule, d metastore.AlertDelivery) {
	d.Attempts++
	var status int
	var err error
	switch {
	case r == nil:
		err = errors.New("the rule was deleted")
		d.RetryUntil = time.Time{}
	case d.Target == metastore.TargetKafka:
		err = s.produce(ctx, d)
	default:
		status, err = s.post(ctx, r, d)
	}
	if ctx.Err() != nil {
		return // stopping: the attempt is not recorded, and runs again
	}
	now := time.Now()
	d.LastStatus = status
	if err == nil {
		d.State, d.DeliveredAt, d.LastError = metastore.DeliveryDelivered, now, ""
		s.m.delivery(d.RuleID, OutcomeDelivered)
	} else {
		d.LastError = clip(err.Error(), 500)
		d.NextAttemptAt = now.Add(s.backoff(d.Attempts))
		s.m.delivery(d.RuleID, OutcomeFailed)
		if d.NextAttemptAt.After(d.RetryUntil) {
			d.State = metastore.DeliveryDead
			s.m.delivery(d.RuleID, OutcomeDead)
			s.log.Warn("alert delivery dead-lettered", "delivery", d.ID, "attempts", d.Attempts, "err", err)
		} else {
			s.log.Info("alert delivery failed; trying again", "delivery", d.ID, "attempt", d.Attempts, "err", err,
				"next", d.NextAttemptAt.Sub(now).Round(time.Millisecond))
		}
	}
	if _, err := s.cfg.Store.UpdateAlertDelivery(context.WithoutCancel(ctx), d); err != nil {
		s.log.Warn("recording an alert delivery", "delivery", d.ID, "err", err)
	}
}

// backoff is the wait after the n-th failed attempt: RetryBase·2^(n-1),
// at most RetryMax, less a random part of up to half of it.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.RetryMax
	if n-1 < 30 {
		d = min(s.cfg.RetryBase<<(n-1), s.cfg.RetryMax)
	}
	return d - time.Duration(rand.Int64N(int64(d)/2+1))
}

// produce sends the event to the weir.alerts topic, keyed by rule.
func (s *Service) produce(ctx context.Context, d metastore.AlertDelivery) error {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	return s.cfg.Bus.Produce(pctx, &bus.Record{Topic: protocol.TopicAlerts, Key: []byte(d.RuleID), Value: d.Payload})
}

// post sends the event to a webhook, signed; a 2xx answer delivers it.
func (s *Service) post(ctx context.Context, r *Rule, d metastore.AlertDelivery) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, err
	}
	now := time.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "weir-alerts/"+s.cfg.Version)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(r.Secret, now, d.Payload))
	req.Header.Set(HeaderEventID, protocol.AlertEventID(d.AlertID, d.Event))
	req.Header.Set(HeaderDeliveryAttempt, strconv.Itoa(d.Attempts))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(snippet))
		if msg != "" {
			msg = ": " + clip(strings.Join(strings.Fields(msg), " "), 120)
		}
		return resp.StatusCode, fmt.Errorf("%s answered %s%s", d.URL, resp.Status, msg)
	}
	return resp.StatusCode, nil
}
