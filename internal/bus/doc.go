// Package bus is weir's message bus: Kafka topics, reached with franz-go.
//
// In the embedded scale, StartBroker runs a Kafka-protocol broker inside
// the weir process (franz-go's kfake, persisted to the data dir) on
// 127.0.0.1:9092, so engines written in any language connect with any
// Kafka client. In the distributed scale the same Client talks to an
// external Kafka cluster instead. Nothing else changes between the two.
//
// A Client produces (Produce, ProduceAsync), consumes with at-least-once
// delivery (Consume, with or without a consumer group), reads a topic to
// its end (ReadAll) and creates topics (CreateTopic). protocol.StreamTopic,
// ChunkTopic and ResultsTopic name the topics weir uses;
// docs/bus.md describes them and the delivery guarantees.
package bus
