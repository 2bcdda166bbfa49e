package bus

import "context"

// Bus is the seam every weir component takes to reach the bus: the API,
// the ingest writers and push servers, the live packager and controller,
// the VOD workers. *Client implements it over Kafka; bustest.Bus
// implements it in memory for unit tests. Components take a Bus, never a
// *Client, so each can be tested without a broker and the wiring in
// internal/server is the only place that chooses.
//
// The contract is Client's, which the methods' docs there spell out:
//
//   - Produce returns once every record is acknowledged or failed, with
//     Partition and Offset filled in; records with the same key land on
//     the same partition, in the order produced.
//   - ProduceAsync hands one record over and calls done exactly once, when
//     it is acknowledged or has failed; records of one partition land, and
//     see done called, in the order given, and once one fails the records
//     after it on that partition fail too. done must not block or produce.
//   - Flush sends what ProduceAsync holds back and waits for it.
//   - Consume calls the handler for each record of the topics, one at a
//     time, in offset order within a partition, with at-least-once
//     delivery in a group (members of one group split the partitions; a
//     handler error stops Consume with a *RecordError and leaves that
//     record uncommitted). It returns nil when ctx ends or the bus is
//     closed.
//   - CreateTopic creates a topic with a partition count; an existing
//     topic is left as it is and is not an error.
type Bus interface {
	Produce(ctx context.Context, recs ...*Record) error
	ProduceAsync(rec *Record, done func(*Record, error))
	Flush(ctx context.Context) error
	Consume(ctx context.Context, opts ConsumeOptions) error
	CreateTopic(ctx context.Context, topic string, partitions int32) error
	// DeleteTopic deletes topic and its records (a topic that does not
	// exist is no error) and drops this process's metric series of it.
	DeleteTopic(ctx context.Context, topic string) error
	// ForgetTopic drops this process's metric series of topic (produced,
	// consumed, dead letters, lag): a component calls it when it is done
	// with a per-entity topic, so series do not pile up with every stream.
	// Series come back if the topic is used again.
	ForgetTopic(topic string)
}

var _ Bus = (*Client)(nil)
