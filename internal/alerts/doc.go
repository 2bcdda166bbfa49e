// Package alerts raises alerts on what the engines find, and delivers
// them.
//
// A rule (Rule, parsed by ParseRule) is a condition on a job's results (a
// keyword said, a pattern read on screen, a fingerprint match, a detection
// count, loudness out of range, silence or black for a while) or on a live
// stream's segments (none for a while), scoped to every job, a stream, a
// title or a job, with a cool-down. docs/alerts.md is the reference.
//
// # Evaluation
//
// Conditions on results are evaluated where results arrive first: a
// job's results topic, results_<jobId>, read by an evaluator of its own
// (not the job runner's consumer group, and not the aggregator's windows,
// which wait for every engine of the job and for the window to close). The
// evaluator reads engine_output and timestamp_bound records: outputs raise
// alerts as soon as they are read; bounds tell when a condition has been
// false for the cool-down, which resolves the alert. Evaluators are
// started by the jobs announced on control_jobs, read in consumer group
// weir_alerts, one per job across every process (the lease
// "alerts/job/<id>" in the metadata store). An evaluator keeps nothing
// in memory that a successor needs: it reads the topic from its first
// record, and alerts are keyed by an id made from the rule, the job and
// where the condition started, so a replay finds the alerts already
// raised and raises none twice.
//
// A rule applies to the records written from its creation on (the records'
// Kafka timestamps), so evaluating a topic again decides as the first run
// did. When a rule that applies to a running job is created, the job's
// evaluator reads the topic again from the start.
//
// Conditions on segments are watched by a stream watcher per rule (the
// lease "alerts/segments/<rule id>"), which reads the stream's row in the
// metadata store.
//
// # Delivery
//
// Raising or resolving an alert queues its deliveries in the same
// metadata-store transaction: one to the weir.alerts topic, one to each
// webhook of the rule. A deliverer (one across every process, the lease
// "alerts/deliverer") sends what is due, retrying failures with
// exponential backoff and jitter until the rule's retry time has passed;
// then the delivery is dead, listed by the API and the console, and can
// be redelivered. Webhook requests are signed (Sign) and go through
// netguard's outbound policy.
package alerts
