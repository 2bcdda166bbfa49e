// Package control is the live control handler of the ingest role: it
// consumes the REST API's live control messages (protocol.TopicLiveControl)
// and pulls the live streams started with a source URL (ingest.PullLive,
// reconnecting while the stream lasts), and turns end requests into the end
// marker on the stream's topic that makes the live packager finish the
// stream. docs/live.md describes pulling and ending for users.
package control
