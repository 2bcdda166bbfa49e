// Package bus is weir's message bus: Kafka topics, reached with franz-go.
//
// In the embedded scale, StartBroker runs a Kafka-protocol broker inside
// the weir process (franz-go's kfake, persisted to the data dir) on
// 127.0.0.1:9092, so engines written in any language connect with any
// Kafka client. WithAuthentication makes it require a SASL login and check
// ACLs: weir's superuser may do everything, other users (AddUser, with
// Grants such as EngineGrants) only what they are granted. In the
// distributed scale the same Client talks to an external Kafka cluster
// instead (WithSASL, WithTLS). Nothing else changes between the two.
//
// Bus is the seam every component takes: produce (Produce, ProduceAsync,
// Flush), consume with at-least-once delivery (Consume, with or without a
// consumer group) and create topics (CreateTopic). Client implements it
// over Kafka and adds what tools and the server need (ReadAll, Ping,
// Admin, Close); package bustest implements it in memory for unit tests.
// The names of the topics and groups, weir's record headers and its
// control messages are the bus contract, in the public protocol package;
// docs/bus.md describes them and the delivery guarantees.
package bus
