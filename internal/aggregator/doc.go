// Package aggregator merges the results of a job's engines into windows of
// time, driven by the timestamp bounds the job's tasks send on its results
// topic: the window [T, T+w) is emitted, with every engine's results
// overlapping it, as soon as every engine has passed T+w, in order and
// exactly once.
//
// The aggregator reads everything from the bus: engine_output records and
// timestamp_bound records (protocol.TimestampBound) of
// results_<jobId>, from the topic's first record. It could run in any
// process; weir runs one per job inside the job's runner.
//
// # The graph
//
// The merging runs on weir's graph runtime. Each engine task is a graph
// input stream; a node running the WindowMerge calculator, with the
// default input stream handler, reads them all. A task's share of window k
// (its results overlapping the window) is a packet at the window's last
// microsecond, (T+w)·1000 − 1, added once the task's bound has passed T+w;
// the task's bound itself becomes the stream's bound
// (Graph.SetInputStreamTimestampBound, milliseconds × 1000). The default
// handler runs WindowMerge at a window's timestamp only once every stream
// has settled it, which is exactly "every engine has passed T+w", and in
// timestamp order, which is "in order, exactly once".
//
// # Windows
//
// Windows are aligned on multiples of w on the TDO timeline. The first is
// the one holding the earliest time any task reported (its first bound, or
// an earlier result); the job runner sends every task's first bound at the
// source's start, so the first window starts there. The last is the one
// holding the latest bound or result end once every task is done
// (timestamp_bound with done); it is marked final, and the aggregator
// stops.
//
// # Stalls and late results
//
// A task whose bound stands still for the stall timeout while another task
// is past the next window is timed out: its share of the window is what it
// sent so far, the window is emitted partial and names it. It stays timed
// out, and later windows are emitted without waiting for it, until its
// bound moves again. A result that arrives for a window after its task's
// share was settled (a timed-out task's, one breaking its bound, one after
// the task said done) is late: it is stored as a late result of every
// window it overlaps (64 at most) and counted
// (weir_aggregator_late_results_total), never added to a window. Whether a
// result is late depends only on the records before it and on the stored
// partial windows, so a replay decides as the first run did.
//
// # Resuming
//
// Every emitted window is stored (metastore.Store.PutWindow, once per job
// and start) before it is produced on windows_<jobId>. An aggregator that
// starts on a job with stored windows resumes after the last: it first
// produces any stored window missing from the topic (its predecessor died
// between the two), then reads the results topic from the start again.
// Replaying the topic rebuilds every task's bound and results exactly;
// windows already stored are not emitted again, and the offset each
// partial window was emitted at (Window.ThroughOffset) tells which results
// came before the window and which are late, as the first run decided.
package aggregator
