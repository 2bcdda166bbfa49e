// Package examples holds weir's example external engines, written in other
// languages, and the tests that run them against weir's own protocol code:
//
//   - people-kafka: a Python engine over Kafka that finds people in frames
//     with OpenCV's HOG people detector (python3-confluent-kafka,
//     python3-opencv);
//   - faces-http: a Python engine over HTTP, following Veritone's engine
//     toolkit webhooks, that finds faces with OpenCV's Haar cascade
//     (python3-opencv, opencv-data).
//
// The package has no Go API; docs/engines.md ("Example engines") says how to
// run the engines against weir serve.
package examples
